"""The `files` destination kind: a batch's events as JSONL or Parquet files, one file per UTC day.

Layout: `<directory>/<YYYY-MM-DD>/events-<delivery id>.<jsonl|parquet>`, the day being the event's
`timestamp` in UTC, else its `receivedAt`. A batch writes one file for each day it holds, named by
the batch's `delivery_id` (the same for every retry and redelivery of the same events): a retried
batch overwrites its own files, so rows are never duplicated on disk.

Every file is written atomically: into a hidden temp file in the same directory (`.events-…tmp`,
which a reader's `events-*` glob skips), flushed and fsynced, renamed over the final name
(`os.replace`, atomic within one filesystem), then the directory is fsynced so that the rename
itself survives a power cut. A reader sees the whole file or no file.

JSONL lines are the events re-encoded by orjson rather than slices of `batch.raw`: cutting the
array safely needs a JSON scanner (`},{` occurs inside strings and in nested arrays of objects),
and the events are decoded anyway for their days; re-encoding costs ~1.6 µs an event where the
decode costs ~6 µs, so slicing would save little.

Parquet: typed columns for the fields events share; `properties`, `traits`, `context`,
`integrations` (and any other top-level key, together in `extra`) as JSON text, because their
shape differs from event to event: a struct column would need one schema merged over a batch, and
two files of the same day would then disagree about it.

The blocking work (encoding, writing, fsync) runs in a worker thread, so that a slow disk never
stalls the delivery loop.
"""

from __future__ import annotations

import array
import asyncio
import errno
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from cdp_server.destinations.base import (
    NO_DAY,
    Batch,
    ConfigError,
    DeliveryError,
    JsonObject,
    PermanentError,
    RetryableError,
)

if TYPE_CHECKING:
    import pyarrow

FORMATS: Final = ("jsonl", "parquet")
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC).date()
# "none" writes uncompressed pages; the others are the codecs pyarrow builds with.
PARQUET_COMPRESSIONS: Final = ("zstd", "snappy", "gzip", "brotli", "lz4", "none")
DEFAULT_PARQUET_COMPRESSION: Final = "zstd"

# A delivery id made of these is used as it is in a file name; any other (a batch of one is named
# by its messageId, which the sending client chose) is replaced by its digest, so that no id can
# reach outside its day's directory or make a hidden or over-long name.
_SAFE_FILE_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

# Errors that another attempt may not meet: a full disk or quota, a failing device, a busy or
# exhausted system. Errors about the path itself (permissions, a read-only mount, a file where a
# directory should be) stay until someone changes the setup. Any other error is taken as
# retryable: the worker's retries are bounded, and dead-lettering on an error nobody foresaw
# would lose the events sooner than needed.
_PERMANENT_ERRNOS: Final = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP}
)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)


@dataclass(frozen=True)
class FilesSettings:
    directory: Path
    format: str
    compression: str | None  # Parquet only


class FilesKind:
    """Settings: `directory` (absolute; created when missing), `format` (`jsonl` or `parquet`),
    `compression` (Parquet only: one of PARQUET_COMPRESSIONS, default zstd)."""

    name = "files"

    def validate(self, settings: Mapping[str, Any]) -> JsonObject:
        parsed = _parse_settings(settings)
        normalised: JsonObject = {"directory": str(parsed.directory), "format": parsed.format}
        if parsed.compression is not None:
            normalised["compression"] = parsed.compression
        return normalised

    def create(self, name: str, settings: Mapping[str, Any]) -> FilesDestination:
        return FilesDestination(name, _parse_settings(settings))


def _parse_settings(settings: Mapping[str, Any]) -> FilesSettings:
    unknown = sorted(set(settings) - {"directory", "format", "compression"})
    if unknown:
        raise ConfigError(f"settings.{unknown[0]}", "unknown setting (expected directory, format, compression)")

    directory = settings.get("directory")
    if not isinstance(directory, str) or not directory:
        raise ConfigError("settings.directory", "required: an absolute path")
    if "\x00" in directory:
        raise ConfigError("settings.directory", "must not contain a NUL character")
    path = Path(directory)
    if not path.is_absolute():
        raise ConfigError("settings.directory", f"must be an absolute path, got {directory!r}")
    # Refused now rather than at the first delivery: a file in the way is a mistake in the
    # settings, not a delivery failure. A missing directory is created when first written to.
    if path.exists() and not path.is_dir():
        raise ConfigError("settings.directory", f"{directory} exists and is not a directory")

    file_format = settings.get("format", "jsonl")
    if file_format not in FORMATS:
        raise ConfigError("settings.format", f"must be one of {', '.join(FORMATS)}, got {file_format!r}")

    compression = settings.get("compression")
    if file_format == "jsonl":
        if compression is not None:
            raise ConfigError("settings.compression", "applies to the parquet format only")
    else:
        compression = DEFAULT_PARQUET_COMPRESSION if compression is None else compression
        if compression not in PARQUET_COMPRESSIONS:
            choices = ", ".join(PARQUET_COMPRESSIONS)
            raise ConfigError("settings.compression", f"must be one of {choices}, got {compression!r}")
    return FilesSettings(path, file_format, compression)


