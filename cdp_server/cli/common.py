"""What every command that talks to a server shares: target, credentials, errors, output."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click
import grpc
from rich.console import Console

DEFAULT_TARGET = "127.0.0.1:50051"
F = TypeVar("F", bound=Callable[..., Any])

# Messages and progress go to stderr so that stdout stays clean for data (and --json).
console = Console(stderr=True)
stdout = Console()


def target_option(func: F) -> F:
    return click.option(
        "--target", envvar="TRIBUTARY_TARGET", default=DEFAULT_TARGET, show_default=True, help="Server host:port."
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
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")(func)


def admin_metadata(token: str) -> tuple[tuple[str, str], ...]:
    if not token:
        fail("an admin token is required: --token or TRIBUTARY_ADMIN_TOKEN")
    return (("authorization", f"Bearer {token}"),)


def write_key_metadata(write_key: str) -> tuple[tuple[str, str], ...]:
    if not write_key:
        fail("a write key is required: --write-key or TRIBUTARY_WRITE_KEY")
    return (("authorization", "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()),)


def channel(target: str) -> grpc.Channel:
    return grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 4 * 1024 * 1024)])


def fail(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}")
    sys.exit(1)


def fail_rpc(error: grpc.RpcError, target: str) -> NoReturn:
    code = error.code() if isinstance(error, grpc.Call) else None
    details = error.details() if isinstance(error, grpc.Call) else str(error)
    if code == grpc.StatusCode.UNAVAILABLE:
        fail(f"cannot reach the server at {target}: {details}")
    fail(f"{code.name if code else 'error'}: {details}")


def print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")
