"""Segment's warehouse schema: which tables an event lands in, its columns, and their PostgreSQL types.

Pure functions, no database: `plan_batch` turns a batch's Segment-Spec events into rows per table, and
`infer_type` picks a new column's type from the first value seen. warehouse_copy.py fits later values into their
column's type (the rule is stated below); the loader (warehouse.py) makes the tables and columns and copies.

Sources: Segment's "Warehouse Schemas" documentation (segment-docs, src/connections/storage/warehouses/schema.md:
tables, columns, flattening, types, `id`/`uuid_ts`, reserved column names), the go-snakecase package that page names
for table and column names (ported in `snake_case`, with its quirks), and RudderStack's "Warehouse Schema" docs for
the one case Segment leaves open (an event whose table name would be a fixed table's).

Tables and their columns:
- Every table of calls (`identifies`, `tracks`, `pages`, `screens`, `groups`, `aliases`, one per track event) has
  `id` (the messageId, primary key), `received_at`, `sent_at`, `original_timestamp`, `timestamp`, `uuid_ts` (load
  time), `user_id`, `anonymous_id`, and `context_*` (the context object, flattened).
- `tracks`: plus `event` (the event name in snake_case, the name of its table) and `event_text` (the name as sent);
  no properties. The event's table (`Order Completed` → `order_completed`): the same columns plus its properties.
- `pages`, `screens`: plus `name` and the properties. `identifies`: plus the traits. `groups`: plus `group_id` and
  the group's traits. `aliases`: plus `previous_id`.
- `users`: one row per userId (`id`), upserted from identify calls that carry a userId: `received_at`, `timestamp`
  and `uuid_ts` of the newest, and every trait's newest non-null value. No `anonymous_id` (a user has many) and no
  context, as in Segment.

Names: snake_case per key (go-snakecase: ASCII letters and digits only, `firstName` → `first_name`); nested
objects join their keys with `_` (`context.library.name` → `context_library_name`). A key with no ASCII letter or
digit becomes `_` + 8 hex digits of its digest, so that its values are kept. A name longer than PostgreSQL's 63
bytes keeps its first 54 bytes plus `_` and 8 hex digits of the full name's digest (PostgreSQL would truncate,
merging distinct long names). An event whose table name would be a fixed table's (`Users`) gets a `_` prefix
(`_users`); an event name with no ASCII letter or digit gets `event_` + digest.

Reserved columns: a property or trait whose column would be one of the table's own columns (`id`, `user_id`,
`name` on pages, ...) or a `context_` column is discarded, as Segment does (documented: "Segment discards
properties with the same name as the reserved column name"); `BatchPlan.discarded` counts them.

Values: null values make no column (Segment: a column is created on its first non-null value). Arrays, and objects
nested more than MAX_FLATTEN_DEPTH deep, are stored as JSON text. Text loses NUL characters (PostgreSQL text cannot
hold them).

Types: a new column takes the type of the first non-null value seen for it (in log order): boolean → `boolean`,
integer (64-bit) → `bigint`, other number → `double precision`, a string that is an ISO-8601 date-time with a time
zone (`2024-05-01T12:00:00Z`) → `timestamp with time zone`, anything else (other strings, arrays, larger integers)
→ `text`. The four event timestamps are always `timestamp with time zone`; ids and names always `text`.

A later value that does not fit its column's type: into a `text` column, any value goes in as its text (`42`,
`true`, JSON for arrays); into another type, a value that casts cleanly goes in (`"42"` into `bigint`, `3` into
`double precision`, `3.0` into `bigint`, `"true"` into `boolean`, a date-time string into a timestamp, read as UTC
when it has no zone); one that does not (`"abc"` into `bigint`, `1.5` into `bigint`, `true` into `bigint`) goes in
as NULL and is counted (`WarehouseStats.values_nulled`), so one odd value never fails a batch. A column of another
type (made by hand: `numeric`, `varchar(20)`, ...) takes the value's text and the server's cast; a value the server
cannot cast fails the batch (PermanentError naming the table and column).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property, lru_cache
from typing import Any

import orjson

JsonObject = dict[str, Any]

MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1
# Objects nested deeper than this under `properties`/`traits`/`context` are stored as JSON text, not flattened:
# `properties.a.b.c` is a column, `properties.a.b.c.d` is JSON inside `a_b_c`.
MAX_FLATTEN_DEPTH = 3
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1

FIXED_TABLES = frozenset({"identifies", "users", "tracks", "pages", "screens", "groups", "aliases"})


class ColumnType(StrEnum):
    """The types this module creates; the values are information_schema's `data_type` names (valid in DDL)."""

    TEXT = "text"
    BIGINT = "bigint"
    DOUBLE = "double precision"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp with time zone"


