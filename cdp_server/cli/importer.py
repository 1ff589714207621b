"""`cdp import FILE`: bulk-load Segment JSON (lines or an array) over the Stream RPC.

Events without a messageId get one derived from their content, so re-running the same file
stores nothing twice (the server deduplicates by messageId)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cdp_server.cli.common import console, fail, json_option, print_json, target_option, write_key_option

if TYPE_CHECKING:
    from cdp_server._proto.cdp.v1 import event_pb2


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def content_message_id(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return "import-" + hashlib.sha256(canonical).hexdigest()[:40]


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--batch-size", type=click.IntRange(1, 2500), default=500, show_default=True)
@target_option
@write_key_option
@json_option
def import_file(file: Path, batch_size: int, target: str, write_key: str, as_json: bool) -> None:
    """Import Segment-Spec events from FILE (JSON lines or a JSON array)."""
    # The client library is only needed by the commands that send events.
    import grpc
    from tributary import Client, event_from_json, read_events_file

    if not write_key:
        fail("a write key is required: --write-key or TRIBUTARY_WRITE_KEY")
    bad_lines: list[dict[str, Any]] = []

    def events() -> Iterator[event_pb2.Event]:
        for line, document in read_events_file(file):
            if isinstance(document, dict) and not document.get("messageId"):
                document = {**document, "messageId": content_message_id(document)}
            try:
                yield event_from_json(document)
            except (ValueError, TypeError) as exc:
                bad_lines.append({"line": line, "error": str(exc)})

    total = _count_lines(file) or None
    columns = (
        TextColumn("[bold]importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>10} events/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=as_json) as progress:
        task = progress.add_task("import", total=total, rate="-")

        def on_ack(_ack: object, size: int) -> None:
            progress.advance(task, size)
            elapsed = progress.tasks[0].elapsed or 0.0
            done = progress.tasks[0].completed
            progress.update(task, rate=f"{done / elapsed:,.0f}" if elapsed > 0 else "-")

        client = Client(target, write_key)
        try:
            summary = client.stream(events(), batch_size=batch_size, on_ack=on_ack)
        except grpc.RpcError as exc:
            fail(
                f"import stopped: {exc.code().name if isinstance(exc, grpc.Call) else exc}: "
                f"{exc.details() if isinstance(exc, grpc.Call) else ''}"
            )
        except ValueError as exc:
            fail(str(exc))
        finally:
            client.close()
    report = {
        "accepted": summary.accepted,
        "duplicates": summary.duplicates,
        "conflicts": summary.conflicts,
        "rejected": summary.rejected + len(bad_lines),
        "unreadable": bad_lines[:20],
        "rejections": [
            {"position": r.position, "messageId": r.message_id, "field": r.field, "reason": r.reason}
            for r in summary.rejections[:20]
        ],
    }
    if as_json:
        print_json(report)
    else:
        console.print(
            f"[green]{summary.accepted:,} stored[/], {summary.duplicates:,} duplicates, "
            f"{summary.conflicts:,} conflicts, {report['rejected']:,} rejected"
        )
        for problem in report["unreadable"]:
            console.print(f"  line {problem['line']}: {problem['error']}")
        for rejection in report["rejections"]:
            console.print(f"  event {rejection['position']} ({rejection['messageId']}): {rejection['reason']}")
