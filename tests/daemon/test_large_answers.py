"""A member's daemon under large writes and huge ids: every answer is read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meshd.client import RpcError
from meshd.errors import PassportFull, UnknownProposal
from tests.daemons import MeshdFactory, MeshdProcess

HUGE = "a" * 600_000


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshdProcess]:
    """One daemon whose device created a mesh on a folder."""
    base = tmp_path_factory.mktemp("member")
    base.chmod(0o700)
    storage = Path(base / "storage")
    storage.mkdir()
    factory = MeshdFactory(base)
    daemon = factory.start()
    daemon.call("mesh.create", label="alice", storage=str(storage))
    try:
        yield daemon
    finally:
        factory.stop_all()


def test_twenty_long_values_fill_the_passport_and_it_still_reads_whole(
    member: MeshdProcess,
) -> None:
    refused: PassportFull | None = None
    for number in range(20):
        try:
            member.call("passport.set", path=f"profile/n{number}", value="v" * 60_000)
        except PassportFull as error:
            refused = error
            break

    passport = member.call("passport.get")

    assert refused is not None and "bytes" in refused.message
    assert 0 < len(passport["profile"]) < 20


def test_a_huge_proposal_id_is_repeated_only_in_part(member: MeshdProcess) -> None:
    with pytest.raises(UnknownProposal) as refused:
        member.call("proposal.approve", id=HUGE, code="123456")

    assert len(refused.value.message) < 200
    assert len(refused.value.details["proposal"]) < 100


def test_a_huge_method_or_param_name_is_repeated_only_in_part(
    member: MeshdProcess,
) -> None:
    with pytest.raises(RpcError) as no_method:
        member.call(HUGE)
    with pytest.raises(RpcError) as no_param:
        member.call("daemon.ping", **{HUGE: 1})

    assert len(repr(no_method.value.data)) < 200
    assert len(no_param.value.message) < 200
    assert len(repr(no_param.value.data)) < 200