TIMESTAMP_COLUMNS = ("received_at", "sent_at", "original_timestamp", "timestamp")
CALL_COLUMNS: dict[str, ColumnType] = {
    "id": ColumnType.TEXT,
    "received_at": ColumnType.TIMESTAMP,
    "sent_at": ColumnType.TIMESTAMP,
    "original_timestamp": ColumnType.TIMESTAMP,
    "timestamp": ColumnType.TIMESTAMP,
    "uuid_ts": ColumnType.TIMESTAMP,
    "user_id": ColumnType.TEXT,
    "anonymous_id": ColumnType.TEXT,
}
TRACK_COLUMNS = CALL_COLUMNS | {"event": ColumnType.TEXT, "event_text": ColumnType.TEXT}
PAGE_COLUMNS = CALL_COLUMNS | {"name": ColumnType.TEXT}
GROUP_COLUMNS = CALL_COLUMNS | {"group_id": ColumnType.TEXT}
ALIAS_COLUMNS = CALL_COLUMNS | {"previous_id": ColumnType.TEXT}
USER_COLUMNS: dict[str, ColumnType] = {
    "id": ColumnType.TEXT,
    "received_at": ColumnType.TIMESTAMP,
    "timestamp": ColumnType.TIMESTAMP,
    "uuid_ts": ColumnType.TIMESTAMP,
}
# Set by the loader (load time), never copied from an event.
LOAD_TIME_COLUMN = "uuid_ts"

# Per-table columns that properties/traits may not take (besides every `context_` column).
_TRACK_RESERVED = frozenset(TRACK_COLUMNS)
_PAGE_RESERVED = frozenset(PAGE_COLUMNS)
_TRAIT_RESERVED = frozenset(CALL_COLUMNS)
_GROUP_RESERVED = frozenset(GROUP_COLUMNS)


# -- names --------------------------------------------------------------------------------------------------------


def _is_lower(c: int) -> bool:
    return 97 <= c <= 122


def _is_upper(c: int) -> bool:
    return 65 <= c <= 90


def _is_digit(c: int) -> bool:
    return 48 <= c <= 57


def snake_case(name: str) -> str:
    """go-snakecase's `Snakecase`, byte for byte: runs of [A-Z0-9]*[a-z0-9]* joined by `_`, everything else a
    separator (non-ASCII included). Ported with its quirk that a digit right before the first upper-case letter
    starts a new word (`sample2Text` → `sample_2text`), so that names match a Segment warehouse's."""
    data = name.encode()
    size = len(data)
    index = 0
    while index < size:
        c = data[index]
        if (
            _is_lower(c)
            or _is_digit(c)
            or (c == 95 and index < size - 1 and (_is_lower(data[index + 1]) or _is_digit(data[index + 1])))
        ):
            index += 1
        else:
            break
    if index == size:
        return name
    if index > 0 and _is_digit(data[index - 1]):
        index -= 1
    out = bytearray(data[:index])
    while index < size:
        c = data[index]
        if not (_is_lower(c) or _is_upper(c) or _is_digit(c)):
            index += 1
            continue
        if out:
            out.append(95)
        while index < size and (_is_upper(data[index]) or _is_digit(data[index])):
            out.append(data[index] + 32 if _is_upper(data[index]) else data[index])
            index += 1
        while index < size and (_is_lower(data[index]) or _is_digit(data[index])):
            out.append(data[index])
            index += 1
    return out.decode()


