"""`cdp privacy`: regulations (suppress, unsuppress, delete, status), where personal data was seen
(Segment's Privacy Portal), the workspace's own classes of it, and what each source hashes or drops."""

from __future__ import annotations

import time
from typing import Any

import click
import grpc
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from tributary._proto.cdp.v1 import admin_pb2_grpc, governance_pb2

from cdp_server.cli.common import (
    RPC_TIMEOUT_SECS,
    admin_metadata,
    channel,
    console,
    fail,
    fail_rpc,
    iso_time,
    json_argument,
    json_option,
    print_json,
    stdout,
    target_option,
    token_option,
)

ACTIONS = {
    "keep": governance_pb2.PII_ACTION_KEEP,
    "hash": governance_pb2.PII_ACTION_HASH,
    "drop": governance_pb2.PII_ACTION_DROP,
}


@click.group()
def privacy() -> None:
    """Personal data: where it is, and what sources do with it."""


@privacy.command("inventory")
@click.option("--source", default="", help="Only this source [all].")
@click.option(
    "--class", "class_name", default="", help="Only this class (email, phone, credit_card, ip, name, custom)."
)
@target_option
@token_option
@json_option
def inventory(source: str, class_name: str, target: str, token: str, as_json: bool) -> None:
    """List the fields personal data was seen in, by source and class, with counts (never values)."""
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        reply = stub.ListPiiInventory(
            governance_pb2.ListPiiInventoryRequest(source=source, **{"class": class_name}),
            metadata=admin_metadata(token),
            timeout=RPC_TIMEOUT_SECS,
        )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    rows = [
        {
            "source": f.source,
            "class": getattr(f, "class"),
            "field": f.field,
            "count": f.count,
            "first_seen": iso_time(f.first_seen_ms),
            "last_seen": iso_time(f.last_seen_ms),
        }
        for f in reply.fields
    ]
    if as_json:
        print_json({"fields": rows, "classified_through": reply.classified_through, "last_seq": reply.last_seq})
        return
    behind = reply.last_seq - reply.classified_through
    if behind > 0:
        console.print(f"(the inventory is {behind:,} events behind the log; it catches up in the background)")
    if not rows:
        console.print("No personal data found.")
        return
    table = Table("source", "class", "field", "count", "first seen", "last seen")
    for row in rows:
        table.add_row(
            escape(row["source"]),
            row["class"],
            escape(row["field"]),
            f"{row['count']:,}",
            row["first_seen"],
            row["last_seen"],
        )
    stdout.print(table)


@privacy.command("patterns")
@click.option(
    "--set",
    "patterns",
    default=None,
    help='JSON or @FILE: [{"name", "value_pattern", "key_pattern"}] (regular expressions; either may be empty).',
)
@target_option
@token_option
@json_option
def patterns(patterns: str | None, target: str, token: str, as_json: bool) -> None:
    """Show, or set, the workspace's own classes of personal data."""
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    metadata = admin_metadata(token)
    try:
        if patterns is None:
            settings = stub.GetPiiSettings(
                governance_pb2.GetPiiSettingsRequest(), metadata=metadata, timeout=RPC_TIMEOUT_SECS
            )
        else:
            given = json_argument(patterns, "--set")
            if not isinstance(given, list) or not all(isinstance(p, dict) for p in given):
                fail("--set: a JSON list of {name, value_pattern, key_pattern}")
            try:
                wanted = [governance_pb2.PiiPattern(**p) for p in given]
            except ValueError as exc:
                fail(f"--set: {exc}")
            settings = stub.SetPiiSettings(
                governance_pb2.SetPiiSettingsRequest(settings=governance_pb2.PiiSettings(patterns=wanted)),
                metadata=metadata,
                timeout=RPC_TIMEOUT_SECS,
            )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    shown = [
        {"name": p.name, "value_pattern": p.value_pattern, "key_pattern": p.key_pattern} for p in settings.patterns
    ]
    if as_json:
        print_json(shown)
        return
    if not shown:
        console.print("No custom classes (the built-in ones: email, phone, credit_card, ip, name).")
        return
    table = Table("class", "value pattern", "key pattern")
    for p in shown:
        table.add_row(escape(p["name"]), escape(p["value_pattern"]), escape(p["key_pattern"]))
    stdout.print(table)


