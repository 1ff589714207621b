"""`cdp token create|list|revoke`: access tokens with a role: "read" (profiles: gRPC
ProfileService and the HTTP Profile API), "audiences" (AudienceService) or "admin" (everything)."""

from __future__ import annotations

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
    iso_time,
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
    type=click.Choice(["read", "audiences", "admin"]),
    required=True,
    help="read: profiles (ProfileService, the HTTP Profile API); audiences: AudienceService; admin: everything.",
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
    """List access tokens, revoked ones too (never the tokens themselves).

    With --json: [{"id", "name", "role", "created_at", "revoked_at"}] (revoked_at null while the
    token works)."""
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
            "created_at": iso_time(t.created_at_ms),
            "revoked_at": iso_time(t.revoked_at_ms) if t.revoked_at_ms else None,
        }
        for t in reply.tokens
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "role", "created", "revoked")
    for row in rows:
        table.add_row(*(Text(str(row[key] or "")) for key in ("id", "name", "role", "created_at", "revoked_at")))
    stdout.print(table)


@token.command("revoke")
@click.argument("token_ref", metavar="ID_OR_NAME")
@target_option
@token_option
def revoke(token_ref: str, target: str, token: str) -> None:
    """Revoke an access token by its id or its name (`cdp token list`); it stops working at once.

    A name must belong to exactly one active token; otherwise give the id.
    """
    request = (
        admin_pb2.RevokeTokenRequest(id=int(token_ref))
        if token_ref.isdigit()
        else admin_pb2.RevokeTokenRequest(name=token_ref)
    )
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        reply = stub.RevokeToken(request, metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS)
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    console.print(
        f"Revoked {escape(reply.token.role)} token [bold]{escape(reply.token.name)}[/] (id {reply.token.id}).",
        highlight=False,
    )
