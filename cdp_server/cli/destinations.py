"""`cdp destination create|list|show|stats|pause|resume|replay|test|delete` and
`cdp deadletters list|replay|discard`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click
import grpc
from google.protobuf import json_format
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from tributary._proto.cdp.v1 import admin_pb2_grpc, destination_pb2

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


def _call(target: str, token: str, rpc: str, request: Any) -> Any:
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        return getattr(stub, rpc)(request, metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS)
    except grpc.RpcError as exc:
        fail_rpc(exc, target)


def _setting(pairs: tuple[str, ...]) -> dict[str, Any]:
    """`KEY=VALUE` pairs; a value that reads as JSON (numbers, lists, true) is taken as such."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--set {pair!r}: expected KEY=VALUE")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return settings


def _document(destination: destination_pb2.Destination) -> dict[str, Any]:
    document: dict[str, Any] = json_format.MessageToDict(destination, preserving_proto_field_name=True)
    for key in ("settings", "mappings"):
        raw = getattr(destination, key)
        document[key] = json.loads(raw) if raw else ({} if key == "settings" else [])
    return document


@click.group()
def destination() -> None:
    """Manage destinations: where events are delivered (webhook, warehouse, files, nats)."""


@destination.command("create")
@click.argument("name")
@click.option("--kind", required=True, help="webhook, warehouse, files, nats, or a custom kind.")
@click.option("--settings", "settings_json", default="", help="The kind's settings as JSON, or @FILE.")
@click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE", help="One setting (repeatable).")
@click.option("--mappings", default="", help="Mappings as JSON or @FILE (docs/mappings.md).")
@click.option("--type", "types", multiple=True, help="Only this call type (repeatable).")
@click.option("--event", "events", multiple=True, help="Only track events with this name (repeatable).")
@click.option("--drop-event", "drop_events", multiple=True, help="Never track events with this name.")
@click.option("--sample", type=click.FloatRange(0, 100), default=None, help="Keep this percentage of events.")
@click.option("--drop-property", "drop_properties", multiple=True, help="Remove this property or trait.")
@click.option("--allow-property", "allow_properties", multiple=True, help="Keep only these properties/traits.")
@click.option("--computation", "computations", multiple=True, help="Send this audience's/trait's events ('*': all).")
@click.option("--consent", "consent", multiple=True, help="A consent category the events must grant.")
@click.option("--source", "sources", multiple=True, help="Only events of this source (repeatable).")
@click.option("--batch-size", type=click.IntRange(1, 2500), default=None, help="Events per delivery (default 100).")
@click.option("--retry-window", type=click.IntRange(1), default=None, help="Seconds of retries (default 14400).")
@click.option("--from-beginning", is_flag=True, help="Deliver the whole log, not only new events.")
@click.option("--paused", is_flag=True, help="Create it paused.")
@target_option
@token_option
@json_option
def create(name: str, kind: str, settings_json: str, pairs: tuple[str, ...], mappings: str, **options: Any) -> None:
    """Create destination NAME. Secrets the kind makes (a webhook's signing secret) are shown
    this once."""
    target, token, as_json = options.pop("target"), options.pop("token"), options.pop("as_json")
    settings = json_argument(settings_json, "--settings") if settings_json else {}
    settings.update(_setting(pairs))
    filters = destination_pb2.DestinationFilters(
        types=options.pop("types"),
        events=options.pop("events"),
        drop_events=options.pop("drop_events"),
        drop_properties=options.pop("drop_properties"),
        allow_properties=options.pop("allow_properties"),
    )
    sample = options.pop("sample")
    if sample is not None:
        filters.sample_percent = sample
    definition = destination_pb2.Destination(
        name=name,
        kind=kind,
        settings=json.dumps(settings).encode(),
        mappings=json.dumps(json_argument(mappings, "--mappings")).encode() if mappings else b"",
        filters=filters,
        computations=options.pop("computations"),
        consent_categories=options.pop("consent"),
        sources=options.pop("sources"),
        batch_size=options.pop("batch_size") or 0,
        retry_window_secs=options.pop("retry_window") or 0,
        from_beginning=options.pop("from_beginning"),
        paused=options.pop("paused"),
    )
    reply = _call(target, token, "CreateDestination", destination_pb2.CreateDestinationRequest(destination=definition))
    if as_json:
        print_json(_document(reply.destination))
        return
    console.print(f"Created destination [bold]{escape(name)}[/] ({escape(kind)}).", highlight=False)
    stdout.print_json(json.dumps(json.loads(reply.destination.settings or b"{}")))


