"""`cdp tail`: watch accepted events live."""

from __future__ import annotations

import json

import click
import grpc

from cdp_server._proto.cdp.v1 import admin_pb2, admin_pb2_grpc, event_pb2
from cdp_server.cli.common import admin_metadata, channel, fail_rpc, json_option, stdout, target_option, token_option

TYPES = ["identify", "track", "page", "screen", "group", "alias"]


@click.command()
@click.option("--type", "types", multiple=True, type=click.Choice(TYPES), help="Only these types (repeatable).")
@click.option("--event", "event_names", multiple=True, help="Only track events with this name (repeatable).")
@click.option("--limit", type=int, default=0, help="Stop after this many events (0: run until interrupted).")
@target_option
@token_option
@json_option
def tail(
    types: tuple[str, ...], event_names: tuple[str, ...], limit: int, target: str, token: str, as_json: bool
) -> None:
    """Print events as they are accepted (Ctrl-C to stop)."""
    from tributary import event_to_json  # the client library: only needed for output

    request = admin_pb2.TailRequest(
        types=[event_pb2.EventType.Value(f"EVENT_TYPE_{t.upper()}") for t in types], event_names=list(event_names)
    )
    stub = admin_pb2_grpc.AdminServiceStub(channel(target))
    seen = 0
    try:
        for reply in stub.Tail(request, metadata=admin_metadata(token)):
            document = event_to_json(reply.event)
            if as_json:
                click.echo(json.dumps({"sourceId": reply.source_id, **document}, sort_keys=True))
            else:
                stdout.print(_line(reply.event), highlight=False)
            seen += 1
            if limit and seen >= limit:
                break
    except KeyboardInterrupt:
        pass
    except grpc.RpcError as exc:
        fail_rpc(exc, target)


def _line(event: event_pb2.Event) -> str:
    kind = event_pb2.EventType.Name(event.type).removeprefix("EVENT_TYPE_").lower()
    what = event.event or event.name or event.group_id or event.previous_id
    who = event.user_id or f"anon:{event.anonymous_id}"
    when = event.timestamp.ToJsonString()
    return f"{when}  [bold]{kind:<8}[/] {what:<28} {who}  [dim]{event.message_id}[/]"
