"""meshctl: the command line of meshd, a client of its socket only.

Every command maps to one JSON-RPC method (see :data:`COMMANDS`). One
dispatcher, :func:`main`, turns outcomes into text and exit statuses:

    0  the command succeeded
    1  the daemon reported an error (one line; JSON on stderr with --json)
    2  bad usage (argparse)
    3  no daemon answers on the socket (with a hint how to start one)
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from meshctl import render
from meshd.client import Client, DaemonUnavailable, RpcError
from meshd.errors import MeshError
from meshd.paths import HOME_VARIABLE, client_socket

EXIT_OK = 0
EXIT_DAEMON_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_DAEMON = 3

# How often `join --wait` and `recover --wait` ask whether the mesh took us in.
POLL_INTERVAL = 2.0

Arguments = argparse.Namespace
ParamBuilder = Callable[[Arguments], dict[str, Any]]


class UsageError(Exception):
    """The command line is well-formed but a value in it is not usable."""


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


def json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text!r}") from None


def json_file(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise argparse.ArgumentTypeError(
            f"cannot read {path}: {exc.strerror}"
        ) from None
    except ValueError:
        raise argparse.ArgumentTypeError(f"{path} does not hold JSON") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


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


def wait_for_membership(client: Client, arguments: Arguments, result: Any) -> None:
    """Poll ``mesh.status`` until this device is a member or the wait ends."""
    if not arguments.wait:
        return
    code = result.get("code") if isinstance(result, dict) else None
    if code and not arguments.json:
        _progress(f"Confirmation code: {code} (enter it on an approving device)")

    deadline = time.monotonic() + arguments.wait
    while time.monotonic() < deadline:
        status = client.call("mesh.status")
        if isinstance(status, dict) and status.get("state") == "member":
            _progress("Approved: this device is now a member of the mesh")
            return
        _progress(
            f"Waiting for approvals... ({int(deadline - time.monotonic())} s left)"
        )
        time.sleep(min(POLL_INTERVAL, max(deadline - time.monotonic(), 0)))
    raise MeshError(
        f"Not approved within {arguments.wait:g} seconds; the request stays pending"
    )


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
        _progress(
            f"Waiting for approvals ({found.get('approvals')}/"
            f"{found.get('required')})... ({int(deadline - time.monotonic())} s left)"
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
    if source == "-" or (source is None and not sys.stdin.isatty()):
        passphrase = sys.stdin.readline().rstrip("\r\n")
    elif source is not None:
        try:
            passphrase = Path(source).read_text(encoding="utf-8").splitlines()[0]
        except (OSError, IndexError):
            raise UsageError(f"cannot read a passphrase from {source}") from None
    else:
        passphrase = getpass.getpass("Keystore passphrase: ")
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
    Command("invite", "mesh.invite", "an invite string for a new device"),
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
                help="a lost device to revoke (repeatable)",
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
        text=render.table(
            ("id", "kind", "summary", "approvals", "required", "expires_at"),
            "Nothing pending.",
        ),
    ),
    Command(
        "approve",
        "proposal.approve",
        "approve a proposal",
        lambda parser: (
            parser.add_argument("id"),
            parser.add_argument("--code", help="the code shown on the new device"),
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
            parser.add_argument("device_id"),
            parser.add_argument("--reason", help="why"),
        ),
        lambda a: {"device_id": a.device_id, "reason": a.reason},
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
        text=render.table(("id", "path", "candidates"), "No conflicts."),
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
            parser.add_argument("--expires", metavar="T", help="expiry time"),
        ),
        lambda a: {"to": a.to, "capability": a.capability, "expires": a.expires},
        text=render.pretty_json,
    ),
    Command(
        "delegations",
        "delegation.list",
        "the delegations of the passport and whether each holds now",
        text=render.table(
            ("id", "capabilities", "expires_at", "issuer", "valid"), "No delegations."
        ),
    ),
    # events are streamed; see run_events
    Command(
        "events",
        "events.subscribe",
        "stream events as lines",
        lambda parser: (
            parser.add_argument(
                "--since",
                type=int,
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
    parser = argparse.ArgumentParser(
        prog="meshctl", description="Control the local meshd."
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--home", type=Path, help=f"the daemon's home (or set {HOME_VARIABLE})"
    )
    where.add_argument("--socket", type=Path, help="the daemon's socket")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
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
    parser = build_parser()
    arguments = parser.parse_args(argv)
    socket_path = client_socket(arguments.home, arguments.socket)
    try:
        with Client(socket_path) as client:
            return run(client, arguments)
    except UsageError as exc:
        parser.error(str(exc))
    except DaemonUnavailable as exc:
        return fail(
            arguments,
            EXIT_NO_DAEMON,
            -32099,
            str(exc),
            {"reason": "no_daemon"},
            hint=_start_hint(arguments),
        )
    except MeshError as exc:
        return fail(arguments, EXIT_DAEMON_ERROR, exc.code, exc.message, exc.to_data())
    except RpcError as exc:
        return fail(arguments, EXIT_DAEMON_ERROR, exc.code, exc.message, exc.data)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # the promise: never a traceback
        return fail(
            arguments, EXIT_DAEMON_ERROR, -32603, f"Unexpected failure: {exc}", None
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
    result = client.call(command.method, **params)
    status = EXIT_OK
    if command.after is not None:
        try:
            replaced = command.after(client, arguments, result)
        except ProofInvalid as exc:
            replaced, status = exc.result, EXIT_DAEMON_ERROR
        result = result if replaced is None else replaced
    if arguments.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(command.text(result))
    return status


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
    arguments: Arguments,
    status: int,
    code: int,
    message: str,
    data: Any,
    hint: str = "",
) -> int:
    """Report one error: one line, or one JSON object with --json."""
    if arguments.json:
        error = {"error": {"code": code, "message": message, "data": data}}
        print(json.dumps(error, ensure_ascii=False), file=sys.stderr)
    else:
        print(f"meshctl: {message}" + (f" ({hint})" if hint else ""), file=sys.stderr)
    return status


def _start_hint(arguments: Arguments) -> str:
    if arguments.home is not None:
        return f"start one with: meshd run --home {arguments.home}"
    return "start one with: meshd run --home DIR, then pass --home DIR"


def entry() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    entry()
