"""`cdp audience …` and `cdp trait …`: audiences and computed traits in Segment's query language.

A query with an error is refused by the server with its line and column; the message ends with
the offending line and a caret under the column, printed as is.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import click
import grpc
from google.protobuf import timestamp_pb2
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from tributary._proto.cdp.v1 import audience_pb2, audience_pb2_grpc

from cdp_server.cli.common import (
    RPC_TIMEOUT_SECS,
    F,
    admin_metadata,
    channel,
    console,
    fail,
    fail_rpc,
    json_option,
    print_json,
    stdout,
    target_option,
    token_option,
)

_TYPES = {audience_pb2.DEFINITION_TYPE_AUDIENCE: "audience", audience_pb2.DEFINITION_TYPE_COMPUTED_TRAIT: "trait"}
_KINDS = {audience_pb2.ENTITY_KIND_USERS: "users", audience_pb2.ENTITY_KIND_ACCOUNTS: "accounts"}


def at_option(func: F) -> F:
    return click.option(
        "--at",
        default="",
        help="Evaluate as of this ISO-8601 time (e.g. 2025-06-01T12:00:00Z) [now].",
    )(func)


def _timestamp(at: str) -> timestamp_pb2.Timestamp | None:
    if not at:
        return None
    try:
        when = dt.datetime.fromisoformat(at)
    except ValueError:
        fail(f"--at: {at!r} is not an ISO-8601 time")
    if when.tzinfo is None:
        fail(f"--at: {at!r} has no time zone; add Z for UTC or an offset such as +02:00")
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when.astimezone(dt.UTC))
    return stamp


def _wait_option(func: F) -> F:
    return click.option(
        "--wait/--no-wait",
        default=True,
        show_default=True,
        help="Wait until the first evaluation over every profile is written.",
    )(func)


def _stub(target: str) -> audience_pb2_grpc.AudienceServiceStub:
    return audience_pb2_grpc.AudienceServiceStub(channel(target))


def _call(target: str, token: str, call: Callable[[audience_pb2_grpc.AudienceServiceStub, Any], Any]) -> Any:
    try:
        return call(_stub(target), admin_metadata(token))
    except grpc.RpcError as exc:
        fail_rpc(exc, target)


def _definition_json(audience: audience_pb2.Audience) -> dict[str, object]:
    return {
        "key": audience.key,
        "name": audience.name,
        "type": _TYPES.get(audience.type, "audience"),
        "kind": _KINDS.get(audience.kind, "users"),
        "query": audience.query,
        "canonical_query": audience.canonical_query,
        "id": audience.id,
        "created_at": dt.datetime.fromtimestamp(audience.created_at_ms / 1000, dt.UTC).isoformat(timespec="seconds"),
        "status": _status(audience),
        "size": audience.size,
    }


def _status(audience: audience_pb2.Audience) -> str:
    """READY, or how far the first evaluation over every profile has got."""
    if audience.status == audience_pb2.Audience.STATUS_COMPUTING:
        return f"computing {audience.progress_percent} %"
    return "ready"


def _member_json(member: audience_pb2.Member, with_value: bool) -> dict[str, object]:
    row: dict[str, object] = {"id": member.id}
    if with_value:
        row["value"] = json.loads(member.value) if member.value else None
    return row


def _create(
    definition_type: audience_pb2.DefinitionType.ValueType,
    key: str,
    query: str,
    name: str,
    accounts: bool,
    wait: bool,
    target: str,
    token: str,
    as_json: bool,
) -> None:
    request = audience_pb2.CreateAudienceRequest(
        key=key,
        name=name,
        query=query,
        type=definition_type,
        kind=audience_pb2.ENTITY_KIND_ACCOUNTS if accounts else audience_pb2.ENTITY_KIND_USERS,
    )
    reply = _call(target, token, lambda stub, md: stub.CreateAudience(request, metadata=md, timeout=RPC_TIMEOUT_SECS))
    audience_record = reply.audience
    if wait and audience_record.status == audience_pb2.Audience.STATUS_COMPUTING:
        audience_record = _wait_ready(target, token, key, quiet=as_json)
    if as_json:
        print_json(_definition_json(audience_record))
        return
    what = _TYPES.get(audience_record.type, "audience")
    console.print(f"Created {what} [bold]{escape(audience_record.key)}[/] ({audience_record.id}).", highlight=False)
    console.print(f"  {escape(audience_record.canonical_query)}", highlight=False)
    if audience_record.status == audience_pb2.Audience.STATUS_READY:
        noun = "with a value" if what == "trait" else "members"
        console.print(f"  {audience_record.size:,} profiles {noun}, kept up to date in real time.", highlight=False)


def _wait_ready(target: str, token: str, key: str, quiet: bool) -> audience_pb2.Audience:
    """Polls until the first evaluation over every profile is written, with a progress line."""
    request = audience_pb2.GetAudienceRequest(key=key)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    ) as progress:
        task = progress.add_task(f"computing {key} over every profile", total=100)
        while True:
            found: audience_pb2.Audience = _call(
                target, token, lambda stub, md: stub.GetAudience(request, metadata=md, timeout=RPC_TIMEOUT_SECS)
            ).audience
            # The percentage is of the first evaluation's events written (0 while they are found).
            progress.update(
                task, completed=found.progress_percent, description=f"computing {key}: {found.size:,} so far"
            )
            if found.status != audience_pb2.Audience.STATUS_COMPUTING:
                return found
            time.sleep(0.2)


@click.group()
def audience() -> None:
    """Audiences: who matches a condition, in Segment's query language."""


