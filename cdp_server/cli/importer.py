"""`cdp import FILE`: bulk-load Segment-Spec JSON (lines or one array) over the Stream RPC.

- JSON lines go to the server as the file's bytes, in large chunks, never parsed in Python: the
  server decodes them in Rust (the same entry point as every JSON surface).
- The import is history (`Client.stream(history=True)`): a message without a messageId gets one
  the server derives from its content, so importing the same file again stores nothing twice;
  and `sentAt` is ignored, since skew correction would compare the sender's clock of long ago
  with today's arrival time: each event keeps its own `timestamp` (or `originalTimestamp`).
- Every problem is reported with the line of the file it comes from: the server names the line
  of each rejected or unreadable JSON line; array elements are mapped back by stream position.
- A broken line of JSON lines is counted and skipped; at a broken element of a JSON array the
  import stops, and what was read before it is still imported.
- An unreachable server is retried (`--max-retries` reconnects in a row, with backoff up to
  10 s); a failed import says what was stored before it stopped.
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import click
import grpc
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text
from tributary import Client, StreamError, StreamRejection, StreamSummary
from tributary._proto.cdp.v1 import ingest_pb2

from cdp_server.cli.common import (
    WRITE_KEY_CREDENTIAL,
    check_serving,
    console,
    describe_rpc_error,
    fail,
    json_option,
    print_json,
    target_option,
    write_key_option,
)
from cdp_server.cli.export_files import JSON_ARRAY, JSON_LINES, MAX_LISTED, EventFile, LineMap, Problem

# Problems printed without --json.
SHOWN: Final = 20
# The server's field for a JSON line that is not a readable message.
UNREADABLE_FIELD: Final = "message"
# Reconnects in a row before an import gives up: with the client's backoff (up to 10 s, jittered),
# about five minutes of server downtime.
MAX_RETRIES: Final = 60


@dataclass
class AckTally:
    """Counts of the acknowledgements so far: what is known to be durable if the import is interrupted."""

    stored: int = 0
    duplicates: int = 0

    def add(self, ack: ingest_pb2.StreamResponse) -> None:
        self.stored += ack.accepted
        self.duplicates += ack.duplicates


@dataclass
class ImportReport:
    file: Path
    format: str
    summary: StreamSummary
    problems: list[Problem]  # the first MAX_LISTED, by line
    problem_count: int
    unreadable: int  # lines (or array elements) that are not messages
    stopped_at: Problem | None
    error: str | None  # why the stream failed, if it did
    counts: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        summary = self.summary
        rejected = summary.rejected - sum(1 for r in summary.rejections if r.field == UNREADABLE_FIELD)
        self.counts = {
            # Messages read from the file, unreadable ones included.
            "read": summary.accepted
            + summary.duplicates
            + summary.conflicts
            + rejected
            + self.unreadable
            + summary.unconfirmed,
            "stored": summary.accepted,
            "duplicates": summary.duplicates,
            "conflicts": summary.conflicts,
            "rejected": rejected,
            "unreadable": self.unreadable,
            # Sent but never acknowledged (the stream failed): their fate is unknown.
            "unconfirmed": summary.unconfirmed,
        }

    @property
    def ok(self) -> bool:
        """Every message of the file is stored, now or before (duplicates)."""
        counts = self.counts
        failures = counts["conflicts"] + counts["rejected"] + counts["unreadable"] + counts["unconfirmed"]
        return failures == 0 and self.stopped_at is None and self.error is None

    def to_json(self) -> dict[str, object]:
        return {
            "file": str(self.file),
            "format": self.format,
            **self.counts,
            "complete": self.stopped_at is None and self.error is None,
            "ok": self.ok,
            "stopped_at_line": self.stopped_at.line if self.stopped_at else None,
            "reconnects": self.summary.reconnects,
            "error": self.error,
            "problems": [problem.to_json() for problem in self.problems],
            "problems_omitted": self.problem_count - len(self.problems),
        }

    def print(self) -> None:
        c = self.counts
        console.print(
            f"{escape(self.file.name)}: {_n(c['read'], 'event')} read: [green]{c['stored']:,} stored[/], "
            f"{c['duplicates']:,} duplicates, {c['conflicts']:,} conflicts, {c['rejected']:,} rejected; "
            f"{_n(c['unreadable'], 'unreadable line')}",
            highlight=False,
        )
        for problem in self.problems[:SHOWN]:
            console.print(f"  {escape(problem.describe())}", highlight=False)
        if self.problem_count > SHOWN:
            console.print(f"  … and {self.problem_count - SHOWN:,} more (--json lists up to {MAX_LISTED:,})")

    def failure(self) -> str | None:
        """Why the import did not store the whole file, or None when it did."""
        if self.ok:
            return None
        c = self.counts
        stored = f"{c['stored']:,} stored" + (f", {c['duplicates']:,} already stored" if c["duplicates"] else "")
        if self.error is not None:
            again = "importing the file again stores nothing twice"
            return f"the import stopped: {self.error}. Before it: {stored}; {again}."
        reasons = []
        if self.stopped_at is not None:
            where = "" if self.stopped_at.line is None else f" at line {self.stopped_at.line}"
            what = "the JSON array is broken" if self.format == JSON_ARRAY else "the file cannot be read"
            reasons.append(f"{what}{where}, so the import stopped there")
        elif c["unreadable"]:
            reasons.append(f"{_n(c['unreadable'], 'unreadable line')} skipped")
        if c["rejected"]:
            reasons.append(f"{_n(c['rejected'], 'event')} rejected as invalid")
        if c["conflicts"]:
            reasons.append(
                f"{_n(c['conflicts'], 'event')} in conflict with a different event stored under the same "
                "messageId (the stored one was kept)"
            )
        if c["unconfirmed"]:
            reasons.append(f"{_n(c['unconfirmed'], 'event')} sent but not acknowledged")
        return "; ".join(reasons) + f" ({stored})"


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


class EventRateColumn(ProgressColumn):
    """Events per second, as rich averages them over its recent samples; none for an import too
    short to measure (a rate over a few milliseconds says nothing)."""

    MIN_SECONDS: Final = 1.0

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if task.elapsed is None or task.elapsed < self.MIN_SECONDS:
            speed = None
        return Text("- events/s" if speed is None else f"{speed:,.0f} events/s", style="progress.data.speed")


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--batch-size", type=click.IntRange(1, 2500), default=500, show_default=True, help="Events per batch.")
@click.option(
    "--max-retries",
    type=click.IntRange(0),
    default=MAX_RETRIES,
    show_default=True,
    help="Reconnects in a row to an unreachable server (backoff up to 10 s) before the import gives up.",
)
@target_option
@write_key_option
@json_option
def import_file(file: Path, batch_size: int, max_retries: int, target: str, write_key: str, as_json: bool) -> None:
    """Import Segment-Spec events from FILE: JSON lines, or one JSON array (.gz is decompressed).

    A message without a messageId gets one derived from its content, so importing the same file
    again stores nothing twice (duplicates are counted). sentAt is ignored: each event keeps its
    own timestamp or originalTimestamp, with no skew correction against today.

    Problems are reported with their line numbers. A line of JSON lines that is not a JSON object
    is skipped and the rest imported; in a JSON array the import stops at a broken element.

    Progress goes to stderr; --json prints a summary on stdout instead. Exit status: 0 when every
    event is stored (now or already before), 1 otherwise.
    """
    if not write_key:
        fail(f"a write key is required: {WRITE_KEY_CREDENTIAL}")
    try:
        source = EventFile(file)
        total = source.estimated_events()
    except OSError as exc:
        fail(f"cannot read {file}: {exc}")
    check_serving(target)

    line_map = LineMap()

    def array_messages() -> Iterator[dict[str, Any]]:
        for position, (line, message) in enumerate(source.array_messages()):
            line_map.add(position, line)
            yield message

    acked = AckTally()
    error: str | None = None
    columns = (
        TextColumn("[bold]importing"),
        BarColumn(),
        MofNCompleteColumn(),
        EventRateColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=as_json) as progress:
        task = progress.add_task("import", total=total)

        def on_ack(ack: ingest_pb2.StreamResponse, size: int) -> None:
            acked.add(ack)
            progress.advance(task, size)

        client = Client(target, write_key, max_retries=max_retries)
        try:
            options: dict[str, Any] = {"batch_size": batch_size, "on_ack": on_ack, "history": True}
            if source.format == JSON_LINES:
                with source.open_binary() as raw:
                    summary = client.stream(raw, **options)
            else:
                summary = client.stream(array_messages(), **options)
        except StreamError as exc:
            summary = exc.summary
            # An RPC failure in the user's terms (unreachable, refused key); else the client's account.
            cause = exc.__cause__
            if isinstance(cause, grpc.RpcError) and isinstance(cause, grpc.Call):
                error = describe_rpc_error(cause, target, WRITE_KEY_CREDENTIAL)
            else:
                error = str(exc)
        except KeyboardInterrupt:
            progress.stop()
            console.print(
                f"interrupted: {acked.stored:,} events stored and {acked.duplicates:,} duplicates acknowledged "
                "so far; import the file again to finish (nothing is stored twice)"
            )
            raise SystemExit(130) from None
        finally:
            client.close()
        if error is None and source.stopped_at is None:
            progress.update(task, total=progress.tasks[0].completed)  # done: a full bar

    unreadable = source.unreadable_count + sum(1 for r in summary.rejections if r.field == UNREADABLE_FIELD)
    report = ImportReport(
        file=file,
        format=source.format,
        summary=summary,
        problems=_problems(source, summary, line_map),
        problem_count=source.unreadable_count + summary.rejected,
        unreadable=unreadable,
        stopped_at=source.stopped_at,
        error=error,
    )
    if as_json:
        print_json(report.to_json())
    else:
        report.print()
    failure = report.failure()
    if failure is not None:
        fail(failure)


def _problems(source: EventFile, summary: StreamSummary, line_map: LineMap) -> list[Problem]:
    """The first MAX_LISTED problems by line: unreadable lines and rejected events together."""
    # Positions increase with lines: the first rejections by position are the first by line.
    rejections = heapq.nsmallest(MAX_LISTED, summary.rejections, key=lambda rejection: rejection.position)
    from_server = [_problem(r, r.line or line_map.line(r.position)) for r in rejections]
    return sorted([*source.unreadable, *from_server], key=_line_order)[:MAX_LISTED]


def _problem(rejection: StreamRejection, line: int | None) -> Problem:
    if rejection.field == UNREADABLE_FIELD:
        return Problem(line, "unreadable", rejection.reason.removeprefix("the message ").removeprefix("is "))
    return Problem(line, "rejected", rejection.reason, field=rejection.field, message_id=rejection.message_id)


def _line_order(problem: Problem) -> int:
    return sys.maxsize if problem.line is None else problem.line
