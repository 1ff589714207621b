"""What every command that talks to a server shares: target, credentials, errors, output.

Messages, hints and progress go to stderr, so that stdout carries only data (tables, keys,
`--json` documents) and can be piped.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

import click
import grpc
from rich.console import Console
from rich.markup import escape
from tributary import event_to_json
from tributary._proto.cdp.v1 import event_pb2

DEFAULT_TARGET: Final = "127.0.0.1:50051"
# Deadline of unary calls: a server that accepts the connection but never answers is reported.
RPC_TIMEOUT_SECS: Final = 30.0
# Credential hints for UNAUTHENTICATED answers.
ADMIN_CREDENTIAL: Final = "--token or TRIBUTARY_ADMIN_TOKEN"
WRITE_KEY_CREDENTIAL: Final = "--write-key or TRIBUTARY_WRITE_KEY"
F = TypeVar("F", bound=Callable[..., Any])

# soft_wrap: rich would otherwise wrap messages at 80 columns when stderr is not a terminal.
console = Console(stderr=True, soft_wrap=True)
stdout = Console()


def target_option(func: F) -> F:
    return click.option(
        "--target",
        envvar="TRIBUTARY_TARGET",
        default=DEFAULT_TARGET,
        show_default=True,
        help="Server host:port (env TRIBUTARY_TARGET).",
    )(func)


def token_option(func: F) -> F:
    return click.option(
        "--token", envvar="TRIBUTARY_ADMIN_TOKEN", default="", help="Admin token (env TRIBUTARY_ADMIN_TOKEN)."
    )(func)


def write_key_option(func: F) -> F:
    return click.option(
        "--write-key", envvar="TRIBUTARY_WRITE_KEY", default="", help="Source write key (env TRIBUTARY_WRITE_KEY)."
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")(func)


def admin_metadata(token: str) -> tuple[tuple[str, str], ...]:
    if not token:
        fail(f"an admin token is required: {ADMIN_CREDENTIAL}")
    return (("authorization", f"Bearer {token}"),)


def channel(target: str) -> grpc.Channel:
    """A channel to the server: TLS when TRIBUTARY_TLS_CA names the CA's certificate (PEM), with
    TRIBUTARY_TLS_CLIENT_CERT and TRIBUTARY_TLS_CLIENT_KEY for a server that requires client
    certificates (mTLS); plain otherwise."""
    options = [("grpc.max_receive_message_length", 4 * 1024 * 1024)]
    ca = os.environ.get("TRIBUTARY_TLS_CA")
    if not ca:
        return grpc.insecure_channel(target, options=options)

    def read(variable: str) -> bytes | None:
        path = os.environ.get(variable)
        if not path:
            return None
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            fail(f"{variable}: cannot read {path}: {exc.strerror}")

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read("TRIBUTARY_TLS_CA"),
        private_key=read("TRIBUTARY_TLS_CLIENT_KEY"),
        certificate_chain=read("TRIBUTARY_TLS_CLIENT_CERT"),
    )
    return grpc.secure_channel(target, credentials, options=options)


def fail(message: str) -> NoReturn:
    """Prints `error: message` on stderr and exits with status 1."""
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    sys.exit(1)


def json_argument(value: str, what: str) -> Any:
    """JSON given inline, or `@FILE`."""
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        fail(f"{what}: not JSON: {err}")


def fail_rpc(error: grpc.RpcError, target: str, credential: str = ADMIN_CREDENTIAL) -> NoReturn:
    """Exits with a message that says what went wrong in the user's terms."""
    fail(describe_rpc_error(error, target, credential))


def describe_rpc_error(error: BaseException, target: str, credential: str = "") -> str:
    code = error.code() if isinstance(error, grpc.Call) else None
    details = (error.details() if isinstance(error, grpc.Call) else None) or str(error)
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"cannot reach the server at {target}: {details}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the server at {target} did not answer in time: {details}"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        hint = f" (check {credential})" if credential else ""
        return f"the server refused the credentials: {details}{hint}"
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return f"not allowed with this credential: {details}"
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
        return details
    return f"{code.name if code else 'error'}: {details}"


def check_serving(target: str) -> None:
    """Exits with "cannot reach the server" unless the server at `target` answers its health check.

    For calls that retry on UNAVAILABLE (the client's bulk stream): an absent server is reported
    at once instead of after every retry.
    """
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with channel(target) as chan:
        try:
            reply = health_pb2_grpc.HealthStub(chan).Check(health_pb2.HealthCheckRequest(), timeout=10.0)
        except grpc.RpcError as exc:
            fail(describe_rpc_error(exc, target))
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        fail(f"the server at {target} is not serving (it may be shutting down)")


def event_json(event: event_pb2.Event) -> dict[str, Any]:
    """The Segment-Spec JSON of a stored event, as the client library writes it."""
    return event_to_json(event)


def event_label(document: dict[str, Any]) -> str:
    """What an event is about, by type: the track's event, the page's name, the group, the alias."""
    return str(next((document[key] for key in ("event", "name", "groupId", "previousId") if document.get(key)), ""))


def iso_time(ms: int) -> str:
    """Unix milliseconds as ISO-8601 UTC to the second."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")


def print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")
