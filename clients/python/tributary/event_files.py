"""Reading files of Segment-Spec messages for bulk import: JSON lines, or one JSON array.

Exports can be far larger than memory, so both forms are read incrementally and each message is
yielded with the line it starts on, for error reports that point into the file.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from typing import Any, TextIO

from tributary.errors import EventFileError

_CHUNK_CHARS = 1 << 16
_WHITESPACE = " \t\r\n"


def read_events_file(source: str | os.PathLike[str] | TextIO) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yields (line number, message) from JSON lines or a JSON array, told apart by the first non-space character.

    `source` is a path (`.gz` is decompressed) or an open text file. Blank lines are skipped. A line
    or element that is not a JSON object raises EventFileError with its line number (1-based).
    """
    if isinstance(source, str | os.PathLike):
        opener = gzip.open if os.fspath(source).endswith(".gz") else open
        # utf-8-sig: tools on Windows write a byte-order mark that JSON does not allow.
        with opener(source, "rt", encoding="utf-8-sig") as file:
            yield from _read(file)
    else:
        yield from _read(source)


def _read(file: TextIO) -> Iterator[tuple[int, dict[str, Any]]]:
    head = file.read(_CHUNK_CHARS)
    stripped = head.lstrip(_WHITESPACE)
    if stripped.startswith("["):
        start = len(head) - len(stripped)
        yield from _ArrayReader(file, head, start + 1, 1 + head.count("\n", 0, start)).elements()
    else:
        yield from _json_lines(file, head)


def _json_lines(file: TextIO, head: str) -> Iterator[tuple[int, dict[str, Any]]]:
    lines = head.split("\n")
    partial = lines.pop()  # the head may end inside a line: complete it from the file
    number = 0
    for number, line in enumerate(lines, start=1):
        yield from _parse_line(number, line)
    last = number
    for last, line in enumerate(file, start=number + 1):
        yield from _parse_line(last, partial + line)
        partial = ""
    if partial:
        yield from _parse_line(last + 1, partial)


def _parse_line(number: int, line: str) -> Iterator[tuple[int, dict[str, Any]]]:
    if not line.strip(_WHITESPACE):
        return
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise EventFileError(number, f"not valid JSON: {exc}") from None
    yield number, _message(number, value)


def _message(number: int, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EventFileError(number, f"expected a JSON object, got {type(value).__name__}")
    return value


class _ArrayReader:
    """Decodes one element at a time from a sliding buffer, reading more only when an element is cut off."""

    def __init__(self, file: TextIO, buffer: str, position: int, line: int) -> None:
        self._file = file
        self._buffer = buffer
        self._position = position
        self._line = line  # the line of self._position
        self._eof = False
        self._decoder = json.JSONDecoder()

    def elements(self) -> Iterator[tuple[int, dict[str, Any]]]:
        if self._next_token() == "]":
            self._position += 1
            self._expect_end()
            return
        while True:
            line = self._line
            yield line, _message(line, self._decode())
            token = self._next_token()
            self._position += 1
            if token == "]":
                self._expect_end()
                return
            if token != ",":
                raise EventFileError(self._line, f"expected ',' or ']' in the array, found {token!r}")
            self._next_token()

    def _decode(self) -> object:
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._position)
            except json.JSONDecodeError as exc:
                if self._read_more():
                    continue  # probably cut off at the end of the buffer
                line = self._line + self._buffer.count("\n", self._position, exc.pos)
                raise EventFileError(line, f"not valid JSON: {exc.msg}") from None
            if end == len(self._buffer) and self._read_more():
                continue  # a number or literal may go on in the next chunk
            self._line += self._buffer.count("\n", self._position, end)
            self._position = end
            return value

    def _next_token(self) -> str:
        """Skips whitespace and returns the next character without consuming it."""
        if not self._skip_whitespace():
            raise EventFileError(self._line, "the JSON array is not closed")
        return self._buffer[self._position]

    def _expect_end(self) -> None:
        if self._skip_whitespace():
            raise EventFileError(self._line, "unexpected data after the JSON array")

    def _skip_whitespace(self) -> bool:
        """Moves to the next non-whitespace character; False at the end of the file."""
        while True:
            while self._position < len(self._buffer) and self._buffer[self._position] in _WHITESPACE:
                if self._buffer[self._position] == "\n":
                    self._line += 1
                self._position += 1
            if self._position < len(self._buffer):
                return True
            if not self._read_more():
                return False

    def _read_more(self) -> bool:
        if self._eof:
            return False
        # Read at least as much as is left, so that retries over a long element grow
        # geometrically instead of re-parsing it once per chunk.
        chunk = self._file.read(max(_CHUNK_CHARS, len(self._buffer) - self._position))
        if not chunk:
            self._eof = True
            return False
        # Drop what was consumed (positions of a failed decode are not used after this).
        self._buffer = self._buffer[self._position :] + chunk
        self._position = 0
        return True
