"""A table's rows as tuples for a binary COPY, each value fitted to its column's type on the way.

Why binary COPY through psycopg's `write_row` with `set_types`: measured on 1,000-row batches of realistic track
events (29 columns), psycopg formats a row of Python values for binary COPY in about 1 µs (its C formatter), while
its text COPY took about 6 µs a row (Python-level dumpers) and COPY text joined by hand in Python about 2.5 µs;
the server, too, reads binary faster (about 4.6 µs a row against 5.1-5.6 for text: no timestamp parsing). So the
work left in Python is building the tuples: column by column, one list comprehension per column with its common
case inline (a string into text, a float into double precision, ...), then `zip`.

The casting rules (warehouse_schema.py's docstring states them for users): a value that fits its column's type
goes in; one that casts cleanly goes in cast (`"42"` into `bigint`, `3` into `double precision`); one that does not
becomes NULL and is counted in `nulled` (`schema.table.column` → count), so that one odd value never fails a batch.
Timestamps are parsed once a batch per distinct string (a zone-less one is UTC). A column of a type made by hand
(varchar, numeric, jsonb, ...) gets the value's text, to be cast by the server (`CopyColumns.needs_cast`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from typing import Any

import orjson

from cdp_server.destinations.warehouse_schema import BIGINT_MAX, BIGINT_MIN, ColumnType, TableRows, parse_timestamp

# The type each of our column types travels as in a binary COPY (psycopg's `set_types` names).
COPY_TYPES: Mapping[str, str] = {
    ColumnType.TEXT: "text",
    ColumnType.BIGINT: "int8",
    ColumnType.DOUBLE: "float8",
    ColumnType.BOOLEAN: "bool",
    ColumnType.TIMESTAMP: "timestamptz",
}


def _json(value: object) -> str:
    return orjson.dumps(value, default=str).decode()


def to_bigint(value: Any) -> int | None:
    kind = type(value)
    if kind is int:
        return value if BIGINT_MIN <= value <= BIGINT_MAX else None
    if kind is float:
        return int(value) if value.is_integer() and BIGINT_MIN <= value <= BIGINT_MAX else None
    if kind is str:
        try:
            number = int(value)
        except ValueError:
            return None
        return number if BIGINT_MIN <= number <= BIGINT_MAX else None
    return None  # booleans, arrays, objects


def to_double(value: Any) -> float | None:
    kind = type(value)
    if kind is float or kind is int:
        try:
            return float(value)
        except OverflowError:
            return None
    if kind is str:
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def to_boolean(value: Any) -> bool | None:
    if type(value) is bool:
        return value
    if type(value) is str:
        word = value.strip().lower()
        if word in ("true", "false"):
            return word == "true"
    return None


def to_timestamp(value: Any) -> datetime | None:
    return parse_timestamp(value) if type(value) is str else None


@dataclass(frozen=True)
class CopyColumns:
    """How a table's columns travel: `copy_types` for `set_types`; `needs_cast` when some column's type is not one
    of ours (its values then go as text into a staging table and are cast by the INSERT)."""

    names: list[str]
    data_types: list[str]
    copy_types: list[str]
    needs_cast: bool

    @classmethod
    def of(cls, columns: Sequence[tuple[str, str]]) -> CopyColumns:
        names = [name for name, _ in columns]
        data_types = [data_type for _, data_type in columns]
        copy_types = [COPY_TYPES.get(data_type, "text") for data_type in data_types]
        return cls(names, data_types, copy_types, any(data_type not in COPY_TYPES for data_type in data_types))


class CopyRowBuilder:
    """Builds the tuples of one batch (all its tables); `nulled` counts the values that did not cast."""

    def __init__(self, strings_may_hold_nul: bool) -> None:
        # PostgreSQL's text cannot hold NUL: strings lose theirs, when the batch may have any.
        self.strings_may_hold_nul = strings_may_hold_nul
        self.nulled: Counter[str] = Counter()
        self._timestamps: dict[str, datetime | None] = {}
        # (table, column, data type) → (its values, whether some were NULL): what an event's table reuses of
        # `tracks` (a NULL may be a failed cast, to count again for the event's table).
        self._built: dict[tuple[str, str, str], tuple[list[Any], bool]] = {}

    def to_text(self, value: Any) -> str:
        kind = type(value)
        if kind is str:
            text: str = value
            return text.replace("\x00", "") if self.strings_may_hold_nul else text
        if kind is bool:
            return "true" if value else "false"
        if kind is int or kind is float:
            return str(value)
        encoded = _json(value)
        return encoded.replace("\\u0000", "") if self.strings_may_hold_nul else encoded

    def _column_values(self, raw: list[Any], data_type: str) -> list[Any]:
        """The column's values as its COPY type takes them; None for NULL and for a value that did not cast."""
        if data_type == ColumnType.DOUBLE:
            return [value if value is None or type(value) is float else to_double(value) for value in raw]
        if data_type == ColumnType.BIGINT:
            return [
                value
                if value is None or (type(value) is int and BIGINT_MIN <= value <= BIGINT_MAX)
                else to_bigint(value)
                for value in raw
            ]
        if data_type == ColumnType.BOOLEAN:
            return [value if value is None or type(value) is bool else to_boolean(value) for value in raw]
        if data_type == ColumnType.TIMESTAMP:
            memo = self._timestamps
            try:
                for text in set(raw).difference(memo):
                    memo[text] = to_timestamp(text)
            except TypeError:  # an array or object among the values: no memo for this column
                return [None if value is None else to_timestamp(value) for value in raw]
            return [None if value is None else memo[value] for value in raw]
        to_text = self.to_text
        return [None if value is None else to_text(value) for value in raw]

    def rows(self, label: str, table: TableRows, columns: CopyColumns, tail: Any = None) -> Iterator[tuple[Any, ...]]:
        """The tuples for `table`'s rows, in `columns`' order, then `tail` (the same value on every row) when given.
        `label` (`schema.table`) prefixes the `nulled` keys. An event's table takes the values of the columns it
        shares with `tracks` from what `tracks` got (built first: it comes first in a batch's plan)."""
        encoded: list[Any] = []
        to_text = self.to_text
        base = table.base
        for name, data_type in zip(columns.names, columns.data_types, strict=True):
            holders = table.holder_rows(name)
            shared = None if base is None or holders is table.rows else self._built.get((base.table, name, data_type))
            if shared is not None:
                base_values, base_failed = shared
                values = [base_values[position] for position in table.base_positions]
                if base_failed:
                    self._count_failed(label, name, values, [row.get(name) for row in holders])
            elif data_type == ColumnType.TEXT and not self.strings_may_hold_nul:
                # Most columns: one pass, and nothing to count (anything goes into text).
                values = [
                    value if (value := row.get(name)) is None or type(value) is str else to_text(value)
                    for row in holders
                ]
            else:
                raw = [row.get(name) for row in holders]
                values = self._column_values(raw, data_type)
                self._count_failed(label, name, values, raw)
            if base is None:
                self._built[(table.table, name, data_type)] = (values, None in values)
            encoded.append(values)
        if tail is not None:
            encoded.append(repeat(tail, len(table.rows)))
        return zip(*encoded)  # noqa: B905 (the columns and `repeat` have the rows' length)

    def _count_failed(self, label: str, name: str, values: list[Any], raw: list[Any]) -> None:
        failed = values.count(None) - raw.count(None)
        if failed:
            self.nulled[f"{label}.{name}"] += failed
