"""A reader of PostgreSQL's binary COPY format (the warehouse destination's payloads), small enough to trust:
a payload back into rows of Python values, for the warehouse tests and the load benchmark's baseline."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

# information_schema data type → the Python value of its binary form.
DECODERS: dict[str, Callable[[bytes], Any]] = {
    "text": bytes.decode,
    "bigint": lambda data: struct.unpack(">q", data)[0],
    "double precision": lambda data: struct.unpack(">d", data)[0],
    "boolean": lambda data: data == b"\x01",
    "timestamp with time zone": lambda data: POSTGRES_EPOCH + timedelta(microseconds=struct.unpack(">q", data)[0]),
}


def read_binary_copy(payload: bytes, data_types: Sequence[str]) -> list[tuple[Any, ...]]:
    """The rows of a whole binary COPY payload (signature to trailer) whose fields have `data_types`."""
    assert payload.startswith(SIGNATURE), "no binary COPY signature"
    flags, extension = struct.unpack_from(">ii", payload, len(SIGNATURE))
    assert flags == 0
    position = len(SIGNATURE) + 8 + extension
    rows: list[tuple[Any, ...]] = []
    while True:
        (fields,) = struct.unpack_from(">h", payload, position)
        position += 2
        if fields == -1:
            break
        assert fields == len(data_types), f"a row of {fields} fields, not {len(data_types)}"
        row: list[Any] = []
        for data_type in data_types:
            (length,) = struct.unpack_from(">i", payload, position)
            position += 4
            if length == -1:
                row.append(None)
                continue
            row.append(DECODERS[data_type](payload[position : position + length]))
            position += length
        rows.append(tuple(row))
    assert position == len(payload), "bytes after the trailer"
    return rows
