"""`cdp events ID`: a user's events, newest first."""

from __future__ import annotations

import click
import grpc
from rich.table import Table

from cdp_server._proto.cdp.v1 import event_pb2, profile_pb2, profile_pb2_grpc
from cdp_server.cli.common import (
    admin_metadata,
    channel,
    fail,
    fail_rpc,
    json_option,
    print_json,
    stdout,
    target_option,
    token_option,
)


@click.command()
@click.argument("identifier")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--oldest-first", is_flag=True, help="Oldest events first.")
@target_option
@token_option
@json_option
def events(identifier: str, limit: int, oldest_first: bool, target: str, token: str, as_json: bool) -> None:
    """Events of IDENTIFIER, e.g. user_id:42, anonymous_id:abc, email:ann@example.com."""
    from tributary import event_to_json  # the client library: only needed for output

    if ":" not in identifier:
        fail(f"identifier must be type:value (e.g. user_id:42), got {identifier!r}")
    stub = profile_pb2_grpc.ProfileServiceStub(channel(target))
    request = profile_pb2.ListEventsRequest(identifier=identifier, limit=limit, oldest_first=oldest_first)
    try:
        reply = stub.ListEvents(request, metadata=admin_metadata(token))
    except grpc.RpcError as exc:
        if isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.NOT_FOUND:
            fail(f"no events for {identifier}")
        fail_rpc(exc, target)
    if as_json:
        print_json([event_to_json(e) for e in reply.events])
        return
    table = Table("timestamp", "type", "event / name", "userId", "anonymousId", "messageId")
    for event in reply.events:
        kind = event_pb2.EventType.Name(event.type).removeprefix("EVENT_TYPE_").lower()
        table.add_row(
            event.timestamp.ToJsonString(),
            kind,
            event.event or event.name or event.group_id,
            event.user_id,
            event.anonymous_id,
            event.message_id,
        )
    stdout.print(table)
