"""`cdp events ID`: a person's events (their whole profile's, or one identifier's), newest first
by event time, one page at a time."""

from __future__ import annotations

import shlex
from typing import Any

import click
import grpc
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from tributary._proto.cdp.v1 import profile_pb2, profile_pb2_grpc

from cdp_server.cli.common import (
    RPC_TIMEOUT_SECS,
    admin_metadata,
    channel,
    console,
    event_json,
    event_label,
    fail,
    fail_rpc,
    json_option,
    print_json,
    stdout,
    target_option,
    token_option,
)

DEFAULT_LIMIT = 20


@click.command()
@click.argument("identifier")
@click.option(
    "--only-identifier",
    is_flag=True,
    help="Only the events that carry IDENTIFIER itself, not those of the rest of its profile.",
)
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=DEFAULT_LIMIT, show_default=True, help="Events per page."
)
@click.option("--cursor", default="", help="Continue after a previous page: the cursor it printed.")
@click.option("--oldest-first", is_flag=True, help="Oldest events first (by event time).")
@target_option
@token_option
@json_option
def events(
    identifier: str,
    only_identifier: bool,
    limit: int,
    cursor: str,
    oldest_first: bool,
    target: str,
    token: str,
    as_json: bool,
) -> None:
    """A person's events: those of the whole profile of IDENTIFIER, under all of its identifiers.

    IDENTIFIER is type:value (user_id:42, anonymous_id:abc, email:ann@example.com) or a profile
    id (tp_...). With --only-identifier, only the events that carry IDENTIFIER itself.

    Newest first by event time: the event's timestamp (when it happened, as the sender said,
    with clock skew corrected), not when the server received it, so an event sent late or
    imported later takes its place in time. Ties are in the order received.

    Prints one page of events as a table; when there are more, stderr shows the command for the
    next page (with --cursor). With --json, prints {"events": [Segment-Spec messages],
    "next_cursor": CURSOR}; pass CURSOR to --cursor for the next page. It is null when there are
    no more events.
    """
    is_profile_id = identifier.startswith("tp_")
    kind, _, value = identifier.partition(":")
    if not is_profile_id and (not kind.strip() or not value):
        fail(f"the identifier must be type:value (e.g. user_id:42) or a profile id (tp_...), got {identifier!r}")
    if only_identifier and is_profile_id:
        raise click.UsageError("--only-identifier needs a type:value identifier, not a profile id")
    stub = profile_pb2_grpc.ProfileServiceStub(channel(target))
    request = profile_pb2.ListEventsRequest(
        identifier=identifier,
        limit=limit,
        oldest_first=oldest_first,
        cursor=cursor,
        profile=not only_identifier,
        by_event_time=True,
    )
    try:
        reply = stub.ListEvents(request, metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS)
    except grpc.RpcError as exc:
        if isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.NOT_FOUND:
            fail(f"no events for {identifier}")  # the server says "no profile for ..." in profile mode
        fail_rpc(exc, target)
    documents = [event_json(event) for event in reply.events]
    next_cursor = reply.next_cursor or None
    if as_json:
        print_json({"events": documents, "next_cursor": next_cursor})
        return
    table = Table()
    for header in ("timestamp", "type", "event / name", "userId", "anonymousId", "messageId"):
        table.add_column(header, overflow="fold")  # narrow output (a pipe is 80 columns) wraps, losing nothing
    for document in documents:
        table.add_row(*(Text(cell) for cell in _row(document)))  # Text: user content is not rich markup
    stdout.print(table)
    if not documents:
        console.print("no more events" if cursor else f"no events for {escape(identifier)}", highlight=False)
    if next_cursor is not None:
        command = ["cdp", "events", identifier, "--cursor", next_cursor]
        command += ["--only-identifier"] if only_identifier else []
        command += ["--limit", str(limit)] if limit != DEFAULT_LIMIT else []
        command += ["--oldest-first"] if oldest_first else []
        console.print(f"more: {escape(shlex.join(command))}", highlight=False)


def _row(document: dict[str, Any]) -> tuple[str, ...]:
    fields = ("timestamp", "type", "userId", "anonymousId", "messageId")
    timestamp, kind, user_id, anonymous_id, message_id = (str(document.get(key, "")) for key in fields)
    return timestamp, kind, event_label(document), user_id, anonymous_id, message_id
