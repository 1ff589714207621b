"""`cdp profile ID`: one person's profile: traits, identifiers, merges and recent events.
`cdp profile why A B`: why two identifiers share a profile, or why not.
`cdp profile split PROFILE A B` and `cdp profile remove PROFILE IDENTIFIER`: undo a wrong merge."""

from __future__ import annotations

import json
from typing import Any

import click
import grpc
from google.protobuf.json_format import MessageToDict
from rich.table import Table
from rich.text import Text

from cdp_server._proto.cdp.v1 import admin_pb2, admin_pb2_grpc, profile_pb2, profile_pb2_grpc
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
    require_client_library,
    stdout,
    target_option,
    token_option,
)

RECENT_EVENTS = 10


@click.command()
@click.argument("args", nargs=-1, required=True, metavar="IDENTIFIER | why A B | split PROFILE A B | remove PROFILE ID")
@click.option("--trait", "traits", multiple=True, help="Only these traits (repeatable).")
@click.option(
    "--events",
    "recent",
    type=click.IntRange(0, 1000),
    default=RECENT_EVENTS,
    show_default=True,
    help="How many recent events to show.",
)
@change_options
@target_option
@token_option
@json_option
def profile(
    args: tuple[str, ...],
    traits: tuple[str, ...],
    recent: int,
    yes: bool,
    dry_run: bool,
    target: str,
    token: str,
    as_json: bool,
) -> None:
    """The profile of IDENTIFIER (type:value, e.g. user_id:42, or a profile id tp_...).

    With --json, prints {"profile": {...}, "events": [Segment-Spec messages]}.

    `cdp profile why A B` explains why identifiers A and B are in one profile (the events that
    joined them and the merges between) or why they were kept apart (the refused links).

    `cdp profile split PROFILE A B` keeps identifiers A and B of PROFILE apart from now on and
    rebuilds the profile from its other links; `cdp profile remove PROFILE ID` takes identifier
    ID out of PROFILE (it keeps a profile of its own and never links again). Both show the
    profiles they will change and ask first (--yes: do not ask; --dry-run: only show), and are
    kept with the data (`cdp identity separations` lists and withdraws them).
    """
    usage = {"why": 3, "split": 4, "remove": 3}
    if args[0] in usage:
        if len(args) != usage[args[0]]:
            raise click.UsageError(
                {
                    "why": "usage: cdp profile why A B (two type:value identifiers)",
                    "split": "usage: cdp profile split PROFILE A B (PROFILE: type:value or tp_...)",
                    "remove": "usage: cdp profile remove PROFILE IDENTIFIER",
                }[args[0]]
            )
        if args[0] == "why":
            _explain(args[1], args[2], target, token, as_json)
        else:
            _undo_merge(args, target, token, as_json, yes=yes, dry_run=dry_run)
        return
    if len(args) != 1:
        raise click.UsageError("give one identifier, or: why A B, split PROFILE A B, remove PROFILE ID")
    identifier = args[0]
    require_client_library()
    stub = profile_pb2_grpc.ProfileServiceStub(channel(target))
    metadata = admin_metadata(token)
    request = profile_pb2.GetProfileRequest(identifier=identifier, include=list(traits), verbose=True)
    try:
        reply = stub.GetProfile(request, metadata=metadata, timeout=RPC_TIMEOUT_SECS)
        found = reply.profile
        events: list[dict[str, Any]] = []
        if recent:
            listed = stub.ListEvents(
                profile_pb2.ListEventsRequest(identifier=found.id, limit=recent, profile=True),
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


def _undo_merge(args: tuple[str, ...], target: str, token: str, as_json: bool, *, yes: bool, dry_run: bool) -> None:
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    metadata = admin_metadata(token)
    result: dict[str, object]
    if args[0] == "split":

        def split(dry: bool) -> admin_pb2.SplitProfileResponse:
            request = admin_pb2.SplitProfileRequest(profile=args[1], a=args[2], b=args[3], dry_run=dry)
            return stub.SplitProfile(request, metadata=metadata, timeout=RPC_TIMEOUT_SECS)

        question = f"Keep {args[2]} and {args[3]} apart?"
        done = confirm_and_apply(split, question=question, yes=yes, dry_run=dry_run, as_json=as_json, target=target)
        result = {"applied": done.applied, "profile_a": done.profile_a, "profile_b": done.profile_b}
        result["change"] = MessageToDict(done.change, preserving_proto_field_name=True)
        verb = "is in" if done.applied else "would be in"
        lines = [f"{args[2]} {verb} {done.profile_a}", f"{args[3]} {verb} {done.profile_b}"]
    else:

        def remove(dry: bool) -> admin_pb2.RemoveIdentifierResponse:
            request = admin_pb2.RemoveIdentifierRequest(profile=args[1], identifier=args[2], dry_run=dry)
            return stub.RemoveIdentifier(request, metadata=metadata, timeout=RPC_TIMEOUT_SECS)

        question = f"Take {args[2]} out of its profile?"
        removed = confirm_and_apply(remove, question=question, yes=yes, dry_run=dry_run, as_json=as_json, target=target)
        result = {
            "applied": removed.applied,
            "profile_id": removed.profile_id,
            "removed_profile_id": removed.removed_profile_id,
            "change": MessageToDict(removed.change, preserving_proto_field_name=True),
        }
        verb = "is in" if removed.applied else "would be in"
        lines = [f"{args[2]} {verb} {removed.removed_profile_id}", f"the rest {verb} {removed.profile_id}"]
    if as_json:
        print_json(result)
        return
    for line in lines:
        stdout.print(Text(line))


def _explain(a: str, b: str, target: str, token: str, as_json: bool) -> None:
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
    }
