"""meshctl: the command line of meshd, a client of its socket only.

Every command maps to one JSON-RPC method (see :data:`COMMANDS`). One
dispatcher, :func:`main`, turns outcomes into text and exit statuses:

    0  the command succeeded
    1  the daemon reported an error (one line; JSON on stderr with --json)
    2  bad usage: a malformed argument or value, found before anything is sent
    3  no daemon answers on the socket (with a hint how to start one)
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from meshctl import render
from meshd.client import Client, DaemonUnavailable, RpcError
from meshd.errors import InvalidInput, MeshError
from meshd.expiry import parse_expiry
from meshd.paths import HOME_VARIABLE, client_socket

EXIT_OK = 0
EXIT_DAEMON_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_DAEMON = 3

# How often `join --wait` and `recover --wait` ask whether the mesh took us in.
POLL_INTERVAL = 2.0

Arguments = argparse.Namespace
ParamBuilder = Callable[[Arguments], dict[str, Any]]


# JSON-RPC's "invalid params": what a usage error is reported as with --json.
USAGE_CODE = -32602

# Deepest JSON value meshctl sends; the daemon refuses deeper ones anyway.
MAX_JSON_DEPTH = 64

# Longest piece of a bad argument quoted back in an error message.
QUOTED_LENGTH = 40

# Confirmation codes are six digits; anything else never reaches the daemon.
CODE_PATTERN = re.compile(r"[0-9]{6}")


class UsageError(Exception):
    """The command line is well-formed but a value in it is not usable."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


class Parser(argparse.ArgumentParser):
    """An argument parser that raises :class:`UsageError` instead of exiting,
    so that ``--json`` can report bad usage as a JSON error object."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.format_usage())


class WaitEnded(Exception):
    """A ``--wait`` ended before the mesh took this device in."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.message = message
        self.result = result


@dataclass(frozen=True)
class Command:
    """One meshctl command: its arguments, its RPC method and its output."""

    name: str
    method: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], object] = lambda parser: None
    params: ParamBuilder = lambda arguments: {}
    text: render.Renderer = render.fields
    # Runs after the call; a value it returns replaces the result shown.
    after: Callable[[Client, Arguments, Any], Any] | None = None
    group: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)


# -- argument helpers ------------------------------------------------------------


def quoted(text: str) -> str:
    """A piece of user input, short and on one line, for an error message."""
    return render.clean(repr(render.shorten(text, QUOTED_LENGTH)))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{render.shorten(text, QUOTED_LENGTH)} is too large")
    return value


def parse_json(text: str) -> Any:
    """Strict JSON as the daemon accepts it: finite numbers, bounded nesting.

    Raises:
        ValueError: the text is not such JSON; the message says why.
    """
    # Nesting is bounded before parsing: a deep value would otherwise
    # exhaust the parser's recursion instead of failing cleanly.
    if _nesting(text) > MAX_JSON_DEPTH:
        raise ValueError(f"it nests deeper than {MAX_JSON_DEPTH} levels")

    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError(f"it nests deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at character {exc.pos}") from None


def _nesting(text: str) -> int:
    """The deepest bracket nesting in the text, strings skipped."""
    depth = deepest = 0
    for token in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', text):
        mark = token.group()
        if mark in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif mark in "]}":
            depth -= 1
    return deepest


def json_value(text: str) -> Any:
    try:
        return parse_json(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"values must be JSON (NaN and Infinity are not): {exc}: {quoted(text)}"
        ) from None


def json_file(path: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise argparse.ArgumentTypeError(
            f"cannot read {quoted(path)}: {exc.strerror}"
        ) from None
    except UnicodeDecodeError:
        raise argparse.ArgumentTypeError(f"{quoted(path)} is not UTF-8 text") from None
    try:
        return parse_json(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{quoted(path)} does not hold JSON: {exc}"
        ) from None


def confirmation_code(text: str) -> str:
    if not CODE_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"the code is the 6 digits shown on the new device, not {quoted(text)}"
        )
    return text


def whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a whole number: {quoted(text)}"
        ) from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {minimum} or more")
    return value


def positive_int(text: str) -> int:
    return whole_number(text, 1)