def _classes(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


@privacy.command("protect")
@click.argument("source")
@click.option("--hash", "hashed", default="", help="Classes to hash (SHA-256), comma-separated, e.g. email,phone.")
@click.option("--drop", "dropped", default="", help="Classes to remove, comma-separated, e.g. credit_card.")
@click.option("--keep", "kept", default="", help="Classes to store as sent again, comma-separated.")
@target_option
@token_option
@json_option
def protect(source: str, hashed: str, dropped: str, kept: str, target: str, token: str, as_json: bool) -> None:
    """Show, or change, which classes of personal data SOURCE hashes or drops before storing events.

    It applies from the source's next request, to properties, traits and context (not to userId or
    anonymousId); a hashed email is also what identity resolution then sees.
    """
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    metadata = admin_metadata(token)
    changes: dict[str, Any] = {}
    for given, verb in ((hashed, "hash"), (dropped, "drop"), (kept, "keep")):
        for name in _classes(given):
            if name in changes:
                fail(f"class {name!r} is given twice")
            changes[name] = ACTIONS[verb]
    try:
        policy = stub.GetSourcePolicy(
            governance_pb2.GetSourcePolicyRequest(source=source), metadata=metadata, timeout=RPC_TIMEOUT_SECS
        )
        if changes:
            rules = {getattr(r, "class"): r.action for r in policy.pii}
            rules.update(changes)
            del policy.pii[:]
            for name, number in rules.items():
                if number != governance_pb2.PII_ACTION_KEEP:
                    policy.pii.append(governance_pb2.PiiRule(action=number, **{"class": name}))
            policy = stub.SetSourcePolicy(
                governance_pb2.SetSourcePolicyRequest(policy=policy), metadata=metadata, timeout=RPC_TIMEOUT_SECS
            )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    verbs = {number: verb for verb, number in ACTIONS.items()}
    shown = {getattr(r, "class"): verbs.get(r.action, str(r.action)) for r in policy.pii}
    if as_json:
        print_json({"source": policy.source, "pii": shown})
        return
    listed = ", ".join(f"{name} → {action}" for name, action in sorted(shown.items())) or "nothing (stored as sent)"
    console.print(f"Source [bold]{escape(policy.source)}[/] protects: {escape(listed)}.", highlight=False)


REGULATION_TYPES = {
    governance_pb2.REGULATION_TYPE_SUPPRESS_ONLY: "SUPPRESS_ONLY",
    governance_pb2.REGULATION_TYPE_UNSUPPRESS: "UNSUPPRESS",
    governance_pb2.REGULATION_TYPE_SUPPRESS_WITH_DELETE: "SUPPRESS_WITH_DELETE",
    governance_pb2.REGULATION_TYPE_DELETE_ONLY: "DELETE_ONLY",
}


def _status_name(status: int) -> str:
    return governance_pb2.RegulationStatus.Name(status).removeprefix("REGULATION_STATUS_")  # type: ignore[arg-type]


def _regulation_json(regulation: governance_pb2.Regulation) -> dict[str, Any]:
    return {
        "id": regulation.id,
        "type": REGULATION_TYPES.get(regulation.type, str(regulation.type)),
        "status": _status_name(regulation.status),
        "identifiers": list(regulation.identifiers),
        "created_at": iso_time(regulation.created_at_ms),
        "finished_at": iso_time(regulation.finished_at_ms) if regulation.finished_at_ms else None,
        "stores": [{"store": s.store, "status": _status_name(s.status), "detail": s.detail} for s in regulation.stores],
        "engine_seconds": regulation.engine_seconds,
    }


def _identifiers(given: tuple[str, ...], file: click.File | None) -> list[str]:
    identifiers = list(given)
    if file is not None:
        identifiers += [line.strip() for line in file if line.strip() and not line.startswith("#")]  # type: ignore[attr-defined]
    if not identifiers:
        fail("give identifiers as type:value (user_id:42 email:a@example.com), or --file with one a line")
    return identifiers


def _regulate(kind: int, identifiers: list[str], target: str, token: str, as_json: bool, *, wait: bool = False) -> None:
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        regulation = stub.CreateRegulation(
            governance_pb2.CreateRegulationRequest(type=kind, identifiers=identifiers),  # type: ignore[arg-type]
            metadata=admin_metadata(token),
            timeout=RPC_TIMEOUT_SECS,
        )
        if wait:
            regulation = _wait(stub, regulation, token, show=not as_json)
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    _show(regulation, as_json)


_WAIT_POLL_SECS = 0.25
_SETTLED = (governance_pb2.REGULATION_STATUS_FINISHED, governance_pb2.REGULATION_STATUS_FAILED)


def _wait(
    stub: admin_pb2_grpc.AdminServiceStub, regulation: governance_pb2.Regulation, token: str, *, show: bool
) -> governance_pb2.Regulation:
    """Polls a regulation until it has finished, with a bar of its stages on stderr."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not show, transient=True) as progress:
        task = progress.add_task("deleting", total=len(regulation.stores))
        while not regulation.finished_at_ms:
            time.sleep(_WAIT_POLL_SECS)
            regulation = stub.GetRegulation(
                governance_pb2.GetRegulationRequest(id=regulation.id),
                metadata=admin_metadata(token),
                timeout=RPC_TIMEOUT_SECS,
            )
            running = [s.store for s in regulation.stores if s.status not in _SETTLED]
            progress.update(
                task,
                description=running[0] if running else "finishing",
                completed=len(regulation.stores) - len(running),
            )
    return regulation


def _show(regulation: governance_pb2.Regulation, as_json: bool) -> None:
    shown = _regulation_json(regulation)
    if as_json:
        print_json(shown)
        return
    took = f" ({regulation.engine_seconds * 1000:.0f} ms in the engine)" if regulation.engine_seconds else ""
    counted = f"{len(shown['identifiers'])} identifiers"
    console.print(
        f"Regulation {shown['id']} ({shown['type']}, {counted}): {shown['status']}{took}.",
        highlight=False,
    )
    for store in shown["stores"]:
        console.print(f"  {escape(store['store'])}: {store['status']} — {escape(store['detail'])}", highlight=False)


_file_option = click.option(
    "--file", type=click.File("r"), default=None, help="A file of identifiers, one type:value a line ('-': stdin)."
)


@privacy.command("suppress")
@click.argument("identifiers", nargs=-1)
@_file_option
@target_option
@token_option
@json_option
def suppress(identifiers: tuple[str, ...], file: click.File | None, target: str, token: str, as_json: bool) -> None:
    """Stop collecting the data of the people named by IDENTIFIERS (type:value, up to 5,000): every
    new event carrying one of them is refused before anything of it is stored."""
    _regulate(governance_pb2.REGULATION_TYPE_SUPPRESS_ONLY, _identifiers(identifiers, file), target, token, as_json)


@privacy.command("unsuppress")
@click.argument("identifiers", nargs=-1)
@_file_option
@target_option
@token_option
@json_option
def unsuppress(identifiers: tuple[str, ...], file: click.File | None, target: str, token: str, as_json: bool) -> None:
    """Collect the data of the people named by IDENTIFIERS again."""
    _regulate(governance_pb2.REGULATION_TYPE_UNSUPPRESS, _identifiers(identifiers, file), target, token, as_json)


@privacy.command("delete")
@click.argument("identifiers", nargs=-1)
@_file_option
@click.option(
    "--keep-collecting",
    is_flag=True,
    help="DELETE_ONLY: delete what is stored but keep collecting new events (default: SUPPRESS_WITH_DELETE).",
)
@click.option("--wait", is_flag=True, help="Wait until the deletion has finished, with a progress bar.")
@target_option
@token_option
@json_option
def delete(
    identifiers: tuple[str, ...],
    file: click.File | None,
    keep_collecting: bool,
    wait: bool,
    target: str,
    token: str,
    as_json: bool,
) -> None:
    """Delete the people named by IDENTIFIERS (type:value, up to 5,000) and everything linked to
    them: events, identifiers, traits, audience memberships, pending deliveries; destinations that
    accept one get a deletion notice. New events of theirs are refused unless --keep-collecting.
    The receipt lists each store's status (`cdp privacy status ID`)."""
    kind = (
        governance_pb2.REGULATION_TYPE_DELETE_ONLY
        if keep_collecting
        else governance_pb2.REGULATION_TYPE_SUPPRESS_WITH_DELETE
    )
    _regulate(kind, _identifiers(identifiers, file), target, token, as_json, wait=wait)


@privacy.command("status")
@click.argument("regulation", type=int, required=False)
@click.option("--wait", is_flag=True, help="Wait until the regulation has finished.")
@target_option
@token_option
@json_option
def status(regulation: int | None, wait: bool, target: str, token: str, as_json: bool) -> None:
    """A regulation's receipt (per-store status), or the latest regulations."""
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    metadata = admin_metadata(token)
    try:
        if regulation is not None:
            receipt = stub.GetRegulation(
                governance_pb2.GetRegulationRequest(id=regulation), metadata=metadata, timeout=RPC_TIMEOUT_SECS
            )
            _show(_wait(stub, receipt, token, show=not as_json) if wait else receipt, as_json)
            return
        reply = stub.ListRegulations(
            governance_pb2.ListRegulationsRequest(), metadata=metadata, timeout=RPC_TIMEOUT_SECS
        )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    if as_json:
        print_json(
            {
                "regulations": [_regulation_json(r) for r in reply.regulations],
                "suppressed_events": reply.suppressed_events,
            }
        )
        return
    table = Table("id", "type", "identifiers", "status", "created")
    for r in reply.regulations:
        shown = _regulation_json(r)
        table.add_row(str(r.id), shown["type"], str(len(r.identifiers)), shown["status"], shown["created_at"])
    stdout.print(table)
    console.print(f"{reply.suppressed_events:,} events refused as suppressed since the server started.")