@audience.command("create")
@click.argument("key")
@click.option("--query", "-q", required=True, help="The definition, e.g. \"trait('plan') = 'pro'\".")
@click.option("--name", default="", help="A name for people [the key].")
@click.option("--accounts", is_flag=True, help="An account audience (ANY/ALL over its users).")
@target_option
@token_option
@_wait_option
@json_option
def create_audience(
    key: str, query: str, name: str, accounts: bool, wait: bool, target: str, token: str, as_json: bool
) -> None:
    """Save an audience under KEY (usable by other definitions as trait('KEY')).

    It is computed over every profile, then kept up to date in real time: each profile that
    enters or leaves gets one Audience Entered / Audience Exited event and the boolean trait KEY.
    """
    _create(audience_pb2.DEFINITION_TYPE_AUDIENCE, key, query, name, accounts, wait, target, token, as_json)


@audience.command("preview")
@click.option("--query", "-q", required=True, help="The definition to evaluate (nothing is saved).")
@click.option("--trait", "computed", is_flag=True, help="The query is a computed trait (a value), not a condition.")
@click.option("--accounts", is_flag=True, help="Evaluate over accounts instead of users.")
@click.option("--sample", default=10, show_default=True, type=click.IntRange(1, 1000), help="Members to show.")
@at_option
@target_option
@token_option
@json_option
def preview(
    query: str, computed: bool, accounts: bool, sample: int, at: str, target: str, token: str, as_json: bool
) -> None:
    """How many profiles (or accounts) a query selects, and a sample of them."""
    request = audience_pb2.PreviewRequest(
        query=query,
        type=audience_pb2.DEFINITION_TYPE_COMPUTED_TRAIT if computed else audience_pb2.DEFINITION_TYPE_AUDIENCE,
        kind=audience_pb2.ENTITY_KIND_ACCOUNTS if accounts else audience_pb2.ENTITY_KIND_USERS,
        at=_timestamp(at),
        sample_size=sample,
    )
    reply = _call(target, token, lambda stub, md: stub.Preview(request, metadata=md, timeout=RPC_TIMEOUT_SECS))
    members = [_member_json(m, computed) for m in reply.sample]
    if as_json:
        print_json({"count": reply.count, "sample": members, "evaluation_micros": reply.evaluation_micros})
        return
    noun = "with a value" if computed else "members"
    console.print(
        f"{reply.count:,} {noun} (evaluated in {reply.evaluation_micros / 1000:.1f} ms)",
        highlight=False,
    )
    _print_members(members, computed)


def _print_members(members: list[dict[str, object]], with_value: bool) -> None:
    table = Table("id", *(["value"] if with_value else []))
    for row in members:
        cells = [Text(str(row["id"]))]
        if with_value:
            cells.append(Text(json.dumps(row["value"])))
        table.add_row(*cells)
    stdout.print(table)


