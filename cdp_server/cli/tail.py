"""`cdp tail`: watch accepted events live."""

from __future__ import annotations

import json
from typing import Any

import click
import grpc
from rich.markup import escape
from tributary._proto.cdp.v1 import admin_pb2, admin_pb2_grpc, event_pb2

from cdp_server.cli.common import (
    admin_metadata,
    channel,
    console,
    event_json,
    event_label,
    fail,
    fail_rpc,
    json_option,
    stdout,
    target_option,
    token_option,
)

TYPES = ["identify", "track", "page", "screen", "group", "alias"]


@click.command()
@click.option("--type", "types", multiple=True, type=click.Choice(TYPES), help="Only these types (repeatable).")
@click.option("--event", "event_names", multiple=True, help="Only track events with this name (repeatable).")
@click.option(
    "--limit", type=click.IntRange(min=0), default=0, help="Stop after this many events (0: run until interrupted)."
)
@target_option
@token_option
@json_option
def tail(
    types: tuple[str, ...], event_names: tuple[str, ...], limit: int, target: str, token: str, as_json: bool
) -> None:
    """Print events as they are accepted, from now on (Ctrl-C to stop).

    With --json, prints one Segment-Spec message per line, with the id of its source as
    "sourceId".
    """
    request = admin_pb2.TailRequest(
        types=[event_pb2.EventType.Value(f"EVENT_TYPE_{kind.upper()}") for kind in types],
        event_names=list(event_names),
    )
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    call = stub.Tail(request, metadata=admin_metadata(token))
    if not as_json:
        console.print(f"tailing events accepted by {escape(target)} (Ctrl-C to stop)", highlight=False)
    seen = 0
    try:
        for reply in call:
            document = event_json(reply.event)
            if as_json:
                # click.echo flushes each line, so that a pipe sees events as they come.
                click.echo(json.dumps({"sourceId": reply.source_id, **document}, sort_keys=True))
            else:
                stdout.print(_line(document), highlight=False, soft_wrap=True)
            seen += 1
            if limit and seen >= limit:
                return
    except KeyboardInterrupt:
        return
    except grpc.RpcError as exc:
        fail_rpc(exc, target)
    finally:
        call.cancel()  # type: ignore[no-untyped-call]  # (untyped in grpc-stubs) no-op when over
    fail("the server ended the tail (it may be shutting down)")


def _line(document: dict[str, Any]) -> str:
    what = event_label(document)
    who = document.get("userId") or f"anon:{document.get('anonymousId', '')}"
    kind = document.get("type", "?")
    return (
        f"{document.get('timestamp', '')}  [bold]{kind:<8}[/] {escape(what):<28} {escape(str(who))}"
        f"  [dim]{escape(document.get('messageId', ''))}[/]"
    )
