"""`cdp rejected list`: the events refused after their request was accepted, with the reason."""

from __future__ import annotations

from typing import Any

import click
import grpc
from google.protobuf.json_format import MessageToDict
from rich.table import Table
from rich.text import Text
from tributary._proto.cdp.v1 import admin_pb2, admin_pb2_grpc

from cdp_server.cli.common import (
    RPC_TIMEOUT_SECS,
    admin_metadata,
    channel,
    event_json,
    fail,
    fail_rpc,
    json_option,
    print_json,
    stdout,
    target_option,
    token_option,
)


@click.group()
def rejected() -> None:
    """Events refused by a rule (Segment answers 200 and drops them; Tributary keeps them)."""


@rejected.command("list")
@click.option("--source", "source", default="", help="Only this source's: its name or id.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="Records at most.")
@target_option
@token_option
@json_option
def list_rejected(source: str, limit: int, target: str, token: str, as_json: bool) -> None:
    """List rejected events, newest first, and how many each source had per reason.

    With --json: {"rejected": [{"id", "source_id", "source", "received_at", "message_id",
    "field", "reason", "event", "raw"}], "counts": [{"source_id", "source", "field", "reason",
    "count"}]}.
    """
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    metadata = admin_metadata(token)
    try:
        names = {
            s.id: s.name
            for s in stub.ListSources(
                admin_pb2.ListSourcesRequest(), metadata=metadata, timeout=RPC_TIMEOUT_SECS
            ).sources
        }
        source_id = _source_id(source, names) if source else 0
        reply = stub.ListRejected(
            admin_pb2.ListRejectedRequest(source_id=source_id, limit=limit), metadata=metadata, timeout=RPC_TIMEOUT_SECS
        )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    records = [_record(r, names) for r in reply.events]
    counts = [
        {
            "source_id": c.source_id,
            "source": names.get(c.source_id, ""),
            "field": c.field,
            "reason": c.reason,
            "count": c.count,
        }
        for c in reply.counts
    ]
    if as_json:
        print_json({"rejected": records, "counts": counts})
        return
    summary = Table("source", "field", "reason", "count", title="Rejected, per source and reason")
    for count in counts:
        summary.add_row(*(Text(str(count[key])) for key in ("source", "field", "reason", "count")))
    stdout.print(summary)
    table = Table("received", "source", "messageId", "field", "reason", title=f"Latest {len(records)}")
    for record in records:
        table.add_row(
            *(Text(str(record[key] or "")) for key in ("received_at", "source", "message_id", "field", "reason"))
        )
    stdout.print(table)


def _source_id(given: str, names: dict[int, str]) -> int:
    if given.isdigit() and int(given) in names:
        return int(given)
    for source_id, name in names.items():
        if name == given:
            return source_id
    fail(f"no source {given!r}: `cdp source list` shows them")


def _record(record: admin_pb2.RejectedEvent, names: dict[int, str]) -> dict[str, Any]:
    received = MessageToDict(record).get("receivedAt")
    raw = record.raw.decode(errors="replace") if record.raw else None
    return {
        "id": record.id,
        "source_id": record.source_id,
        "source": names.get(record.source_id, ""),
        "received_at": received,
        "message_id": record.message_id,
        "field": record.field,
        "reason": record.reason,
        "event": event_json(record.event) if record.HasField("event") else None,
        "raw": raw,
    }
