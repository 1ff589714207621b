"""Reading a file of Segment-Spec messages for `cdp import`: JSON lines or one JSON array.

JSON lines are not parsed here: their bytes go to the server in large chunks, which decodes them
in Rust and rejects a broken line alone, naming its line. A JSON array is read element by element
with the client library's `read_events_file` (each message with the line it starts on); it
cannot be resynchronised after a broken element, so reading stops there.
"""

from __future__ import annotations

import gzip
import io
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from tributary import EventFileError, read_events_file

# Problems kept for the report; the counts are always exact.
MAX_LISTED: Final = 1000
JSON_LINES: Final = "json-lines"
JSON_ARRAY: Final = "json-array"
_BOM: Final = b"\xef\xbb\xbf"
_WHITESPACE: Final = b" \t\r\n"


@dataclass(frozen=True)
class Problem:
    """Something in the file that was not stored: an unreadable line, or an event refused as invalid."""

    line: int | None  # 1-based; None only when it cannot be known
    kind: Literal["unreadable", "rejected"]
    reason: str
    field: str = ""
    message_id: str = ""

    def to_json(self) -> dict[str, object]:
        document: dict[str, object] = {"line": self.line, "kind": self.kind, "reason": self.reason}
        if self.kind == "rejected":
            document |= {"field": self.field, "messageId": self.message_id}
        return document

    def describe(self) -> str:
        where = "line ?" if self.line is None else f"line {self.line}"
        if self.kind == "unreadable":
            return f"{where}: unreadable: {self.reason}"
        return f"{where}: rejected ({self.field}): {self.reason}"


class LineMap:
    """Stream position → file line, kept as runs in which line - position is constant: memory
    grows with blank, broken and multi-line messages, not with the number of events."""

    def __init__(self) -> None:
        self._starts = array("q")
        self._offsets = array("q")

    def add(self, position: int, line: int) -> None:
        offset = line - position
        if not self._offsets or self._offsets[-1] != offset:
            self._starts.append(position)
            self._offsets.append(offset)

    def line(self, position: int) -> int | None:
        run = bisect_right(self._starts, position) - 1
        return None if position < 0 or run < 0 else position + self._offsets[run]


class EventFile:
    """The messages of a file with their line numbers, and what could not be read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.format = _detect_format(path)
        self.unreadable: list[Problem] = []  # the first MAX_LISTED
        self.unreadable_count = 0
        self.stopped_at: Problem | None = None  # set when reading could not go on

    def open_binary(self) -> gzip.GzipFile | io.BufferedReader:
        """The file's bytes, decompressed when it is a .gz."""
        return _open_binary(self.path)

    def array_messages(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yields (line, message) for every element of a JSON array; a broken element is recorded
        and ends the reading."""
        try:
            yield from self._array()
        except (OSError, EOFError, UnicodeDecodeError) as exc:  # e.g. a truncated .gz, bytes that are not UTF-8
            self._unreadable(None, f"the file cannot be read further: {exc}", stop=True)

    def estimated_events(self) -> int | None:
        """Lines of a plain JSON-lines file (a quick count for the progress bar), else unknown."""
        if self.format != JSON_LINES or _compressed(self.path):
            return None
        lines = 0
        last = b"\n"
        with self.path.open("rb") as file:
            while chunk := file.read(1 << 20):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        return lines + (last != b"\n")

    def _array(self) -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            yield from read_events_file(self.path)
        except EventFileError as exc:
            self._unreadable(exc.line, exc.reason, stop=True)

    def _unreadable(self, line: int | None, reason: str, *, stop: bool = False) -> None:
        problem = Problem(line, "unreadable", reason)
        self.unreadable_count += 1
        if len(self.unreadable) < MAX_LISTED:
            self.unreadable.append(problem)
        if stop:
            self.stopped_at = problem


def _compressed(path: Path) -> bool:
    return path.name.endswith(".gz")  # as read_events_file decides


def _open_binary(path: Path) -> gzip.GzipFile | io.BufferedReader:
    return gzip.open(path, "rb") if _compressed(path) else path.open("rb")


def _detect_format(path: Path) -> str:
    """A JSON array starts with `[`; anything else is read as JSON lines (as read_events_file does)."""
    with _open_binary(path) as file:
        head = file.read(1 << 16).removeprefix(_BOM)
        while head and not head.lstrip(_WHITESPACE):
            head = file.read(1 << 16)
    return JSON_ARRAY if head.lstrip(_WHITESPACE).startswith(b"[") else JSON_LINES