def _digest(name: str) -> str:
    return hashlib.blake2b(name.encode(), digest_size=4).hexdigest()


def fit_identifier(name: str) -> str:
    """`name` when it fits in 63 bytes; else its first 54 bytes + `_` + a digest of the whole name."""
    encoded = name.encode()
    if len(encoded) <= MAX_IDENTIFIER_BYTES:
        return name
    head = encoded[: MAX_IDENTIFIER_BYTES - 9].decode(errors="ignore")
    return f"{head}_{_digest(name)}"


@lru_cache(maxsize=65536)
def column_name(prefix: str, key: str) -> str:
    """The column of `key` inside the object whose columns start with `prefix` (empty at the root)."""
    part = snake_case(key) or "_" + _digest(key)
    return fit_identifier(f"{prefix}_{part}" if prefix else part)


@lru_cache(maxsize=16384)
def event_table_name(event: str) -> str:
    """The table of a track event: its name in snake_case (`Order Completed` → `order_completed`)."""
    name = snake_case(event)
    if not name:
        return "event_" + _digest(event)
    if name in FIXED_TABLES:
        return "_" + name
    return fit_identifier(name)


# -- values and types ---------------------------------------------------------------------------------------------

# RFC 3339 date-times (ISO-8601 with a time and a zone): the only strings typed as timestamps.
_DATETIME = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d{1,9})?)?([Zz]|[+-]\d\d(:?\d\d)?)")


def parse_timestamp(text: str) -> datetime | None:
    """An aware datetime for an ISO-8601 date-time string (zone-less ones read as UTC), else None."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def is_timestamp_text(text: str) -> bool:
    return _DATETIME.fullmatch(text) is not None and parse_timestamp(text) is not None


def infer_type(value: Any) -> ColumnType:
    """The type a new column takes from its first non-null value (see the module docstring)."""
    kind = type(value)
    if kind is bool:
        return ColumnType.BOOLEAN
    if kind is int:
        return ColumnType.BIGINT if BIGINT_MIN <= value <= BIGINT_MAX else ColumnType.TEXT
    if kind is float:
        return ColumnType.DOUBLE
    if kind is str and is_timestamp_text(value):
        return ColumnType.TIMESTAMP
    return ColumnType.TEXT


def to_text(value: Any) -> str:
    """A scalar as text (ids, names): strings as they are, numbers and booleans as JSON writes them."""
    if type(value) is str:
        return value
    return orjson.dumps(value, default=str).decode().strip('"')


# -- events to rows -----------------------------------------------------------------------------------------------


@dataclass
class TableRows:
    """One table's rows from a batch. `fixed` are the columns its CREATE TABLE makes; `columns` every column some
    row has a non-null value for (fixed ones included).

    An event's table shares its call columns (ids, timestamps, context, `event`) with `tracks`, value for value:
    its `rows[i]` holds only the event's properties, and `base.rows[base_positions[i]]` (a `tracks` row) the rest.
    The two never share a column (properties never take a call column: they are reserved), so nothing is copied,
    and the loader builds the shared columns' values once for both tables."""

    table: str
    fixed: Mapping[str, ColumnType]
    rows: list[JsonObject] = field(default_factory=list)
    base: TableRows | None = None
    base_positions: list[int] = field(default_factory=list)

    @cached_property
    def own_columns(self) -> set[str]:
        return set().union(*self.rows)

    @cached_property
    def base_rows(self) -> list[JsonObject]:
        """The `tracks` row of each row (empty for a table without a base)."""
        if self.base is None:
            return []
        base_rows = self.base.rows
        return [base_rows[position] for position in self.base_positions]

    @cached_property
    def columns(self) -> set[str]:
        """Every column some row has a value for (read once all rows are added)."""
        if self.base is None:
            return self.own_columns
        if len(self.base_positions) == len(self.base.rows):  # every tracks row is this event's
            return self.own_columns | self.base.columns
        return self.own_columns | set().union(*self.base_rows)

    def holder_rows(self, column: str) -> list[JsonObject]:
        """The dicts that hold `column`'s values, one a row, in row order (`.get(column)` on each)."""
        return self.rows if self.base is None or column in self.own_columns else self.base_rows

    def row(self, index: int) -> JsonObject:
        """Row `index` whole (for inspection: the loader reads columns)."""
        own = self.rows[index]
        return own if self.base is None else self.base_rows[index] | own

    def first_values(self, columns: Sequence[str]) -> dict[str, object]:
        """The first non-null value of each of `columns`, in row order (what a new column's type is taken from)."""
        found: dict[str, object] = {}
        for column in columns:
            for row in self.holder_rows(column):
                value = row.get(column)
                if value is not None:
                    found[column] = value
                    break
        return found