@audience.command("list")
@target_option
@token_option
@json_option
def list_definitions(target: str, token: str, as_json: bool) -> None:
    """List saved audiences and computed traits."""
    reply = _call(
        target,
        token,
        lambda stub, md: stub.ListAudiences(audience_pb2.ListAudiencesRequest(), metadata=md, timeout=RPC_TIMEOUT_SECS),
    )
    rows = [_definition_json(a) for a in reply.audiences]
    if as_json:
        print_json(rows)
        return
    columns = ("key", "type", "kind", "status", "size", "query")
    table = Table(*columns)
    for row in rows:
        table.add_row(*(Text(f"{row[key]:,}" if key == "size" else str(row[key])) for key in columns))
    stdout.print(table)


@audience.command("show")
@click.argument("key")
@target_option
@token_option
@json_option
def show(key: str, target: str, token: str, as_json: bool) -> None:
    """Show one saved definition."""
    reply = _call(
        target,
        token,
        lambda stub, md: stub.GetAudience(
            audience_pb2.GetAudienceRequest(key=key), metadata=md, timeout=RPC_TIMEOUT_SECS
        ),
    )
    row = _definition_json(reply.audience)
    if as_json:
        print_json(row)
        return
    for name, value in row.items():
        stdout.print(f"[bold]{name}[/]: {escape(str(value))}", highlight=False)


@audience.command("members")
@click.argument("key")
@at_option
@target_option
@token_option
@json_option
def members(key: str, at: str, target: str, token: str, as_json: bool) -> None:
    """Every member of a saved audience (or every value of a saved computed trait), by id."""
    request = audience_pb2.ListMembersRequest(key=key, at=_timestamp(at))
    pages = _call(target, token, lambda stub, md: list(stub.ListMembers(request, metadata=md, timeout=600)))
    found = [m for page in pages for m in page.members]
    with_value = any(m.value for m in found)
    rows = [_member_json(m, with_value) for m in found]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        click.echo(f"{row['id']}\t{json.dumps(row['value'])}" if with_value else row["id"])


@audience.command("check")
@click.argument("key")
@click.argument("identifier")
@at_option
@target_option
@token_option
@json_option
def check(key: str, identifier: str, at: str, target: str, token: str, as_json: bool) -> None:
    """Whether IDENTIFIER (type:value, tp_… or group_id:…) is in audience KEY, or its trait value."""
    request = audience_pb2.CheckMembershipRequest(key=key, identifier=identifier, at=_timestamp(at))
    reply = _call(target, token, lambda stub, md: stub.CheckMembership(request, metadata=md, timeout=RPC_TIMEOUT_SECS))
    value = json.loads(reply.value) if reply.value else None
    if as_json:
        print_json({"id": reply.id, "member": reply.member, "value": value})
        return
    if reply.value:
        click.echo(json.dumps(value))
    else:
        click.echo(f"{reply.id} is {'' if reply.member else 'not '}a member of {key}")


@audience.command("delete")
@click.argument("key")
@target_option
@token_option
def delete(key: str, target: str, token: str) -> None:
    """Delete a saved audience or computed trait."""
    _call(
        target,
        token,
        lambda stub, md: stub.DeleteAudience(
            audience_pb2.DeleteAudienceRequest(key=key), metadata=md, timeout=RPC_TIMEOUT_SECS
        ),
    )
    console.print(f"Deleted {escape(key)}.", highlight=False)


@click.group("trait")
def computed_trait() -> None:
    """Computed traits: a value per profile, in Segment's query language."""


@computed_trait.command("create")
@click.argument("key")
@click.option("--query", "-q", required=True, help="The value, e.g. \"event('Order Completed').count()\".")
@click.option("--name", default="", help="A name for people [the key].")
@click.option("--accounts", is_flag=True, help="A computed trait of accounts.")
@target_option
@token_option
@_wait_option
@json_option
def create_trait(
    key: str, query: str, name: str, accounts: bool, wait: bool, target: str, token: str, as_json: bool
) -> None:
    """Save a computed trait under KEY (read by other definitions as trait('KEY')).

    Its value is written on every profile as the trait KEY (an identify), and again whenever it changes.
    """
    _create(audience_pb2.DEFINITION_TYPE_COMPUTED_TRAIT, key, query, name, accounts, wait, target, token, as_json)