def event_id(text: str) -> int:
    return whole_number(text, 0)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a number of seconds: {quoted(text)}"
        ) from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError("must be a finite number of seconds")
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def expiry(text: str) -> str:
    """A delegation's expiry, checked here and sent without surrounding spaces.

    The daemon reads it again with its own clock; checking it first makes
    a blank text, a time without its zone, a duration that is not positive
    or a moment too far ahead a usage error rather than a refusal by the
    daemon.
    """
    try:
        moment = parse_expiry(text, time.time())
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(f"{exc.message}: {quoted(text)}") from None
    if moment <= time.time():
        raise argparse.ArgumentTypeError(f"{quoted(text)} is not in the future")
    return text.strip()


# Options whose value may start with a dash followed by a digit (a negative
# duration); argparse would read such a value as an unknown option.
DASHED_VALUE_OPTIONS = ("--expires",)


def attach_dashed_values(words: Sequence[str]) -> list[str]:
    """``--expires -5s`` as ``--expires=-5s``, so that the value is checked
    and refused with its own message instead of a puzzling one."""
    joined: list[str] = []
    index = 0
    while index < len(words):
        word, following = words[index], words[index + 1 : index + 2]
        if word == "--":
            return [*joined, *words[index:]]
        if (
            word in DASHED_VALUE_OPTIONS
            and following
            and re.match(r"-\d", following[0])
        ):
            joined.append(f"{word}={following[0]}")
            index += 2
            continue
        joined.append(word)
        index += 1
    return joined


def device_options(
    parser: argparse.ArgumentParser, kind: bool = True
) -> argparse.ArgumentParser:
    parser.add_argument("--device-name", help="a name for this device")
    if kind:
        parser.add_argument(
            "--device-kind", help="phone, laptop, tablet, watch, server..."
        )
    return parser


# -- commands that do more than one call -------------------------------------------


def wait_for_membership(client: Client, arguments: Arguments, result: Any) -> Any:
    """With ``--wait``: poll ``mesh.status`` until this device is a member.

    The code and request id are shown before waiting, since the person needs
    them on another device to approve. The answer is the request with its
    final ``state``.

    Raises:
        WaitEnded: the wait ran out, or the request ended without approval.
    """
    if arguments.wait is None or not isinstance(result, dict):
        return None
    request = dict(result, state="pending")
    progress(
        arguments,
        f"Type the code {render.value_text(request.get('code'))} on a device of "
        f"the mesh: meshctl approve {render.value_text(request.get('request_id'))}"
        f" --code CODE (request {render.value_text(request.get('request_id'))})",
    )

    deadline = time.monotonic() + arguments.wait
    while True:
        request["state"] = _request_state(client.call("mesh.status"))
        if request["state"] == "applied":
            progress(arguments, "Approved: this device is now a member of the mesh")
            return request
        if request["state"] != "pending":
            ended = render.request_state_text(request["state"])
            raise WaitEnded(f"The request ended: {ended}", request)
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitEnded(
                f"Not approved within {arguments.wait:g} seconds; "
                "the request stays pending",
                request,
            )
        progress(arguments, f"Waiting for approvals... ({int(left)} s left)")
        time.sleep(min(POLL_INTERVAL, left))


def _request_state(status: Any) -> str:
    """This device's request state, as ``mesh.status`` tells it."""
    if not isinstance(status, dict):
        return "pending"
    if status.get("state") == "member":
        return "applied"
    request = status.get("request")
    if isinstance(request, dict) and isinstance(request.get("state"), str):
        return str(request["state"])
    return "pending"


def progress(arguments: Arguments, line: str) -> None:
    """A progress line on stderr, for people only: none with --json."""
    if not arguments.json:
        _progress(line)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class ProofInvalid(Exception):
    """``verify`` ran and the proof did not hold: the command fails."""

    def __init__(self, result: Any) -> None:
        super().__init__("the proof is not valid")
        self.result = result


