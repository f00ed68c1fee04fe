"""`make demo` as a person runs it: four daemons walk the story on a folder."""

from __future__ import annotations

import subprocess
import sys

STORY_LINES = (
    "✓ phone refuses the wrong code",
    "✓ laptop is a member",
    "✓ the threshold rose to 2 with the second device",
    "✓ tablet is a member after 2 approval(s)",
    "✓ the mesh is 2-of-3: phone, laptop, tablet",
    "✓ phone reads profile/name = 'Alice Example'",
    "✓ phone sees the tablet's capability",
    "✓ tablet's approval completes the revocation",
    "✓ new-phone is a member",
    "✓ the lost phone's status says revoked",
    "✓ laptop still reads 'Alice Example': the thief's edit is refused",
    "✓ the new-phone's status says revoked",
    "✓ the new-phone can no longer edit the passport",
    "✓ laptop alone cannot lower the threshold",
)


def test_demo_walks_the_story_and_exits_zero_when_every_check_holds() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "meshd.demo"],
        capture_output=True,
        text=True,
        timeout=180,
    )

    out = completed.stdout
    for line in STORY_LINES:
        assert line in out, out
    assert "Traceback" not in out + completed.stderr
    failed = [line for line in out.splitlines() if line.lstrip().startswith("✗")]
    assert completed.returncode == (1 if failed else 0), out
    assert completed.returncode == 0, out