@destination.command("list")
@target_option
@token_option
@json_option
def list_destinations(target: str, token: str, as_json: bool) -> None:
    """List destinations with their delivery state and backlog."""
    listed = _call(target, token, "ListDestinations", destination_pb2.ListDestinationsRequest())
    stats = _call(target, token, "DeliveryStats", destination_pb2.DeliveryStatsRequest())
    by_name = {s.name: s for s in stats.destinations}
    if as_json:
        print_json([_document(d) for d in listed.destinations])
        return
    table = Table("name", "kind", "state", "backlog", "delivered", "dead letters")
    for d in listed.destinations:
        s = by_name.get(d.name, destination_pb2.DestinationStats())
        table.add_row(Text(d.name), Text(d.kind), Text(s.state), str(s.backlog), str(s.delivered), str(s.dead_letters))
    stdout.print(table)


@destination.command("show")
@click.argument("name")
@target_option
@token_option
def show(name: str, target: str, token: str) -> None:
    """Show destination NAME's definition (secrets hidden) as JSON."""
    reply = _call(target, token, "GetDestination", destination_pb2.GetDestinationRequest(name=name))
    print_json(_document(reply.destination))


@destination.command("stats")
@click.argument("name", required=False, default="")
@target_option
@token_option
@json_option
def stats(name: str, target: str, token: str, as_json: bool) -> None:
    """Delivery counts, backlog, latency and last error (of NAME, or every destination)."""
    reply = _call(target, token, "DeliveryStats", destination_pb2.DeliveryStatsRequest(name=name))
    rows = [json_format.MessageToDict(s, preserving_proto_field_name=True) for s in reply.destinations]
    if as_json:
        print_json(rows)
        return
    for s in reply.destinations:
        lag = " [bold red]LAGGING[/]" if s.lagging else ""
        console.print(f"[bold]{escape(s.name)}[/] ({escape(s.kind)}): {s.state}{lag}", highlight=False)
        stdout.print(
            f"  cursor {s.cursor} of {s.last_seq} (backlog {s.backlog})\n"
            f"  delivered {s.delivered}, retried {s.retried}, dead-lettered {s.dead_lettered}, "
            f"filtered {s.filtered}; {s.dead_letters} dead letters kept\n"
            f"  latency p50 {s.latency_p50_ms:.0f} ms, p95 {s.latency_p95_ms:.0f} ms; replays running {s.replays}",
            highlight=False,
        )
        if s.last_error:
            stdout.print(f"  last error ({_iso(s.last_error_at_ms)}): {escape(s.last_error)}", highlight=False)


@destination.command("pause")
@click.argument("name")
@target_option
@token_option
def pause(name: str, target: str, token: str) -> None:
    """Stop delivering to NAME (its cursor waits; nothing is lost)."""
    _call(target, token, "SetDestinationPaused", destination_pb2.SetDestinationPausedRequest(name=name, paused=True))
    console.print(f"Paused {escape(name)}.", highlight=False)


@destination.command("resume")
@click.argument("name")
@target_option
@token_option
def resume(name: str, target: str, token: str) -> None:
    """Deliver to NAME again, from where it stopped."""
    _call(target, token, "SetDestinationPaused", destination_pb2.SetDestinationPausedRequest(name=name, paused=False))
    console.print(f"Resumed {escape(name)}.", highlight=False)


@destination.command("delete")
@click.argument("name")
@target_option
@token_option
def delete(name: str, target: str, token: str) -> None:
    """Delete NAME with its cursor and dead letters (the events stay in the log)."""
    _call(target, token, "DeleteDestination", destination_pb2.DeleteDestinationRequest(name=name))
    console.print(f"Deleted {escape(name)}.", highlight=False)


