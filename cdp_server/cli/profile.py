"""`cdp profile`: one command per action, each with its own --help.

- `cdp profile show ID`: one person's profile: traits, identifiers, merges and recent events.
- `cdp profile why A B`: why two identifiers share a profile, or why not.
- `cdp profile split PROFILE A B` and `cdp profile remove PROFILE IDENTIFIER`: undo a wrong merge.
"""

from __future__ import annotations

import json
import math
from typing import Any

import click
import grpc
from google.protobuf.json_format import MessageToDict
from rich.table import Table
from rich.text import Text
from tributary._proto.cdp.v1 import admin_pb2, admin_pb2_grpc, profile_pb2, profile_pb2_grpc

from cdp_server.cli.changes import change_options, confirm_and_apply
from cdp_server.cli.common import (
    RPC_TIMEOUT_SECS,
    admin_metadata,
    channel,
    event_json,
    event_label,
    fail_rpc,
    json_option,
    print_json,
    stdout,
    target_option,
    token_option,
)

RECENT_EVENTS = 10


@click.group()
def profile() -> None:
    """Profiles: one per person, over all of their identifiers.

    An identifier is type:value (user_id:42, email:ann@example.com, anonymous_id:abc); a profile
    is also named by its id (tp_...).
    """


@profile.command()
@click.argument("identifier")
@click.option("--trait", "traits", multiple=True, help="Only these traits (repeatable).")
@click.option(
    "--events",
    "recent",
    type=click.IntRange(0, 1000),
    default=RECENT_EVENTS,
    show_default=True,
    help="How many recent events to show (newest first by event time).",
)
@target_option
@token_option
@json_option
def show(identifier: str, traits: tuple[str, ...], recent: int, target: str, token: str, as_json: bool) -> None:
    """One person's traits, identifiers, merges and recent events.

    IDENTIFIER is any of the person's identifiers (type:value, e.g. user_id:42) or the profile
    id (tp_...). Traits: the latest timestamp wins. Recent events: newest first by event time.
    With --json, prints {"profile": {...}, "events": [Segment-Spec messages], "merges": [...]}.
    """
    stub = profile_pb2_grpc.ProfileServiceStub(channel(target))
    metadata = admin_metadata(token)
    request = profile_pb2.GetProfileRequest(identifier=identifier, include=list(traits), verbose=True)
    try:
        reply = stub.GetProfile(request, metadata=metadata, timeout=RPC_TIMEOUT_SECS)
        found = reply.profile
        events: list[dict[str, Any]] = []
        if recent:
            listed = stub.ListEvents(
                profile_pb2.ListEventsRequest(identifier=found.id, limit=recent, profile=True, by_event_time=True),
                metadata=metadata,
                timeout=RPC_TIMEOUT_SECS,
            )
            events = [event_json(event) for event in listed.events]
        history = stub.GetMergeHistory(
            profile_pb2.GetMergeHistoryRequest(identifier=found.id), metadata=metadata, timeout=RPC_TIMEOUT_SECS
        )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    document = _profile_json(found)
    merges = [MessageToDict(merge, preserving_proto_field_name=True) for merge in history.merges]
    if as_json:
        print_json({"profile": document, "events": events, "merges": merges})
        return
    stdout.print(Text.assemble(("profile ", "bold"), found.id, f"  ({found.merges} merges)"))
    table = Table("trait", "value", "updated", "by message", title="traits", title_justify="left")
    for source in found.trait_sources:
        table.add_row(
            *(
                Text(cell)
                for cell in (source.name, source.value.decode(), source.updated_at.ToJsonString(), source.message_id)
            )
        )
    stdout.print(table)
    ids = Table("type", "value", "first seen", "first message", title="identifiers", title_justify="left")
    for item in found.identifiers:
        ids.add_row(
            *(Text(cell) for cell in (item.type, item.value, item.first_seen.ToJsonString(), item.first_message_id))
        )
    stdout.print(ids)
    for prediction in found.predictions:
        reasons = Table(
            "reason",
            "value",
            "contribution",
            title=f"prediction {prediction.key}: {prediction.score:.4f}",
            title_justify="left",
        )
        for reason in prediction.reasons:
            value = "-" if math.isnan(reason.value) else f"{reason.value:g}"
            reasons.add_row(Text(reason.feature), value, f"{reason.contribution:+.3f}")
        stdout.print(reasons)
    if events:
        recent_table = Table(
            "timestamp", "type", "event / name", "messageId", title="recent events", title_justify="left"
        )
        for event in events:
            recent_table.add_row(
                *(Text(str(event.get(key, ""))) for key in ("timestamp", "type")),
                Text(event_label(event)),
                Text(str(event.get("messageId", ""))),
            )
        stdout.print(recent_table)
    if history.merges:
        merge_table = Table("when", "kept", "merged", "by message", title="merges", title_justify="left")
        for merge in history.merges:
            merge_table.add_row(
                *(
                    Text(cell)
                    for cell in (merge.timestamp.ToJsonString(), merge.survivor_id, merge.merged_id, merge.message_id)
                )
            )
        stdout.print(merge_table)


