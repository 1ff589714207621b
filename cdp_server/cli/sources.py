"""`cdp source create|list`."""

from __future__ import annotations

import datetime as dt

import click
import grpc
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from tributary._proto.cdp.v1 import admin_pb2, admin_pb2_grpc

from cdp_server.cli.common import (
    RPC_TIMEOUT_SECS,
    admin_metadata,
    channel,
    console,
    fail_rpc,
    json_option,
    print_json,
    stdout,
    target_option,
    token_option,
)


@click.group()
def source() -> None:
    """Manage sources and their write keys."""


@source.command("create")
@click.argument("name")
@target_option
@token_option
@json_option
def create(name: str, target: str, token: str, as_json: bool) -> None:
    """Create a source named NAME and print its write key.

    The key is shown this once (the server keeps only its hash): it alone goes to stdout, so
    KEY=$(cdp source create web) captures it. With --json: {"id", "name", "write_key"}.
    """
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        reply = stub.CreateSource(
            admin_pb2.CreateSourceRequest(name=name), metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS
        )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    if as_json:
        print_json({"id": reply.source.id, "name": reply.source.name, "write_key": reply.write_key})
        return
    console.print(f"Created source [bold]{escape(reply.source.name)}[/] (id {reply.source.id}).", highlight=False)
    console.print("Its write key, shown only this once (store it now):")
    click.echo(reply.write_key)


@source.command("list")
@target_option
@token_option
@json_option
def list_sources(target: str, token: str, as_json: bool) -> None:
    """List sources (never their write keys). With --json: [{"id", "name", "created_at"}]."""
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        reply = stub.ListSources(
            admin_pb2.ListSourcesRequest(), metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS
        )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    rows = [{"id": s.id, "name": s.name, "created_at": _iso(s.created_at_ms)} for s in reply.sources]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "created")
    for row in rows:
        table.add_row(*(Text(str(row[key])) for key in ("id", "name", "created_at")))
    stdout.print(table)


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
