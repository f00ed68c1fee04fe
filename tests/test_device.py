"""How a device id typed by a person is read: whole, or by a start that only
one device of the mesh has."""

from __future__ import annotations

import pytest

from meshd.crypto.suite import device_id_from_key, short_id
from meshd.device import resolve_device_id
from meshd.errors import InvalidInput


def ids_sharing_a_first_group() -> tuple[str, str, str]:
    """Three real device ids: two that start alike, one that does not."""
    seen: dict[str, str] = {}
    for seed in range(2000):
        device = device_id_from_key(seed.to_bytes(32, "big"))
        group = device[:4]
        if group in seen and seen[group][:9] != device[:9]:
            others = (d for d in map(_id, range(2000)) if d[:4] != group)
            return seen[group], device, next(others)
        seen[group] = device
    raise AssertionError("no two ids share a first group")


def _id(seed: int) -> str:
    return device_id_from_key(seed.to_bytes(32, "big"))


def test_a_device_is_named_by_the_short_form_summaries_print() -> None:
    first, second, lone = ids_sharing_a_first_group()
    known = [first, second, lone]

    assert resolve_device_id(short_id(first), known) == first
    assert resolve_device_id(lone[:4].lower(), known) == lone
    assert resolve_device_id(second.replace("-", "")[:7], known) == second
    assert resolve_device_id(lone, []) == lone


def test_a_start_that_several_devices_share_is_refused_with_their_ids() -> None:
    first, second, lone = ids_sharing_a_first_group()

    with pytest.raises(InvalidInput) as refused:
        resolve_device_id(first[:4], [first, second, lone])

    assert "several device ids" in refused.value.message
    assert short_id(first) in refused.value.message
    assert short_id(second) in refused.value.message


@pytest.mark.parametrize("text", ["", "AB", "ZZZZ-ZZZZ", "ÄÖÜÉ"])
def test_a_text_that_starts_no_single_device_is_not_a_device_id(text: str) -> None:
    known = [_id(1), _id(2)]
    known = [d for d in known if not d.replace("-", "").startswith("ZZZZ")]

    with pytest.raises(InvalidInput) as refused:
        resolve_device_id(text, known)

    assert "not a device id" in refused.value.message
