"""`cdp plan create|apply|show|list|enforce` and `cdp violations`: tracking plans (Segment's
Protocols), what each source does with events that break its plan, and the violations seen."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path
from typing import Any

import click
import grpc
import yaml
from rich.markup import escape
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

UNPLANNED = {"allow": 0, "flag": 1, "block": 2}
ON_VIOLATION = {"allow": 0, "flag": 1, "omit": 2, "block": 3}
_SPARKS = " ▁▂▃▄▅▆▇█"


@click.group()
def plan() -> None:
    """Manage tracking plans and what each source enforces."""


def _read_plan(path: Path, name: str) -> tuple[str, str]:
    """The plan's name and its document as JSON, from a JSON or YAML file."""
    try:
        text = path.read_text()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    try:
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        fail(f"{path}: not {'JSON' if path.suffix == '.json' else 'YAML or JSON'}: {exc}")
    if not isinstance(document, dict):
        fail(f"{path}: a plan is an object with events, identify, group and common")
    name = name or str(document.get("name") or path.stem)
    # YAML may hold dates and the like: the server takes JSON, so they become strings.
    return name, json.dumps(document, default=str)


def _put(path: Path, name: str, create_only: bool, target: str, token: str, as_json: bool) -> None:
    name, document = _read_plan(path, name)
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        saved = stub.PutTrackingPlan(
            governance_pb2.PutTrackingPlanRequest(name=name, document=document, create_only=create_only),
            metadata=admin_metadata(token),
            timeout=RPC_TIMEOUT_SECS,
        )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    if as_json:
        print_json(_plan_json(saved, with_document=False))
        return
    used = f", enforced by {', '.join(saved.sources)}" if saved.sources else " (no source enforces it yet)"
    console.print(
        f"Tracking plan [bold]{escape(saved.name)}[/] is now version {saved.version}: "
        f"{saved.event_count} events{escape(used)}.",
        highlight=False,
    )


@plan.command("create")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default="", help="The plan's name [the file's `name`, else its stem].")
@target_option
@token_option
@json_option
def create(file: Path, name: str, target: str, token: str, as_json: bool) -> None:
    """Create a tracking plan from FILE (JSON or YAML); fails if the plan exists.

    A plan is {"events": {"<track event>": <JSON Schema of its properties>}, "identify": <JSON
    Schema of traits>, "group": <JSON Schema of traits>, "common": <JSON Schema of every whole
    event>}, each part optional (docs/governance.md).
    """
    _put(file, name, True, target, token, as_json)


@plan.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default="", help="The plan's name [the file's `name`, else its stem].")
@target_option
@token_option
@json_option
def apply(file: Path, name: str, target: str, token: str, as_json: bool) -> None:
    """Store FILE as the next version of its plan (or create it); sources enforcing the plan use
    it from their next request."""
    _put(file, name, False, target, token, as_json)


def _plan_json(saved: governance_pb2.TrackingPlan, *, with_document: bool) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "name": saved.name,
        "version": saved.version,
        "events": saved.event_count,
        "created_at": iso_time(saved.created_at_ms),
        "sources": list(saved.sources),
    }
    if with_document:
        shown["document"] = json.loads(saved.document)
    return shown


@plan.command("show")
@click.argument("name")
@click.option("--version", type=click.IntRange(min=1), default=None, help="A past version [the newest].")
@target_option
@token_option
@json_option
def show(name: str, version: int | None, target: str, token: str, as_json: bool) -> None:
    """Print a tracking plan's document (stdout) and what it is (stderr)."""
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        saved = stub.GetTrackingPlan(
            governance_pb2.GetTrackingPlanRequest(name=name, version=version or 0),
            metadata=admin_metadata(token),
            timeout=RPC_TIMEOUT_SECS,
        )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    if as_json:
        print_json(_plan_json(saved, with_document=True))
        return
    sources = ", ".join(saved.sources) or "no source"
    console.print(
        f"Tracking plan [bold]{escape(saved.name)}[/] version {saved.version} of {iso_time(saved.created_at_ms)}: "
        f"{saved.event_count} events; enforced by {escape(sources)}.",
        highlight=False,
    )
    click.echo(json.dumps(json.loads(saved.document), indent=2))


@plan.command("list")
@target_option
@token_option
@json_option
def list_plans(target: str, token: str, as_json: bool) -> None:
    """List tracking plans (their newest versions) and the sources enforcing them."""
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        reply = stub.ListTrackingPlans(
            governance_pb2.ListTrackingPlansRequest(), metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS
        )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    if as_json:
        print_json([_plan_json(p, with_document=False) for p in reply.plans])
        return
    table = Table("plan", "version", "events", "updated", "sources")
    for p in reply.plans:
        table.add_row(
            escape(p.name), str(p.version), str(p.event_count), iso_time(p.created_at_ms), escape(", ".join(p.sources))
        )
    stdout.print(table)


def _mode_name(modes: dict[str, int], value: int) -> str:
    return next((name for name, number in modes.items() if number == value), str(value))