@dataclass
class BatchPlan:
    """Rows per table for one batch, in first-appearance order; `users` is upserted, the others inserted."""

    tables: dict[str, TableRows] = field(default_factory=dict)
    # Properties/traits dropped for a reserved column name, and events of no known type.
    discarded: int = 0
    skipped_events: int = 0

    def table(self, name: str, fixed: Mapping[str, ColumnType]) -> TableRows:
        rows = self.tables.get(name)
        if rows is None:
            rows = self.tables[name] = TableRows(name, fixed)
        return rows


# prefix → key → column name: the lookups `column_name` would repeat for every event, as plain dict hits. Bounded:
# an unbounded property space must not grow memory without end.
_names_by_prefix: dict[str, dict[str, str]] = {}
_MAX_CACHED_PREFIXES = 4096
_MAX_CACHED_NAMES = 4096


def _names_under(prefix: str) -> dict[str, str]:
    names = _names_by_prefix.get(prefix)
    if names is None:
        if len(_names_by_prefix) >= _MAX_CACHED_PREFIXES:
            _names_by_prefix.clear()
        names = _names_by_prefix[prefix] = {}
    return names


def _flatten(
    out: JsonObject, obj: Mapping[str, Any], prefix: str, depth: int, reserved: frozenset[str] | None = None
) -> int:
    """Adds `obj`'s non-null leaves to `out` under their column names; with `reserved`, leaves whose column is
    reserved (or a `context_` one) are left out and counted (the return value)."""
    names = _names_under(prefix)
    discarded = 0
    for key, value in obj.items():
        if value is None:
            continue
        name = names.get(key)
        if name is None:
            if len(names) >= _MAX_CACHED_NAMES:
                names.clear()
            name = names[key] = column_name(prefix, key)
        if type(value) is dict and depth < MAX_FLATTEN_DEPTH:
            discarded += _flatten(out, value, name, depth + 1, reserved)
        elif reserved is not None and (name in reserved or name.startswith("context_")):
            discarded += 1
        else:
            out[name] = value
    return discarded


def _flatten_custom(out: JsonObject, obj: object, reserved: frozenset[str]) -> int:
    """Properties or traits into `out`, never over a reserved column: returns how many were discarded."""
    if type(obj) is not dict:
        return 0
    return _flatten(out, obj, "", 1, reserved)


def _text_id(value: object) -> str | None:
    """Ids as text (Segment accepts numeric userIds)."""
    if value is None or value == "":
        return None
    return value if type(value) is str else to_text(value)


def _call_row(event: Mapping[str, Any], message_id: str) -> JsonObject:
    """The columns every table of calls has, from one event (null values left out)."""
    row: JsonObject = {"id": message_id}
    for field_name, column in _CALL_FIELDS:
        value = event.get(field_name)
        if value is not None:
            row[column] = value
    for field_name, column in _ID_FIELDS:
        value = event.get(field_name)
        if value is not None and value != "":
            row[column] = value if type(value) is str else to_text(value)
    context = event.get("context")
    if type(context) is dict:
        _flatten(row, context, "context", 1)
    return row


