"""`cdp source create|update|list|rotate-key|revoke-key`: sources, their write keys (rotation:
two keys work at once until the older one is retired), and webhook sources' mappings."""

from __future__ import annotations

import datetime as dt
import json

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
    fail,
    fail_rpc,
    json_argument,
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
@click.option(
    "--kind",
    type=click.Choice(["events", "webhook"]),
    default="events",
    show_default=True,
    help="events: Segment events from libraries and servers; webhook: a SaaS tool's own JSON, mapped.",
)
@click.option("--mappings", default="", help="A webhook source's mappings: JSON or @FILE (docs/mappings.md).")
@click.option("--signing-secret", default="", help='The Standard Webhooks secret its tool signs with ("whsec_…").')
@target_option
@token_option
@json_option
def create(name: str, kind: str, mappings: str, signing_secret: str, target: str, token: str, as_json: bool) -> None:
    """Create a source named NAME and print its write key.

    The key is shown this once (the server keeps only its hash): it alone goes to stdout, so
    KEY=$(cdp source create web) captures it. With --kind webhook, stdout is the path to give the
    tool (POST to it on the HTTP port), which holds the key. With --json: {"id", "name",
    "write_key", "webhook_path"}.
    """
    request = admin_pb2.CreateSourceRequest(name=name, signing_secret=signing_secret)
    if kind == "webhook":
        if not mappings:
            fail("--mappings: a webhook source needs mappings (JSON or @FILE)")
        request.kind = admin_pb2.SOURCE_KIND_WEBHOOK
        request.mappings = json.dumps(json_argument(mappings, "--mappings"))
    elif mappings or signing_secret:
        fail("--mappings and --signing-secret are for --kind webhook")
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        reply = stub.CreateSource(request, metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS)
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    if as_json:
        print_json(
            {
                "id": reply.source.id,
                "name": reply.source.name,
                "write_key": reply.write_key,
                "webhook_path": reply.webhook_path,
            }
        )
        return
    console.print(f"Created source [bold]{escape(reply.source.name)}[/] (id {reply.source.id}).", highlight=False)
    if reply.webhook_path:
        console.print("Give its tool this path on the HTTP port, shown only this once (it holds the write key):")
        click.echo(reply.webhook_path)
        return
    console.print("Its write key, shown only this once (store it now):")
    click.echo(reply.write_key)


@source.command("update")
@click.argument("name")
@click.option("--mappings", required=True, help="The webhook source's new mappings: JSON or @FILE.")
@target_option
@token_option
def update(name: str, mappings: str, target: str, token: str) -> None:
    """Replace webhook source NAME's mappings (the next payload uses them)."""
    request = admin_pb2.UpdateWebhookSourceRequest(
        name=name, mappings=json.dumps(json_argument(mappings, "--mappings"))
    )
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        stub.UpdateWebhookSource(request, metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS)
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    console.print(f"Updated the mappings of webhook source [bold]{escape(name)}[/].", highlight=False)


@source.command("list")
@target_option
@token_option
@json_option
def list_sources(target: str, token: str, as_json: bool) -> None:
    """List sources with their working write keys (never the keys or secrets).

    With --json: [{"id", "name", "kind", "created_at", "keys": [{"number", "created_at"}]}]
    (keys: the working ones; retired keys are not listed).
    """
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        reply = stub.ListSources(
            admin_pb2.ListSourcesRequest(), metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS
        )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    rows = [
        {
            "id": s.id,
            "name": s.name,
            "kind": _kind(s),
            "created_at": _iso(s.created_at_ms),
            "keys": [{"number": k.number, "created_at": _iso(k.created_at_ms)} for k in s.keys if not k.revoked_at_ms],
        }
        for s in reply.sources
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "kind", "created", "write keys")
    for row in rows:
        keys = ", ".join(f"#{k['number']} made {k['created_at']}" for k in row["keys"])  # type: ignore[attr-defined]
        table.add_row(*(Text(str(row[key])) for key in ("id", "name", "kind", "created_at")), Text(keys))
    stdout.print(table)


@source.command("rotate-key")
@click.argument("name")
@click.option(
    "--revoke-previous",
    is_flag=True,
    help="Retire the current key(s) at once: the new key is then the only one that works.",
)
@target_option
@token_option
@json_option
def rotate_key(name: str, revoke_previous: bool, target: str, token: str, as_json: bool) -> None:
    """Issue a new write key for source NAME and print it.

    Without --revoke-previous the current key keeps working (at most two work at once): move
    your senders to the new key, then retire the old one with `cdp source revoke-key`. The key is
    shown this once, alone on stdout (a webhook source: its new path). With --json: {"name",
    "number", "write_key", "webhook_path"}.
    """
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    request = admin_pb2.RotateWriteKeyRequest(source=name, revoke_previous=revoke_previous)
    try:
        reply = stub.RotateWriteKey(request, metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS)
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    number = reply.source.keys[-1].number if reply.source.keys else 0
    if as_json:
        print_json(
            {
                "name": reply.source.name,
                "number": number,
                "write_key": reply.write_key,
                "webhook_path": reply.webhook_path,
            }
        )
        return
    working = [k.number for k in reply.source.keys if not k.revoked_at_ms]
    console.print(
        f"Issued write key #{number} for source [bold]{escape(reply.source.name)}[/]; "
        f"working keys: {', '.join(f'#{n}' for n in working)}.",
        highlight=False,
    )
    console.print("The new key, shown only this once (store it now):")
    click.echo(reply.webhook_path or reply.write_key)


@source.command("revoke-key")
@click.argument("name")
@click.argument("number", type=int)
@target_option
@token_option
def revoke_key(name: str, number: int, target: str, token: str) -> None:
    """Retire write key NUMBER of source NAME (see `cdp source list`): it stops working at once.

    A source's last working key cannot be retired (rotate with --revoke-previous instead).
    """
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    request = admin_pb2.RevokeWriteKeyRequest(source=name, number=number)
    try:
        stub.RevokeWriteKey(request, metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS)
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    console.print(f"Retired write key #{number} of source [bold]{escape(name)}[/].", highlight=False)


def _kind(source: admin_pb2.Source) -> str:
    if source.kind != admin_pb2.SOURCE_KIND_WEBHOOK:
        return "events"
    return "webhook (signed)" if source.webhook.signed else "webhook"


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