@plan.command("enforce")
@click.argument("source")
@click.option("--plan", "plan_name", default=None, help="The tracking plan SOURCE enforces.")
@click.option("--no-plan", is_flag=True, help="Enforce no plan (transformations still apply).")
@click.option(
    "--unplanned", type=click.Choice(list(UNPLANNED)), default=None, help="Track events the plan does not name."
)
@click.option(
    "--on-violation", type=click.Choice(list(ON_VIOLATION)), default=None, help="Events that break their schema."
)
@click.option(
    "--transformations",
    default=None,
    help='JSON or @FILE: [{"rename_event": {"from", "to"}}, {"rename_property": {"event"?, "from", "to"}}, '
    '{"rename_trait": {"from", "to"}}]; "[]" for none.',
)
@target_option
@token_option
@json_option
def enforce(
    source: str,
    plan_name: str | None,
    no_plan: bool,
    unplanned: str | None,
    on_violation: str | None,
    transformations: str | None,
    target: str,
    token: str,
    as_json: bool,
) -> None:
    """Show, or change, what SOURCE does with events against its plan.

    allow: stored as sent, violations counted; flag: also written in context.protocols;
    omit: offending properties removed; block: refused (see `cdp rejected`). Options not given
    keep their current values.
    """
    if no_plan and plan_name:
        fail("--plan and --no-plan exclude each other")
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    metadata = admin_metadata(token)
    try:
        policy = stub.GetSourcePolicy(
            governance_pb2.GetSourcePolicyRequest(source=source), metadata=metadata, timeout=RPC_TIMEOUT_SECS
        )
        changes = (plan_name, unplanned, on_violation, transformations)
        if no_plan or any(change is not None for change in changes):
            if no_plan:
                policy.plan = ""
            if plan_name is not None:
                policy.plan = plan_name
            if unplanned is not None:
                policy.unplanned_events = UNPLANNED[unplanned]  # type: ignore[assignment]
            if on_violation is not None:
                policy.on_violation = ON_VIOLATION[on_violation]  # type: ignore[assignment]
            if transformations is not None:
                policy.transformations = json.dumps(json_argument(transformations, "--transformations"))
            policy = stub.SetSourcePolicy(
                governance_pb2.SetSourcePolicyRequest(policy=policy), metadata=metadata, timeout=RPC_TIMEOUT_SECS
            )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    shown = {
        "source": policy.source,
        "plan": policy.plan or None,
        "unplanned": _mode_name(UNPLANNED, policy.unplanned_events),
        "on_violation": _mode_name(ON_VIOLATION, policy.on_violation),
        "transformations": json.loads(policy.transformations) if policy.transformations else [],
    }
    if as_json:
        print_json(shown)
        return
    plan_text = f"plan [bold]{escape(policy.plan)}[/]" if policy.plan else "no plan"
    console.print(
        f"Source [bold]{escape(policy.source)}[/] enforces {plan_text}: unplanned events → {shown['unplanned']}, "
        f"violations → {shown['on_violation']}; {len(shown['transformations'])} transformations.",
        highlight=False,
    )


def _since(text: str) -> int:
    """Unix ms of `1h`, `24h`, `7d`, `30m` ago, or of an ISO-8601 time."""
    match = re.fullmatch(r"(\d+)([smhd])", text)
    if match:
        seconds = int(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
        return int((time.time() - seconds) * 1000)
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        fail(f"--since: {text!r} is neither a duration (1h, 24h, 7d) nor an ISO-8601 time")
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return int(at.timestamp() * 1000)


def _sparkline(hours: list[tuple[int, int]], since_ms: int) -> str:
    """Counts per hour since `since_ms` as one character each (at most the last 48 hours)."""
    if not hours:
        return ""
    first = since_ms // 3_600_000
    last = max(h for h, _ in hours) // 3_600_000
    counts = dict((h // 3_600_000, c) for h, c in hours)
    span = list(range(max(first, last - 47), last + 1))
    top = max(counts.values())
    return "".join(_SPARKS[min(8, -(-counts.get(h, 0) * 8 // top))] for h in span)


@click.command("violations")
@click.option("--source", default="", help="Only this source [all].")
@click.option("--event", default="", help="Only this event (track: its name; others: their type).")
@click.option("--since", default="24h", show_default=True, help="A duration back (1h, 24h, 7d) or an ISO-8601 time.")
@click.option("--limit", type=click.IntRange(min=1, max=10_000), default=100, show_default=True)
@target_option
@token_option
@json_option
def violations(source: str, event: str, since: str, limit: int, target: str, token: str, as_json: bool) -> None:
    """List tracking-plan violations, most frequent first, with counts per hour."""
    since_ms = _since(since)
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    try:
        reply = stub.ListViolations(
            governance_pb2.ListViolationsRequest(source=source, event=event, since_ms=since_ms, limit=limit),
            metadata=admin_metadata(token),
            timeout=RPC_TIMEOUT_SECS,
        )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    if as_json:
        print_json(
            [
                {
                    "source": v.source,
                    "event": v.event,
                    "field": v.field,
                    "type": v.type,
                    "rule": v.rule,
                    "description": v.description,
                    "example": v.example or None,
                    "count": v.count,
                    "total": v.total,
                    "first_seen": iso_time(v.first_seen_ms),
                    "last_seen": iso_time(v.last_seen_ms),
                    "hours": [{"hour": iso_time(h.hour_ms), "count": h.count} for h in v.hours],
                }
                for v in reply.violations
            ]
        )
        return
    if not reply.violations:
        console.print("No violations in this period.")
        return
    table = Table("source", "event", "field", "type", "count", "per hour", "last seen", "example")
    for v in reply.violations:
        table.add_row(
            escape(v.source),
            escape(v.event),
            escape(v.field),
            v.type,
            str(v.count),
            _sparkline([(h.hour_ms, h.count) for h in v.hours], since_ms),
            iso_time(v.last_seen_ms),
            escape(v.example),
        )
    stdout.print(table)
