"""`cdp token create|list`: access tokens for the Profile API ("read") or everything ("admin")."""

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
def token() -> None:
    """Manage access tokens."""


@token.command("create")
@click.option(
    "--role",
    type=click.Choice(["read", "admin"]),
    required=True,
    help="read: the HTTP Profile API; admin: everything an admin token can do.",
)
@click.option("--name", default="", help="A label for people [the role].")
@target_option
@token_option
@json_option
def create(role: str, name: str, target: str, token: str, as_json: bool) -> None:
    """Create an access token and print it.

    It is shown this once (the server keeps only its hash) and alone on stdout, so
    TOKEN=$(cdp token create --role read) captures it. Use it as the Profile API's Basic user
    name: curl -u "$TOKEN:" http://HOST:8088/v1/spaces/default/collections/users/profiles/user_id:42/traits
    """
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        reply = stub.CreateToken(
            admin_pb2.CreateTokenRequest(role=role, name=name or role),
            metadata=admin_metadata(token),
            timeout=RPC_TIMEOUT_SECS,
        )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    if as_json:
        print_json({"id": reply.info.id, "name": reply.info.name, "role": reply.info.role, "token": reply.token})
        return
    console.print(
        f"Created {escape(reply.info.role)} token [bold]{escape(reply.info.name)}[/] (id {reply.info.id}).",
        highlight=False,
    )
    console.print("The token, shown only this once (store it now):")
    click.echo(reply.token)


@token.command("list")
@target_option
@token_option
@json_option
def list_tokens(target: str, token: str, as_json: bool) -> None:
    """List access tokens (never the tokens themselves). With --json: [{"id", "name", "role", "created_at"}]."""
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        reply = stub.ListTokens(admin_pb2.ListTokensRequest(), metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS)
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    rows = [
        {
            "id": t.id,
            "name": t.name,
            "role": t.role,
            "created_at": dt.datetime.fromtimestamp(t.created_at_ms / 1000, dt.UTC).isoformat(timespec="seconds"),
        }
        for t in reply.tokens
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "role", "created")
    for row in rows:
        table.add_row(*(Text(str(row[key])) for key in ("id", "name", "role", "created_at")))
    stdout.print(table)
