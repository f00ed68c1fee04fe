"""Hostile input on a real daemon: it answers with JSON-RPC errors or closes
that one connection, never crashes, and keeps serving everyone else."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.daemons import TEST_CONFIG, MeshdFactory, MeshdProcess


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshdProcess]:
    base = tmp_path_factory.mktemp("fuzz")
    base.chmod(0o700)
    factory = MeshdFactory(base)
    config = TEST_CONFIG.replace("line_timeout = 2.0", "line_timeout = 1.0")
    config = config.replace("[rpc]\n", "[rpc]\nmax_connections = 16\n")
    try:
        yield factory.start(config=config)
    finally:
        factory.stop_all()


def answers(raw: bytes) -> list[object]:
    return [json.loads(line) for line in raw.splitlines()]


def assert_still_serving(daemon: MeshdProcess) -> None:
    assert daemon.call("daemon.ping")["pong"] is True


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(junk=st.binary(max_size=300))
def test_random_bytes_get_only_json_rpc_errors(
    fuzzed: MeshdProcess, junk: bytes
) -> None:
    raw = fuzzed.send_raw(junk + b"\n")

    for answer in answers(raw):
        assert isinstance(answer, dict | list)
        entries = answer if isinstance(answer, list) else [answer]
        assert all(entry["error"]["code"] in (-32700, -32600) for entry in entries)
    assert_still_serving(fuzzed)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"[" * 200_000, -32700),
        (
            b'{"jsonrpc":"2.0","method":"daemon.ping","id":' + b"9" * 20_000 + b"}",
            -32700,
        ),
        (b'{"jsonrpc":"2.0","method":"daemon.ping","id":1e999}', -32600),
        (b'{"jsonrpc":"2.0","method":"daemon.ping","id":"\xff\xfe"}', -32700),
        (b'{"jsonrpc":"2.0","method":"daemon.ping","id":NaN}', -32700),
        (b'{"jsonrpc":"2.0","method":"daemon.ping","id":[1]}', -32600),
    ],
    ids=[
        "deep-nesting",
        "huge-number",
        "infinite-id",
        "invalid-utf8",
        "nan",
        "array-id",
    ],
)
def test_malformed_lines_are_answered_with_the_right_error(
    fuzzed: MeshdProcess, line: bytes, code: int
) -> None:
    (answer,) = answers(fuzzed.send_raw(line + b"\n"))

    assert isinstance(answer, dict)
    assert answer["error"]["code"] == code
    assert answer["id"] is None
    assert_still_serving(fuzzed)


def test_huge_number_in_params_is_a_param_error_not_a_crash(
    fuzzed: MeshdProcess,
) -> None:
    line = b'{"jsonrpc":"2.0","method":"events.subscribe","params":[1e308],"id":1}\n'

    (answer,) = answers(fuzzed.send_raw(line))

    assert isinstance(answer, dict)
    assert answer["error"]["code"] == -32602


def test_oversize_line_is_refused_and_the_connection_closed(
    fuzzed: MeshdProcess,
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(20)
        connection.connect(str(fuzzed.socket))
        with contextlib.suppress(BrokenPipeError):
            connection.sendall(b"x" * (1024 * 1024 + 100))
        reply = connection.makefile("rb").read()

    (answer,) = answers(reply)
    assert isinstance(answer, dict)
    assert answer["error"]["code"] == -32600
    assert_still_serving(fuzzed)


def test_a_client_sending_a_byte_a_second_is_cut_off_and_others_are_served(
    fuzzed: MeshdProcess,
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as slow:
        slow.settimeout(20)
        slow.connect(str(fuzzed.socket))
        received = b""
        for byte in b'{"jsonrpc":"2.0","method":"daemon.ping","id":1}':
            try:
                slow.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            assert_still_serving(fuzzed)
            time.sleep(0.3)
            slow.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                received += slow.recv(4096)
            slow.setblocking(True)
            if received:
                break

    (answer,) = answers(received)
    assert isinstance(answer, dict)
    assert answer["error"]["code"] == -32600
    assert "in time" in answer["error"]["message"]


def test_client_that_disconnects_mid_response_does_not_hurt_the_daemon(
    fuzzed: MeshdProcess,
) -> None:
    request = b'{"jsonrpc":"2.0","method":"rpc.discover","id":1}\n' * 200
    for _ in range(5):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(str(fuzzed.socket))
            with contextlib.suppress(OSError):
                connection.sendall(request)
                connection.recv(10)

    assert_still_serving(fuzzed)


def test_a_hundred_concurrent_clients_each_get_an_answer_or_a_close(
    fuzzed: MeshdProcess,
) -> None:
    outcomes: list[str] = []
    start = threading.Barrier(100)

    def client(index: int) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(30)
            start.wait()
            try:
                connection.connect(str(fuzzed.socket))
                connection.sendall(
                    b'{"jsonrpc":"2.0","method":"mesh.status","id":%d}\n' % index
                )
                line = connection.makefile("rb").readline()
            except OSError:
                outcomes.append("closed")
                return
        if not line:
            outcomes.append("closed")
            return
        answer = json.loads(line)
        outcomes.append(
            "result" if "result" in answer else f"error {answer['error']['code']}"
        )

    threads = [threading.Thread(target=client, args=(index,)) for index in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(outcomes) == 100
    assert set(outcomes) <= {"result", "closed", "error -32077"}
    assert "result" in outcomes
    assert_still_serving(fuzzed)