@audience.command("update")
@click.argument("key")
@click.option("--query", "-q", default="", help="A new definition (re-evaluated over every profile).")
@click.option("--name", default="", help="A new name.")
@target_option
@token_option
@json_option
def update(key: str, query: str, name: str, target: str, token: str, as_json: bool) -> None:
    """Change a saved audience's (or computed trait's) query or name."""
    if not query and not name:
        fail("nothing to change: give --query and/or --name")
    request = audience_pb2.UpdateAudienceRequest(key=key, query=query, name=name)
    reply = _call(target, token, lambda stub, md: stub.UpdateAudience(request, metadata=md, timeout=RPC_TIMEOUT_SECS))
    if as_json:
        print_json(_definition_json(reply.audience))
        return
    console.print(f"Updated [bold]{escape(key)}[/]: {escape(reply.audience.canonical_query)}", highlight=False)


@audience.command("why")
@click.argument("key")
@click.argument("identifier")
@at_option
@target_option
@token_option
@json_option
def why(key: str, identifier: str, at: str, target: str, token: str, as_json: bool) -> None:
    """Why IDENTIFIER is (or is not) in audience KEY: each condition, its values and events."""
    request = audience_pb2.ExplainMembershipRequest(key=key, identifier=identifier, at=_timestamp(at))
    reply = _call(
        target, token, lambda stub, md: stub.ExplainMembership(request, metadata=md, timeout=RPC_TIMEOUT_SECS)
    )
    conditions = [
        {
            "depth": c.depth,
            "query": c.query,
            "holds": c.holds,
            "value": json.loads(c.value) if c.value else None,
            "operand": json.loads(c.operand) if c.operand else None,
            "message_ids": list(c.message_ids),
            "events_total": c.events_total,
            **({"users": list(c.users), "users_total": c.users_total} if c.users_total else {}),
        }
        for c in reply.conditions
    ]
    history = [
        {"event": h.event, "timestamp": h.timestamp.ToJsonString(), "message_id": h.message_id} for h in reply.history
    ]
    if as_json:
        print_json(
            {
                "id": reply.id,
                "member": reply.member,
                "at": reply.at.ToJsonString(),
                "conditions": conditions,
                "history": history,
            }
        )
        return
    verdict = "is a member of" if reply.member else "is not a member of"
    stdout.print(f"{escape(reply.id)} {verdict} [bold]{escape(key)}[/] at {reply.at.ToJsonString()}", highlight=False)
    for c in reply.conditions:
        indent = "  " * c.depth
        line = f"{indent}{'[green]✓[/]' if c.holds else '[red]✗[/]'} {escape(c.query)}"
        if c.value or c.operand:
            line += f"  [dim](value {escape(c.value.decode() or 'missing')}"
            line += f", compared with {escape(c.operand.decode())})[/]" if c.operand else ")[/]"
        if c.users_total:
            line += f"  [dim]({len(c.users)} of {c.users_total} users)[/]"
        stdout.print(line, highlight=False)
        if c.message_ids:
            more = c.events_total - len(c.message_ids)
            suffix = f" and {more} more" if more > 0 else ""
            stdout.print(f"{indent}    events: {escape(', '.join(c.message_ids))}{suffix}", highlight=False)
    for h in reply.history:
        stdout.print(f"{h.event} at {h.timestamp.ToJsonString()} ({escape(h.message_id)})", highlight=False)


@audience.command("watch")
@click.argument("key")
@target_option
@token_option
@json_option
def watch(key: str, target: str, token: str, as_json: bool) -> None:
    """Print entries and exits of audience KEY (or a computed trait's new values) as they happen."""
    request = audience_pb2.WatchMembershipRequest(key=key)
    stub = _stub(target)
    try:
        for change in stub.WatchMembership(request, metadata=admin_metadata(token)):
            value = json.loads(change.value) if change.value else None
            if as_json:
                row = {
                    "event": change.event,
                    "key": change.key,
                    "profile_id": change.profile_id,
                    "identifier": change.identifier,
                    "timestamp": change.timestamp.ToJsonString(),
                    "message_id": change.message_id,
                    "value": value,
                }
                click.echo(json.dumps(row, sort_keys=True))
            else:
                shown = f" = {json.dumps(value)}" if change.event == "Trait Computed" else ""
                click.echo(f"{change.timestamp.ToJsonString()}  {change.event}  {change.profile_id}{shown}")
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.CANCELLED:
            return
        fail_rpc(exc, target)
    except KeyboardInterrupt:
        return