def _ms(value: str) -> int:
    try:
        at = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{value!r} is not an ISO-8601 time (2024-05-01T12:00:00Z)")
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return int(at.timestamp() * 1000)


@destination.command("replay")
@click.argument("name")
@click.option("--start", default="", help="Events received from this time (ISO-8601).")
@click.option("--end", default="", help="...until this time (default: now).")
@click.option("--message-id", "message_ids", multiple=True, help="Exactly this event (repeatable).")
@target_option
@token_option
def replay(name: str, start: str, end: str, message_ids: tuple[str, ...], target: str, token: str) -> None:
    """Deliver a time range, or some messageIds, to NAME again."""
    if not message_ids and not start:
        fail("give --start (and optionally --end) or --message-id")
    request = destination_pb2.ReplayRequest(
        name=name,
        start_ms=_ms(start) if start else 0,
        end_ms=_ms(end) if end else 0,
        message_ids=message_ids,
    )
    reply = _call(target, token, "Replay", request)
    console.print(f"Queued {reply.queued} events for {escape(name)}.", highlight=False)


@destination.command("test")
@click.argument("name")
@click.argument("event_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@target_option
@token_option
def test(name: str, event_file: Path, target: str, token: str) -> None:
    """Show what NAME would be sent for the event in EVENT_FILE (JSON), without sending it."""
    request = destination_pb2.TestDestinationRequest(name=name, event=event_file.read_bytes())
    reply = _call(target, token, "TestDestination", request)
    if not reply.routed:
        console.print(f"Not sent: {escape(reply.reason)}", highlight=False)
    print_json(json.loads(reply.output))


@click.group()
def deadletters() -> None:
    """Events a destination could not take: list, replay or discard them."""


@deadletters.command("list")
@click.argument("name")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--after", "after_seq", type=int, default=0, help="Continue after this sequence.")
@target_option
@token_option
@json_option
def list_dead_letters(name: str, limit: int, after_seq: int, target: str, token: str, as_json: bool) -> None:
    """List NAME's dead letters, oldest first, with the reason."""
    request = destination_pb2.ListDeadLettersRequest(name=name, limit=limit, after_seq=after_seq)
    reply = _call(target, token, "ListDeadLetters", request)
    rows = [
        {
            "seq": d.seq,
            "message_id": d.message_id,
            "reason": d.reason,
            "attempts": d.attempts,
            "dead_at": _iso(d.dead_at_ms),
            "event": json.loads(d.event) if d.event else None,
        }
        for d in reply.dead_letters
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("seq", "messageId", "attempts", "dead at", "reason")
    for row in rows:
        table.add_row(*(Text(str(row[k])) for k in ("seq", "message_id", "attempts", "dead_at", "reason")))
    stdout.print(table)
    if reply.next_after_seq:
        console.print(f"More: --after {reply.next_after_seq}", highlight=False)


@deadletters.command("replay")
@click.argument("name")
@click.option("--seq", "seqs", type=int, multiple=True, help="Only this one (repeatable; default all).")
@target_option
@token_option
def replay_dead_letters(name: str, seqs: tuple[int, ...], target: str, token: str) -> None:
    """Deliver NAME's dead letters again (those delivered leave the store)."""
    reply = _call(target, token, "ReplayDeadLetters", destination_pb2.DeadLettersRequest(name=name, seqs=seqs))
    console.print(f"Queued {reply.count} dead letters for {escape(name)}.", highlight=False)


@deadletters.command("discard")
@click.argument("name")
@click.option("--seq", "seqs", type=int, multiple=True, help="Only this one (repeatable; default all).")
@target_option
@token_option
def discard(name: str, seqs: tuple[int, ...], target: str, token: str) -> None:
    """Forget NAME's dead letters (the events stay in the log)."""
    reply = _call(target, token, "DiscardDeadLetters", destination_pb2.DeadLettersRequest(name=name, seqs=seqs))
    console.print(f"Discarded {reply.count} dead letters of {escape(name)}.", highlight=False)


def _iso(ms: int) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