@profile.command()
@click.argument("profile_id", metavar="PROFILE")
@click.argument("a")
@click.argument("b")
@change_options
@target_option
@token_option
@json_option
def split(profile_id: str, a: str, b: str, yes: bool, dry_run: bool, target: str, token: str, as_json: bool) -> None:
    """Keep identifiers A and B of PROFILE apart from now on.

    PROFILE is one of its identifiers (type:value) or its id (tp_...). The profile is rebuilt
    from its other links, so that A and B end in different profiles. Shows the profiles it will
    change and asks first (--yes: do not ask; --dry-run: only show). The split is kept with the
    data and survives restarts (`cdp identity separations` lists and withdraws it). With --json,
    prints {"applied": ..., "profile_a": ID, "profile_b": ID, "change": {...}}.
    """
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))

    def call(dry: bool) -> admin_pb2.SplitProfileResponse:
        request = admin_pb2.SplitProfileRequest(profile=profile_id, a=a, b=b, dry_run=dry)
        return stub.SplitProfile(request, metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS)

    done = confirm_and_apply(
        call, question=f"Keep {a} and {b} apart?", yes=yes, dry_run=dry_run, as_json=as_json, target=target
    )
    verb = "is in" if done.applied else "would be in"
    _print_change_outcome(
        {"applied": done.applied, "profile_a": done.profile_a, "profile_b": done.profile_b},
        done.change,
        [f"{a} {verb} {done.profile_a or 'no profile'}", f"{b} {verb} {done.profile_b or 'no profile'}"],
        as_json,
    )


@profile.command()
@click.argument("profile_id", metavar="PROFILE")
@click.argument("identifier")
@change_options
@target_option
@token_option
@json_option
def remove(profile_id: str, identifier: str, yes: bool, dry_run: bool, target: str, token: str, as_json: bool) -> None:
    """Take IDENTIFIER out of PROFILE (a shared device, a wrong link).

    IDENTIFIER keeps a profile of its own and never links to PROFILE again. Shows the profiles it
    will change and asks first (--yes: do not ask; --dry-run: only show). Kept with the data and
    survives restarts (`cdp identity separations` lists and withdraws it). With --json, prints
    {"applied": ..., "profile_id": ID, "removed_profile_id": ID, "change": {...}}.
    """
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))

    def call(dry: bool) -> admin_pb2.RemoveIdentifierResponse:
        request = admin_pb2.RemoveIdentifierRequest(profile=profile_id, identifier=identifier, dry_run=dry)
        return stub.RemoveIdentifier(request, metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS)

    done = confirm_and_apply(
        call,
        question=f"Take {identifier} out of its profile?",
        yes=yes,
        dry_run=dry_run,
        as_json=as_json,
        target=target,
    )
    verb = "is in" if done.applied else "would be in"
    _print_change_outcome(
        {"applied": done.applied, "profile_id": done.profile_id, "removed_profile_id": done.removed_profile_id},
        done.change,
        [
            f"{identifier} {verb} {done.removed_profile_id or 'no profile'}",
            f"the rest {verb} {done.profile_id or 'no profile'}",
        ],
        as_json,
    )


def _print_change_outcome(
    result: dict[str, object], change: admin_pb2.IdentityChange, lines: list[str], as_json: bool
) -> None:
    if as_json:
        print_json({**result, "change": MessageToDict(change, preserving_proto_field_name=True)})
        return
    for line in lines:
        stdout.print(Text(line))

    if as_json:
        print_json(result)
        return
    for line in lines:
        stdout.print(Text(line))


@profile.command()
@click.argument("a")
@click.argument("b")
@target_option
@token_option
@json_option
def why(a: str, b: str, target: str, token: str, as_json: bool) -> None:
    """Why identifiers A and B are (or are not) in one profile.

    Lists the events that joined them and the merges between, or the links that were refused
    (and by which rule).
    """
    stub = profile_pb2_grpc.ProfileServiceStub(channel(target))
    try:
        reply = stub.ExplainLink(
            profile_pb2.ExplainLinkRequest(a=a, b=b), metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS
        )
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    if as_json:
        print_json(MessageToDict(reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True))
        return
    verdict = "are in one profile" if reply.linked else "are in different profiles"
    stdout.print(Text(f"{a} and {b} {verdict}: {reply.profile_a}" + ("" if reply.linked else f", {reply.profile_b}")))
    if not reply.steps:
        stdout.print(Text("no event ever carried identifiers of both profiles"))
    for step in reply.steps:
        stdout.print(Text(f"  {step.timestamp.ToJsonString()}  {step.description}"))


def _profile_json(found: profile_pb2.Profile) -> dict[str, Any]:
    return {
        "id": found.id,
        "merges": found.merges,
        "traits_dropped": found.traits_dropped,
        "traits": json.loads(found.traits or b"{}"),
        "identifiers": [MessageToDict(item) for item in found.identifiers],
        "trait_sources": [
            {**MessageToDict(source, preserving_proto_field_name=True), "value": json.loads(source.value)}
            for source in found.trait_sources
        ],
        "predictions": [
            {
                "key": p.key,
                "score": p.score,
                "raw_score": p.raw_score,
                "expected_value": p.expected_value,
                "reasons": [
                    {
                        "feature": r.feature,
                        "value": None if math.isnan(r.value) else r.value,
                        "contribution": r.contribution,
                    }
                    for r in p.reasons
                ],
            }
            for p in found.predictions
        ],
    }