class FilesDestination:
    """Writes each batch as one file for each UTC day of its events (see the module docstring)."""

    def __init__(self, name: str, settings: FilesSettings) -> None:
        self.name = name
        self.settings = settings

    async def deliver(self, batch: Batch) -> None:
        await asyncio.to_thread(self.write_batch, batch)

    async def close(self) -> None:
        """Nothing stays open between batches."""

    def write_batch(self, batch: Batch) -> list[Path]:
        """Writes the batch's files (blocking) and returns their paths, one per day."""
        if len(batch) == 0:
            return []
        if self.settings.format == "jsonl" and batch.days is not None and batch.starts is not None:
            return self._write_jsonl_as_read(batch, batch.days)
        events = batch.events
        timestamps = [_utc_instant(event.get("timestamp")) for event in events]
        received = [_utc_instant(event.get("receivedAt")) for event in events]
        rows_by_day: dict[str, list[int]] = {}
        for row, (timestamp, received_at) in enumerate(zip(timestamps, received, strict=True)):
            instant = timestamp or received_at
            if instant is None:
                raise PermanentError(
                    f"event {batch.message_ids[row]!r} has neither a timestamp nor a receivedAt "
                    "in ISO-8601: it has no day to be filed under"
                )
            rows_by_day.setdefault(instant.date().isoformat(), []).append(row)

        stem = "events-" + _file_stem(batch.delivery_id)
        written = []
        for day, rows in rows_by_day.items():
            path = self.settings.directory / day / f"{stem}.{self.settings.format}"
            if self.settings.format == "jsonl":
                payload = b"".join(orjson.dumps(events[row], option=orjson.OPT_APPEND_NEWLINE) for row in rows)
            else:
                assert self.settings.compression is not None
                payload = _parquet_bytes(batch, rows, timestamps, received, self.settings.compression)
            _write_atomically(path, payload)
            written.append(path)
        return written

    def _write_jsonl_as_read(self, batch: Batch, days: array.array[int]) -> list[Path]:
        """JSON lines of events as read from the log: each event's JSON as it is, filed by the day
        the engine gave it (no event is parsed)."""
        rows_by_day: dict[int, list[int]] = {}
        for row, day in enumerate(days):
            if day == NO_DAY:
                raise PermanentError(
                    f"event {batch.message_ids[row]!r} has neither a timestamp nor a receivedAt: "
                    "it has no day to be filed under"
                )
            rows_by_day.setdefault(day, []).append(row)
        stem = "events-" + _file_stem(batch.delivery_id)
        written = []
        for day, rows in rows_by_day.items():
            path = self.settings.directory / (EPOCH + timedelta(days=day)).isoformat() / f"{stem}.jsonl"
            _write_atomically(path, b"".join(batch.event_json(row) + b"\n" for row in rows))
            written.append(path)
        return written


def _file_stem(delivery_id: str) -> str:
    if _SAFE_FILE_STEM.fullmatch(delivery_id):
        return delivery_id
    return "id_" + hashlib.blake2b(delivery_id.encode(), digest_size=16).hexdigest()