def wait_for_proof(client: Client, arguments: Arguments, result: Any) -> Any:
    """With ``--wait``: poll ``auth.proof`` until the threshold proof is
    complete, then answer with the proof itself."""
    if not isinstance(result, dict) or "proposal_id" not in result:
        return None
    if result.get("proof") is not None:
        return result["proof"]
    if not arguments.wait:
        if not arguments.json:
            _progress(
                f"Approve it on other devices: meshctl approve {result['proposal_id']}"
                f"; then: meshctl proof {result['proposal_id']}"
            )
        return None
    deadline = time.monotonic() + arguments.wait
    while time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
        found = client.call("auth.proof", id=result["proposal_id"])
        if isinstance(found, dict) and found.get("proof") is not None:
            return found["proof"]
        progress(
            arguments,
            f"Waiting for approvals ({found.get('approvals')}/"
            f"{found.get('required')})... ({int(deadline - time.monotonic())} s left)",
        )
    raise MeshError(
        f"Not approved within {arguments.wait:g} seconds; "
        f"ask again with: meshctl proof {result['proposal_id']} --wait SECONDS"
    )


def exit_on_invalid(client: Client, arguments: Arguments, result: Any) -> Any:
    """A proof that does not hold is a failed command (exit status 1)."""
    if isinstance(result, dict) and result.get("valid") is False:
        raise ProofInvalid(result)
    return None


def rotate_params(arguments: Arguments) -> dict[str, Any]:
    if arguments.passphrase_file is None:
        return {}
    return unlock_params(arguments)


def unlock_params(arguments: Arguments) -> dict[str, Any]:
    """The passphrase from a file, stdin ('-'), or a prompt on the terminal."""
    source = arguments.passphrase_file
    try:
        if source == "-" or (source is None and not sys.stdin.isatty()):
            passphrase = sys.stdin.readline().rstrip("\r\n")
        elif source is not None:
            passphrase = Path(source).read_text(encoding="utf-8").splitlines()[0]
        else:
            passphrase = getpass.getpass("Keystore passphrase: ")
    except (OSError, IndexError, UnicodeDecodeError, EOFError):
        where = "stdin" if source in (None, "-") else quoted(source)
        raise UsageError(
            f"cannot read a passphrase (UTF-8 text) from {where}"
        ) from None
    if not passphrase:
        raise UsageError("the passphrase is empty")
    return {"passphrase": passphrase}


# -- the command table -------------------------------------------------------------

