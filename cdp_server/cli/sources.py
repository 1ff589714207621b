"""`cdp source create|update|list`: sources, and webhook sources' mappings."""

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
    """List sources (never their keys or secrets). With --json: [{"id", "name", "kind", "created_at"}]."""
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        reply = stub.ListSources(
            admin_pb2.ListSourcesRequest(), metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS
        )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    rows = [{"id": s.id, "name": s.name, "kind": _kind(s), "created_at": _iso(s.created_at_ms)} for s in reply.sources]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "kind", "created")
    for row in rows:
        table.add_row(*(Text(str(row[key])) for key in ("id", "name", "kind", "created_at")))
    stdout.print(table)


def _kind(source: admin_pb2.Source) -> str:
    if source.kind != admin_pb2.SOURCE_KIND_WEBHOOK:
        return "events"
    return "webhook (signed)" if source.webhook.signed else "webhook"


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
