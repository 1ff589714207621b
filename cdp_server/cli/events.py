"""`cdp events ID`: the events carrying an identifier, newest first, one page at a time."""

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
    "--limit", type=click.IntRange(1, 1000), default=DEFAULT_LIMIT, show_default=True, help="Events per page."
)
@click.option("--cursor", default="", help="Continue after a previous page: the cursor it printed.")
@click.option("--oldest-first", is_flag=True, help="Oldest events first.")
@target_option
@token_option
@json_option
def events(
    identifier: str, limit: int, cursor: str, oldest_first: bool, target: str, token: str, as_json: bool
) -> None:
    """Events carrying IDENTIFIER (type:value, e.g. user_id:42, anonymous_id:abc, email:ann@example.com).

    Prints one page of events, newest first, as a table; when there are more, stderr shows the
    command for the next page (with --cursor).

    With --json, prints {"events": [Segment-Spec messages], "next_cursor": CURSOR}; pass CURSOR
    to --cursor for the next page. It is null when there are no more events.
    """
    kind, _, value = identifier.partition(":")
    if not kind.strip() or not value:
        fail(f"the identifier must be type:value (e.g. user_id:42), got {identifier!r}")
    stub = profile_pb2_grpc.ProfileServiceStub(channel(target))
    request = profile_pb2.ListEventsRequest(
        identifier=identifier, limit=limit, oldest_first=oldest_first, cursor=cursor
    )
    try:
        reply = stub.ListEvents(request, metadata=admin_metadata(token), timeout=RPC_TIMEOUT_SECS)
    except grpc.RpcError as exc:
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
        command += ["--limit", str(limit)] if limit != DEFAULT_LIMIT else []
        command += ["--oldest-first"] if oldest_first else []
        console.print(f"more: {escape(shlex.join(command))}", highlight=False)


def _row(document: dict[str, Any]) -> tuple[str, ...]:
    fields = ("timestamp", "type", "userId", "anonymousId", "messageId")
    timestamp, kind, user_id, anonymous_id, message_id = (str(document.get(key, "")) for key in fields)
    return timestamp, kind, event_label(document), user_id, anonymous_id, message_id