_CALL_FIELDS = (
    ("receivedAt", "received_at"),
    ("sentAt", "sent_at"),
    ("originalTimestamp", "original_timestamp"),
    ("timestamp", "timestamp"),
)
_ID_FIELDS = (("userId", "user_id"), ("anonymousId", "anonymous_id"))


@dataclass
class _UserState:
    newest: datetime | None
    row: JsonObject


def _newer_or_equal(candidate: datetime | None, current: datetime | None) -> bool:
    return current is None or (candidate is not None and candidate >= current)


def _add_user(users: dict[str, _UserState], event: Mapping[str, Any], traits: JsonObject) -> None:
    """Folds an identify with a userId into its user's row: newest timestamp wins per trait, older calls only fill
    traits the newer ones left null (the same rule as the loader's upsert, so the order of batches does not matter)."""
    user_id = _text_id(event.get("userId"))
    if user_id is None:
        return
    raw_time = event.get("timestamp") or event.get("receivedAt")
    when = parse_timestamp(raw_time) if type(raw_time) is str else None
    row: JsonObject = {"id": user_id, "received_at": event.get("receivedAt"), "timestamp": raw_time, **traits}
    row = {name: value for name, value in row.items() if value is not None}
    state = users.get(user_id)
    if state is None:
        users[user_id] = _UserState(when, row)
    elif _newer_or_equal(when, state.newest):
        state.row.update(row)
        state.newest = when
    else:
        for name, value in row.items():
            state.row.setdefault(name, value)


def plan_batch(events: Sequence[Mapping[str, Any]], message_ids: Sequence[str]) -> BatchPlan:
    """Rows per table for a batch of Segment-Spec events; `message_ids[i]` is event i's `id`."""
    plan = BatchPlan()
    users: dict[str, _UserState] = {}
    for event, message_id in zip(events, message_ids, strict=True):
        call_type = event.get("type")
        row = _call_row(event, message_id)
        if call_type == "track":
            raw_name = event.get("event")
            event_text: str = "" if raw_name is None else to_text(raw_name)
            table = event_table_name(event_text)
            row["event"] = table
            row["event_text"] = event_text
            tracks = plan.table("tracks", TRACK_COLUMNS)
            tracks.rows.append(row)
            event_rows = plan.table(table, TRACK_COLUMNS)
            event_rows.base = tracks
            event_rows.base_positions.append(len(tracks.rows) - 1)
            properties: JsonObject = {}
            plan.discarded += _flatten_custom(properties, event.get("properties"), _TRACK_RESERVED)
            event_rows.rows.append(properties)
        elif call_type == "page" or call_type == "screen":
            page_properties = event.get("properties")
            name = event.get("name") or (page_properties.get("name") if type(page_properties) is dict else None)
            if name is not None:
                row["name"] = to_text(name)
            plan.discarded += _flatten_custom(row, page_properties, _PAGE_RESERVED)
            plan.table(call_type + "s", PAGE_COLUMNS).rows.append(row)
        elif call_type == "identify":
            traits: JsonObject = {}
            plan.discarded += _flatten_custom(traits, event.get("traits"), _TRAIT_RESERVED)
            row.update(traits)
            plan.table("identifies", CALL_COLUMNS).rows.append(row)
            _add_user(users, event, traits)
        elif call_type == "group":
            group_id = _text_id(event.get("groupId"))
            if group_id is not None:
                row["group_id"] = group_id
            plan.discarded += _flatten_custom(row, event.get("traits"), _GROUP_RESERVED)
            plan.table("groups", GROUP_COLUMNS).rows.append(row)
        elif call_type == "alias":
            previous_id = _text_id(event.get("previousId"))
            if previous_id is not None:
                row["previous_id"] = previous_id
            plan.table("aliases", ALIAS_COLUMNS).rows.append(row)
        else:
            plan.skipped_events += 1
    if users:
        user_rows = plan.table("users", USER_COLUMNS)
        for state in users.values():
            user_rows.rows.append(state.row)
    return plan