def _utc_instant(value: Any) -> datetime | None:
    """An ISO-8601 time as an aware UTC datetime (a time without an offset is taken as UTC);
    None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# --- Atomic writes -------------------------------------------------------------------------------


def _write_atomically(path: Path, payload: bytes) -> None:
    """`path` holds exactly `payload` afterwards, or is as it was (see the module docstring)."""
    directory = path.parent
    try:
        _make_directory(directory)
    except OSError as error:
        raise _delivery_error(error, directory) from error
    # A fresh name per attempt: two attempts at the same batch (a retry racing a slow first try)
    # never write into one temp file.
    temp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            _write_all(descriptor, payload)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temp, path)
    except BaseException as error:
        temp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _delivery_error(error, path) from error
        raise
    try:
        _fsync_directory(directory)
    except OSError as error:
        raise _delivery_error(error, directory) from error


def _write_all(descriptor: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        view = view[os.write(descriptor, view) :]


def _make_directory(directory: Path) -> None:
    """Creates `directory` and any missing parent, fsyncing each parent it adds an entry to (a
    new day's directory must survive a power cut as much as the file in it)."""
    if directory.is_dir():
        return
    missing = [directory, *(parent for parent in directory.parents if not parent.exists())]
    for created in reversed(missing):
        try:
            created.mkdir()
        except FileExistsError:
            if not created.is_dir():
                raise
            continue
        _fsync_directory(created.parent)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _delivery_error(error: OSError, path: Path) -> DeliveryError:
    """The worker's error for a failed filesystem call on `path`, naming the path and errno."""
    code = errno.errorcode.get(error.errno or 0, "unknown error")
    reason = f"{error.strerror or error} ({code}): {error.filename or path}"
    if error.errno in _PERMANENT_ERRNOS:
        return PermanentError(reason)
    return RetryableError(reason)


# --- Parquet -------------------------------------------------------------------------------------

# (column, event key): text columns; a non-text value (a numeric userId) is kept as its JSON.
_TEXT_COLUMNS: Final = (
    ("type", "type"),
    ("event", "event"),
    ("name", "name"),
    ("user_id", "userId"),
    ("anonymous_id", "anonymousId"),
    ("group_id", "groupId"),
    ("previous_id", "previousId"),
)
# Times other than timestamp and receivedAt (which the day was computed from, once).
_OTHER_TIME_COLUMNS: Final = (("sent_at", "sentAt"), ("original_timestamp", "originalTimestamp"))
# Objects whose keys differ from event to event: JSON text (see the module docstring).
_JSON_COLUMNS: Final = (
    ("properties", "properties"),
    ("traits", "traits"),
    ("context", "context"),
    ("integrations", "integrations"),
)
_KNOWN_KEYS: Final = frozenset(
    {"messageId", "timestamp", "receivedAt"}
    | {key for columns in (_TEXT_COLUMNS, _OTHER_TIME_COLUMNS, _JSON_COLUMNS) for _, key in columns}
)


def parquet_schema() -> pyarrow.Schema:
    """The one schema of every Parquet file this kind writes (a column of nulls keeps its type)."""
    import pyarrow as pa

    time_type = pa.timestamp("ms", tz="UTC")
    return pa.schema(
        [
            ("message_id", pa.string()),
            *((column, pa.string()) for column, _ in _TEXT_COLUMNS),
            ("timestamp", time_type),
            *((column, time_type) for column, _ in _OTHER_TIME_COLUMNS),
            ("received_at", time_type),
            *((column, pa.string()) for column, _ in _JSON_COLUMNS),
            ("extra", pa.string()),
        ]
    )


def _parquet_bytes(
    batch: Batch,
    rows: Sequence[int],
    timestamps: Sequence[datetime | None],
    received: Sequence[datetime | None],
    compression: str,
) -> bytes:
    """One Parquet file of the batch's `rows`, built a column at a time.

    pyarrow is imported here rather than with the module: a JSONL destination, and a server
    without Parquet destinations, never pay for loading it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    events = [batch.events[row] for row in rows]
    schema = parquet_schema()
    columns: dict[str, list[Any]] = {"message_id": [batch.message_ids[row] for row in rows]}
    for column, key in _TEXT_COLUMNS:
        columns[column] = [_text(event.get(key)) for event in events]
    columns["timestamp"] = [_epoch_ms(timestamps[row]) for row in rows]
    for column, key in _OTHER_TIME_COLUMNS:
        columns[column] = [_epoch_ms(_utc_instant(event.get(key))) for event in events]
    columns["received_at"] = [_epoch_ms(received[row]) for row in rows]
    for column, key in _JSON_COLUMNS:
        columns[column] = _json_texts(event.get(key) for event in events)
    columns["extra"] = _json_texts(_extra_keys(event) for event in events)

    table = pa.Table.from_pydict(
        {name: pa.array(values, type=schema.field(name).type) for name, values in columns.items()},
        schema=schema,
    )
    sink = pa.BufferOutputStream()
    # Into memory, then written by `_write_atomically`: every I/O error is then a plain OSError
    # with its errno, not whatever pyarrow wraps a file object's errors in.
    pq.write_table(table, sink, compression=compression)
    return bytes(sink.getvalue())


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _epoch_ms(instant: datetime | None) -> int | None:
    return None if instant is None else (instant - _EPOCH) // _MILLISECOND


def _json_texts(values: Iterable[Any]) -> list[bytes | None]:
    # Bytes are taken as they are by pa.array(type=string()): no decode per value.
    return [None if value is None else orjson.dumps(value) for value in values]


def _extra_keys(event: JsonObject) -> JsonObject | None:
    extra = {key: value for key, value in event.items() if key not in _KNOWN_KEYS}
    return extra or None


KIND = FilesKind()