COMMANDS: tuple[Command, ...] = (
    # mesh: the identity
    Command(
        "init",
        "mesh.create",
        "create a mesh with this device as its first member",
        lambda parser: (
            parser.add_argument(
                "--label", required=True, help="a name for the identity"
            ),
            parser.add_argument(
                "--storage", required=True, help="storage URL (fsspec)"
            ),
            device_options(parser),
        ),
        lambda a: {
            "label": a.label,
            "storage": a.storage,
            "device_name": a.device_name,
            "device_kind": a.device_kind,
        },
    ),
    Command(
        "status", "mesh.status", "who am I, the mesh, warnings", text=render.status
    ),
    Command(
        "devices",
        "device.list",
        "the member devices",
        text=render.table(
            ("id", "name", "kind", "state", "enrolled_at"), "No devices."
        ),
    ),
    Command(
        "invite",
        "mesh.invite",
        "an invite string for a new device",
        text=render.invite,
    ),
    Command(
        "threshold",
        "mesh.set_threshold",
        "propose a new approval threshold",
        lambda parser: parser.add_argument("threshold", type=positive_int, metavar="N"),
        lambda a: {"threshold": a.threshold},
    ),
    Command(
        "did-document",
        "mesh.did_document",
        "the W3C DID document of the mesh",
        text=render.pretty_json,
    ),
    # enrollment and recovery: on a new device
    Command(
        "join",
        "enrollment.request",
        "on a new device: ask to enroll",
        lambda parser: (
            parser.add_argument("invite"),
            device_options(parser),
            parser.add_argument(
                "--wait", type=seconds, metavar="SECONDS", help="wait for approvals"
            ),
        ),
        lambda a: {
            "invite": a.invite,
            "device_name": a.device_name,
            "device_kind": a.device_kind,
        },
        after=wait_for_membership,
    ),
    Command(
        "recover",
        "recovery.request",
        "on a new device: recover the identity, revoking lost devices",
        lambda parser: (
            parser.add_argument("invite"),
            parser.add_argument(
                "--replace",
                action="append",
                default=[],
                metavar="DEVICE_ID",
                help="a lost device to revoke, by its id or the start of it"
                " (repeatable)",
            ),
            device_options(parser),
            parser.add_argument(
                "--wait", type=seconds, metavar="SECONDS", help="wait for approvals"
            ),
        ),
        lambda a: {
            "invite": a.invite,
            "replace": a.replace,
            "device_name": a.device_name,
            "device_kind": a.device_kind,
        },
        after=wait_for_membership,
    ),
    # proposals
    Command(
        "pending",
        "proposal.list",
        "proposals waiting for approvals",
        text=render.pending,
    ),
    Command(
        "approve",
        "proposal.approve",
        "approve a proposal",
        lambda parser: (
            parser.add_argument("id"),
            parser.add_argument(
                "--code",
                type=confirmation_code,
                help="the 6-digit code shown on the new device",
            ),
        ),
        lambda a: {"id": a.id, "code": a.code},
    ),
    Command(
        "reject",
        "proposal.reject",
        "reject a proposal",
        lambda parser: parser.add_argument("id"),
        lambda a: {"id": a.id},
    ),
    # device
    Command(
        "revoke",
        "device.revoke",
        "propose revoking a device",
        lambda parser: (
            parser.add_argument(
                "device_id", help="its id, or the start of it that only it has"
            ),
            parser.add_argument("--reason", help="why"),
            parser.add_argument(
                "--threshold",
                type=positive_int,
                metavar="N",
                help="the threshold after the revocation (default: unchanged)",
            ),
        ),
        lambda a: {
            "device_id": a.device_id,
            "reason": a.reason,
            "threshold": a.threshold or 0,
        },
    ),
    Command(
        "rotate-key",
        "device.rotate_key",
        "rotate this device's keys (the device id stays the same)",
        lambda parser: parser.add_argument(
            "--passphrase-file",
            metavar="FILE",
            help="a protected keystore's passphrase, from FILE ('-' for stdin)",
        ),
        rotate_params,
    ),
    Command(
        "unlock",
        "device.unlock",
        "unlock the keystore (passphrase from a prompt, a file or stdin)",
        lambda parser: parser.add_argument(
            "--passphrase-file",
            metavar="FILE",
            help="read it from FILE ('-' for stdin)",
        ),
        unlock_params,
    ),
    # passport (subcommands are added by _passport_commands)
    Command(
        "passport get",
        "passport.get",
        "the whole passport or one path",
        lambda parser: parser.add_argument("path", nargs="?"),
        lambda a: {"path": a.path},
        text=render.pretty_json,
        group="passport",
    ),
    Command(
        "passport set",
        "passport.set",
        "set a path to a JSON value",
        lambda parser: (
            parser.add_argument("path"),
            parser.add_argument("value", type=json_value, metavar="JSON"),
        ),
        lambda a: {"path": a.path, "value": a.value},
        group="passport",
    ),
    Command(
        "passport delete",
        "passport.delete",
        "delete a path",
        lambda parser: parser.add_argument("path"),
        lambda a: {"path": a.path},
        group="passport",
    ),
    Command(
        "capability add",
        "passport.add_capability",
        "add a capability to the passport",
        lambda parser: (
            parser.add_argument("name"),
            parser.add_argument("--data", type=json_value, metavar="JSON"),
        ),
        lambda a: {"name": a.name, "data": a.data},
        group="capability",
    ),
    # conflicts and sync
    Command(
        "conflicts",
        "conflict.list",
        "unresolved conflicts",
        text=render.conflicts,
    ),
    Command(
        "resolve",
        "conflict.resolve",
        "settle a conflict by picking one op",
        lambda parser: (
            parser.add_argument("id"),
            parser.add_argument("--pick", required=True, metavar="OP_ID"),
        ),
        lambda a: {"id": a.id, "pick": a.pick},
    ),
    Command(
        "sync",
        "sync.now",
        "push and pull now",
        lambda parser: parser.add_argument(
            "--wait", action="store_true", help="wait until done"
        ),
        lambda a: {"wait": a.wait},
    ),
    # authentication and delegation
    Command(
        "prove",
        "auth.prove",
        "an authentication proof for a challenge",
        lambda parser: (
            parser.add_argument("--challenge", required=True),
            parser.add_argument("--audience"),
            parser.add_argument(
                "--threshold",
                action="store_true",
                help="a proof by threshold devices: approve it on the others",
            ),
            parser.add_argument(
                "--wait",
                type=seconds,
                metavar="SECONDS",
                help="with --threshold: wait for the approvals, then print the proof",
            ),
        ),
        lambda a: {
            "challenge": a.challenge,
            "audience": a.audience,
            "threshold": a.threshold,
        },
        text=render.pretty_json,
        after=wait_for_proof,
    ),
    Command(
        "proof",
        "auth.proof",
        "a threshold proof started with prove --threshold: the proof once approved",
        lambda parser: (
            parser.add_argument("id"),
            parser.add_argument(
                "--wait", type=seconds, metavar="SECONDS", help="wait for approvals"
            ),
        ),
        lambda a: {"id": a.id},
        text=render.pretty_json,
        after=wait_for_proof,
    ),
    Command(
        "verify",
        "auth.verify",
        "check a proof (a JSON file) against the mesh log",
        lambda parser: (
            parser.add_argument("proof", type=json_file, metavar="FILE"),
            parser.add_argument("--challenge", help="the challenge you gave"),
            parser.add_argument("--audience", help="who the proof must be for"),
        ),
        lambda a: {"proof": a.proof, "challenge": a.challenge, "audience": a.audience},
        after=exit_on_invalid,
    ),
    Command(
        "delegate",
        "delegation.issue",
        "a delegation for an agent key",
        lambda parser: (
            parser.add_argument("--to", required=True, metavar="PUBKEY"),
            parser.add_argument("--capability", required=True),
            parser.add_argument(
                "--expires",
                type=expiry,
                metavar="T",
                help="a duration (12h, 7d), an ISO time with its zone, or epoch "
                "seconds",
            ),
        ),
        lambda a: {"to": a.to, "capability": a.capability, "expires": a.expires},
        text=render.pretty_json,
    ),
    Command(
        "delegations",
        "delegation.list",
        "the delegations of the passport and whether each holds now",
        text=render.delegations,
    ),
    # events are streamed; see run_events
    Command(
        "events",
        "events.subscribe",
        "stream events as lines",
        lambda parser: (
            parser.add_argument(
                "--since",
                type=event_id,
                metavar="ID",
                help="resume after this event id (0: all kept)",
            ),
            parser.add_argument(
                "--no-follow",
                action="store_true",
                help="stop after the events already there",
            ),
        ),
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="meshctl", description="Control the local meshd.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--home", type=Path, help=f"the daemon's home (or set {HOME_VARIABLE})"
    )
    where.add_argument("--socket", type=Path, help="the daemon's socket")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    groups: dict[str, argparse._SubParsersAction[Parser]] = {}
    for command in COMMANDS:
        if command.group:
            if command.group not in groups:
                group_parser = commands.add_parser(
                    command.group, help=f"{command.group} commands"
                )
                groups[command.group] = group_parser.add_subparsers(
                    dest="subcommand", metavar="SUBCOMMAND", required=True
                )
            subparser = groups[command.group].add_parser(
                command.name.split()[1], help=command.help
            )
        else:
            subparser = commands.add_parser(command.name, help=command.help)
        command.arguments(subparser)
        subparser.set_defaults(spec=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status says how it went."""
    words = list(sys.argv[1:] if argv is None else argv)
    # Known before parsing, so that bad usage is reported the way asked; and
    # accepted after the command too (no JSON value is spelled --json).
    as_json = "--json" in words
    if as_json:
        words = ["--json", *(word for word in words if word != "--json")]
    words = attach_dashed_values(words)
    parser = build_parser()
    try:
        arguments = parser.parse_args(words)
    except UsageError as exc:
        return usage_failure(as_json, exc)
    try:
        return connect_and_run(arguments)
    except UsageError as exc:
        return usage_failure(as_json, exc, parser.format_usage())


def connect_and_run(arguments: Arguments) -> int:
    """Run the parsed command; every failure but bad usage becomes a status.

    Raises:
        UsageError: a value on the command line turned out to be unusable.
    """
    try:
        socket_path = client_socket(arguments.home, arguments.socket)
        with Client(socket_path) as client:
            return run(client, arguments)
    except UsageError:
        raise
    except DaemonUnavailable as exc:
        return fail(
            arguments.json,
            EXIT_NO_DAEMON,
            -32099,
            str(exc),
            {"reason": "no_daemon"},
            hint=_start_hint(arguments),
        )
    except MeshError as exc:
        return fail(
            arguments.json,
            EXIT_DAEMON_ERROR,
            exc.code,
            exc.message,
            exc.to_data(),
            hint=_error_hint(arguments, exc.reason),
        )
    except RpcError as exc:
        return fail(arguments.json, EXIT_DAEMON_ERROR, exc.code, exc.message, exc.data)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # the promise: never a traceback
        return fail(
            arguments.json,
            EXIT_DAEMON_ERROR,
            -32603,
            f"Unexpected failure: {type(exc).__name__}: {exc}",
            None,
        )


def run(client: Client, arguments: Arguments) -> int:
    command: Command = arguments.spec
    if command.name == "events":
        return run_events(client, arguments)

    params = {
        key: value
        for key, value in command.params(arguments).items()
        if value is not None
    }
    require_utf8(params)
    result = client.call(command.method, **params)

    # The follow-up (waiting, judging a proof) may replace what is shown.
    status = EXIT_OK
    if command.after is not None:
        try:
            replaced = command.after(client, arguments, result)
        except ProofInvalid as exc:
            replaced, status = exc.result, EXIT_DAEMON_ERROR
        except WaitEnded as exc:
            show(command, arguments, exc.result)
            return fail(
                arguments.json,
                EXIT_DAEMON_ERROR,
                -32000,
                exc.message,
                {"reason": "not_approved", **exc.result},
            )
        result = result if replaced is None else replaced
    show(command, arguments, result)
    return status


def require_utf8(params: dict[str, Any]) -> None:
    """Refuse arguments holding bytes that are not UTF-8 text.

    Raises:
        UsageError: an argument (or the passphrase) cannot be sent as JSON text.
    """
    # Undecodable bytes from the terminal or a file arrive as lone
    # surrogates, which the daemon would refuse as a parse error.
    try:
        json.dumps(params, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("an argument or the passphrase is not UTF-8 text") from None


def show(command: Command, arguments: Arguments, result: Any) -> None:
    """Print a result: exact JSON with --json, readable text otherwise."""
    if arguments.json:
        print(json.dumps(result, ensure_ascii=False), flush=True)
    else:
        print(command.text(result), flush=True)


def _error_hint(arguments: Arguments, reason: str) -> str:
    """What to do next, for errors a person can fix on the command line."""
    command: Command = arguments.spec
    if reason == "wrong_code" and command.name == "approve" and not arguments.code:
        return "type the 6-digit code shown on the new device with --code"
    return ""


def run_events(client: Client, arguments: Arguments) -> int:
    """Print events, one per line, until interrupted (or caught up)."""
    with client.subscribe(arguments.since) as stream:
        if stream.missed:
            _progress("Some events were dropped before you could see them")
        if arguments.no_follow and (
            arguments.since is None or stream.latest <= arguments.since
        ):
            return EXIT_OK
        for event in stream:
            print(
                json.dumps(event, ensure_ascii=False)
                if arguments.json
                else render.event_line(event),
                flush=True,
            )
            if arguments.no_follow and event.get("id", 0) >= stream.latest:
                return EXIT_OK
    return EXIT_OK


def fail(
    as_json: bool,
    status: int,
    code: int,
    message: str,
    data: Any,
    hint: str = "",
) -> int:
    """Report one error: one line, or one JSON object with --json."""
    if as_json:
        error = {"error": {"code": code, "message": message, "data": data}}
        print(json.dumps(error, ensure_ascii=False), file=sys.stderr)
    else:
        line = f"meshctl: {message}" + (f" ({hint})" if hint else "")
        print(render.clean(line), file=sys.stderr)
    return status


def usage_failure(as_json: bool, error: UsageError, usage: str = "") -> int:
    """Bad usage: the short usage and one line, or a JSON error object."""
    if as_json:
        return fail(as_json, EXIT_USAGE, USAGE_CODE, error.message, {"reason": "usage"})
    sys.stderr.write(error.usage or usage)
    print(render.clean(f"meshctl: error: {error.message}"), file=sys.stderr)
    return EXIT_USAGE


def _start_hint(arguments: Arguments) -> str:
    if arguments.home is not None:
        return f"start one with: meshd run --home {arguments.home}"
    return "start one with: meshd run --home DIR, then pass --home DIR"


def entry() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    entry()
