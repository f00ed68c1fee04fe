"""The Python client refuses what the daemon would cut off."""

from __future__ import annotations

import json

import pytest

from meshd.client import Client
from meshd.errors import InvalidInput
from meshd.rpc.codec import LINE_LIMIT
from tests.daemons import MeshdProcess, run_meshctl


def test_a_request_over_the_line_limit_is_refused_before_sending(
    meshd: MeshdProcess,
) -> None:
    with Client(meshd.socket) as client:
        with pytest.raises(InvalidInput) as refused:
            client.call("auth.verify", proof={"pad": "x" * LINE_LIMIT})

        assert refused.value.details["size"] > LINE_LIMIT
        assert client.call("daemon.ping")["pong"] is True


def test_json_is_accepted_after_the_command_too(meshd: MeshdProcess) -> None:
    status, out, _ = run_meshctl("status", "--json", home=meshd.home)

    assert status == 0
    assert json.loads(out)["device_id"]
