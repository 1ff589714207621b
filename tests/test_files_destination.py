"""The `files` destination on a real filesystem: one file per UTC day, contents equal to the events,
redelivery overwriting, atomic replacement, and the errors the delivery worker acts on."""

from __future__ import annotations

import array
import asyncio
import errno
import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from tributary._proto.cdp.v1 import admin_pb2, destination_pb2, event_pb2, ingest_pb2

from cdp_server import _core
from cdp_server.destinations import files
from cdp_server.destinations.base import Batch, ConfigError, PermanentError, RetryableError
from cdp_server.destinations.files import FilesDestination, FilesKind

REPO = Path(__file__).resolve().parent.parent


def event(number: int, timestamp: str | None, **fields: Any) -> dict[str, Any]:
    """A Segment track event as the engine encodes it."""
    made: dict[str, Any] = {
        "messageId": f"msg-{number}",
        "type": "track",
        "event": "Order Completed",
        "userId": f"user-{number % 3}",
        "anonymousId": f"anon-{number}",
        "properties": {"revenue": 10.5 + number, "currency": "EUR", "products": [{"sku": "a"}, {"sku": "b"}]},
        "context": {"ip": "203.0.113.9", "library": {"name": "analytics.js", "version": "4.1.0"}},
        "integrations": {},
        "receivedAt": "2024-05-03T08:00:00.250Z",
        "sentAt": "2024-05-01T10:00:00.100Z",
    }
    if timestamp is not None:
        made["timestamp"] = timestamp
    made.update(fields)
    return made


def batch_of(events: list[dict[str, Any]]) -> Batch:
    return Batch("files-test", orjson.dumps(events), [e["messageId"] for e in events])


def destination(directory: Path, file_format: str = "jsonl") -> FilesDestination:
    kind = FilesKind()
    return kind.create("files-test", kind.validate({"directory": str(directory), "format": file_format}))


def deliver(target: FilesDestination, batch: Batch) -> None:
    asyncio.run(target.deliver(batch))


def files_under(directory: Path) -> list[str]:
    """Every file (hidden ones too) under `directory`, relative, sorted."""
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())


# Two UTC days: 1 May, and 2 May (a time whose offset puts it on the next UTC day; an event without
# a timestamp, filed by its receivedAt on 3 May).
SPANNING_EVENTS = [
    event(1, "2024-05-01T09:15:00.123Z"),
    event(2, "2024-05-01T23:30:00-02:00"),  # 2024-05-02T01:30Z
    event(3, "2024-05-01T23:59:59.999Z", properties={"text": 'quotes " and },{ braces', "emoji": "🦫"}),
    event(4, None),
]


def test_jsonl_writes_one_file_per_utc_day_holding_exactly_its_events(tmp_path: Path) -> None:
    batch = batch_of(SPANNING_EVENTS)
    deliver(destination(tmp_path / "out"), batch)

    stem = f"events-{batch.delivery_id}.jsonl"
    assert files_under(tmp_path / "out") == [f"2024-05-01/{stem}", f"2024-05-02/{stem}", f"2024-05-03/{stem}"]
    by_day = {
        day: [json.loads(line) for line in (tmp_path / "out" / day / stem).read_text().splitlines()]
        for day in ("2024-05-01", "2024-05-02", "2024-05-03")
    }
    e1, e2, e3, e4 = SPANNING_EVENTS
    assert by_day == {"2024-05-01": [e1, e3], "2024-05-02": [e2], "2024-05-03": [e4]}


def test_parquet_writes_typed_columns_per_day_and_json_text_for_free_form_objects(tmp_path: Path) -> None:
    with_extra = event(5, "2024-05-02T12:00:00Z", userId=12345, version=2, traits={"plan": "pro"})
    batch = batch_of([*SPANNING_EVENTS, with_extra])
    deliver(destination(tmp_path, "parquet"), batch)

    stem = f"events-{batch.delivery_id}.parquet"
    assert files_under(tmp_path) == [f"2024-05-01/{stem}", f"2024-05-02/{stem}", f"2024-05-03/{stem}"]
    table = pq.read_table(tmp_path / "2024-05-02" / stem)
    assert table.schema == files.parquet_schema()
    assert pq.ParquetFile(tmp_path / "2024-05-02" / stem).metadata.row_group(0).column(0).compression == "ZSTD"
    rows = table.to_pylist()
    assert [row["message_id"] for row in rows] == ["msg-2", "msg-5"]
    second, fifth = rows
    assert second["timestamp"] == datetime(2024, 5, 2, 1, 30, tzinfo=UTC)
    assert second["received_at"] == datetime(2024, 5, 3, 8, 0, 0, 250_000, tzinfo=UTC)
    assert second["sent_at"] == datetime(2024, 5, 1, 10, 0, 0, 100_000, tzinfo=UTC)
    assert second["original_timestamp"] is None
    assert (second["type"], second["event"], second["user_id"]) == ("track", "Order Completed", "user-2")
    assert json.loads(second["properties"]) == SPANNING_EVENTS[1]["properties"]
    assert json.loads(second["context"]) == SPANNING_EVENTS[1]["context"]
    assert second["traits"] is None and second["extra"] is None
    # A numeric userId is kept as its JSON; keys without a column are kept in `extra`.
    assert fifth["user_id"] == "12345"
    assert json.loads(fifth["traits"]) == {"plan": "pro"}
    assert json.loads(fifth["extra"]) == {"version": 2}

    first_day = pq.read_table(tmp_path / "2024-05-01" / stem).to_pylist()
    assert [row["message_id"] for row in first_day] == ["msg-1", "msg-3"]
    assert json.loads(first_day[1]["properties"]) == SPANNING_EVENTS[2]["properties"]
    no_timestamp = pq.read_table(tmp_path / "2024-05-03" / stem).to_pylist()
    assert [(row["message_id"], row["timestamp"]) for row in no_timestamp] == [("msg-4", None)]


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_a_redelivered_batch_overwrites_its_files_instead_of_duplicating_rows(tmp_path: Path, file_format: str) -> None:
    target = destination(tmp_path, file_format)
    batch = batch_of(SPANNING_EVENTS)
    deliver(target, batch)
    first = {name: (tmp_path / name).read_bytes() for name in files_under(tmp_path)}
    deliver(target, batch_of(SPANNING_EVENTS))  # the same events again, as a new Batch object

    assert {name: (tmp_path / name).read_bytes() for name in files_under(tmp_path)} == first
    # Other events make other files.
    deliver(target, batch_of([event(9, "2024-05-01T10:00:00Z")]))
    assert len(files_under(tmp_path / "2024-05-01")) == 2


def test_a_batch_of_one_named_by_an_unsafe_message_id_stays_inside_its_day(tmp_path: Path) -> None:
    hostile = event(1, "2024-05-01T10:00:00Z", messageId="../../escaped")
    deliver(destination(tmp_path / "out"), batch_of([hostile]))

    (written,) = files_under(tmp_path)
    assert written.startswith("out/2024-05-01/events-id_") and written.endswith(".jsonl")


def test_the_directory_and_its_missing_parents_are_created(tmp_path: Path) -> None:
    deliver(destination(tmp_path / "a" / "b"), batch_of(SPANNING_EVENTS[:1]))
    assert len(files_under(tmp_path / "a" / "b" / "2024-05-01")) == 1


def test_a_failure_inside_the_write_leaves_neither_a_final_nor_a_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash half-way through the payload: nothing under the final name, nothing left over."""

    def write_half_then_crash(descriptor: int, payload: bytes) -> None:
        os.write(descriptor, payload[: len(payload) // 2])
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(files, "_write_all", write_half_then_crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        deliver(destination(tmp_path), batch_of(SPANNING_EVENTS))
    assert files_under(tmp_path) == []


def test_a_failed_overwrite_keeps_the_earlier_whole_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = destination(tmp_path)
    batch = batch_of(SPANNING_EVENTS[:2])
    deliver(target, batch)
    before = {name: (tmp_path / name).read_bytes() for name in files_under(tmp_path)}

    real_fsync = os.fsync

    def fsync_failing_on_files(descriptor: int) -> None:
        if not os.path.isdir(f"/proc/self/fd/{descriptor}"):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(descriptor)

    monkeypatch.setattr(files.os, "fsync", fsync_failing_on_files)
    with pytest.raises(RetryableError) as raised:
        deliver(target, batch)
    assert "EIO" in raised.value.reason and str(tmp_path) in raised.value.reason
    assert {name: (tmp_path / name).read_bytes() for name in files_under(tmp_path)} == before


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        (errno.ENOSPC, RetryableError),
        (errno.EDQUOT, RetryableError),
        (errno.EIO, RetryableError),
        (errno.EACCES, PermanentError),
        (errno.EROFS, PermanentError),
    ],
)
def test_write_errors_become_retryable_or_permanent_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, error_class: type[Exception]
) -> None:
    def failing_write(descriptor: int, payload: bytes) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(files, "_write_all", failing_write)
    batch = batch_of(SPANNING_EVENTS[:1])
    with pytest.raises(error_class) as raised:
        deliver(destination(tmp_path), batch)
    assert f"{tmp_path}/2024-05-01/events-{batch.delivery_id}.jsonl" in str(raised.value)
    assert errno.errorcode[code] in str(raised.value)
    assert files_under(tmp_path) == []


def test_a_reader_sees_only_whole_files_while_batches_overwrite_them(tmp_path: Path) -> None:
    """Redeliveries of batches of different sizes under one name (a batch of one: its messageId):
    every read of the file finds one whole batch, never a prefix of one."""
    target = destination(tmp_path)
    path = tmp_path / "2024-05-01" / "events-msg-1.jsonl"
    small = batch_of([event(1, "2024-05-01T10:00:00Z")])
    large = batch_of([event(1, "2024-05-01T10:00:00Z", properties={"padding": "x" * 200_000})])
    whole_sizes = set()
    for batch in (small, large):
        target.write_batch(batch)
        whole_sizes.add(path.stat().st_size)

    stop = threading.Event()
    sizes_read: list[int] = []

    def read_repeatedly() -> None:
        while not stop.is_set():
            content = path.read_bytes()
            json.loads(content)  # a partial file would not parse
            sizes_read.append(len(content))

    reader = threading.Thread(target=read_repeatedly)
    reader.start()
    try:
        for round_number in range(60):
            target.write_batch(large if round_number % 2 else small)
    finally:
        stop.set()
        reader.join()
    assert sizes_read and set(sizes_read) <= whole_sizes
    assert files_under(tmp_path) == ["2024-05-01/events-msg-1.jsonl"]


def test_an_event_with_no_readable_time_is_refused_permanently(tmp_path: Path) -> None:
    undated = event(7, "yesterday", receivedAt=None)
    with pytest.raises(PermanentError, match="msg-7"):
        deliver(destination(tmp_path), batch_of([SPANNING_EVENTS[0], undated]))
    assert files_under(tmp_path) == []


@pytest.mark.parametrize(
    ("settings", "field", "message"),
    [
        ({}, "settings.directory", "required"),
        ({"directory": 42}, "settings.directory", "required"),
        ({"directory": "relative/path"}, "settings.directory", "absolute"),
        ({"directory": "{file}"}, "settings.directory", "not a directory"),
        ({"directory": "{dir}", "format": "csv"}, "settings.format", "jsonl, parquet"),
        ({"directory": "{dir}", "format": "parquet", "compression": "lzma"}, "settings.compression", "zstd"),
        ({"directory": "{dir}", "compression": "zstd"}, "settings.compression", "parquet"),
        ({"directory": "{dir}", "path": "/x"}, "settings.path", "unknown"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(
    tmp_path: Path, settings: dict[str, Any], field: str, message: str
) -> None:
    (tmp_path / "a-file").write_text("")
    placeholders = {"{file}": str(tmp_path / "a-file"), "{dir}": str(tmp_path)}
    settings = {key: placeholders.get(value, value) for key, value in settings.items()}
    with pytest.raises(ConfigError) as raised:
        FilesKind().validate(settings)
    assert raised.value.field == field
    assert message in raised.value.message


def test_settings_are_normalised_with_their_defaults(tmp_path: Path) -> None:
    kind = FilesKind()
    assert kind.validate({"directory": str(tmp_path)}) == {"directory": str(tmp_path), "format": "jsonl"}
    assert kind.validate({"directory": str(tmp_path), "format": "parquet"}) == {
        "directory": str(tmp_path),
        "format": "parquet",
        "compression": "zstd",
    }


# --- A directory the server may not write ------------------------------------------------------

DELIVER_AND_REPORT = """
import asyncio, json, sys
import orjson
from cdp_server.destinations.base import Batch, DeliveryError
from cdp_server.destinations.files import FilesKind

events = json.loads(sys.argv[2])
batch = Batch("files-test", orjson.dumps(events), [e["messageId"] for e in events])
kind = FilesKind()
target = kind.create("files-test", kind.validate({"directory": sys.argv[1]}))
try:
    asyncio.run(target.deliver(batch))
    print(json.dumps({"error": None}))
except DeliveryError as error:
    print(json.dumps({"error": type(error).__name__, "reason": error.reason}))
"""


# Root ignores file modes (CAP_DAC_OVERRIDE): as root, the deliverer runs without the capabilities that
# bypass them (setpriv, util-linux), so that a 0555 directory refuses it as it refuses any user.
WITHOUT_MODE_OVERRIDES = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


def test_a_directory_that_may_not_be_written_is_a_permanent_error_naming_it(tmp_path: Path) -> None:
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o555)
    events = [event(1, "2024-05-01T10:00:00Z")]
    command = [sys.executable, "-c", DELIVER_AND_REPORT, str(read_only), json.dumps(events)]
    if os.geteuid() == 0:
        command = WITHOUT_MODE_OVERRIDES + command
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False
    )
    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout)
    assert report["error"] == "PermanentError"
    assert "EACCES" in report["reason"] and str(read_only / "2024-05-01") in report["reason"]
    assert list(read_only.iterdir()) == []


def test_events_as_read_from_the_engine_are_filed_as_the_parsed_path_files_them(tmp_path: Path) -> None:
    """The worker's batches carry each event's offset and UTC day from the engine; JSON lines are then
    written without parsing. They must land in the same files with the same events as when parsed."""
    engine = _core.Engine(tmp_path / "data")
    try:
        source = admin_pb2.Source.FromString(engine.create_source("files", b"k" * 32)).id
        events = []
        for made in [*SPANNING_EVENTS, event(5, "1969-12-31T23:59:59Z")]:
            proto = event_pb2.Event(
                type=event_pb2.EVENT_TYPE_TRACK,
                message_id=made["messageId"],
                user_id=made["userId"],
                event=made["event"],
                properties=orjson.dumps(made["properties"]),
                context=orjson.dumps(made["context"]),
            )
            if made.get("timestamp"):
                proto.timestamp.FromDatetime(datetime.fromisoformat(made["timestamp"]))
            events.append(proto)
        request = ingest_pb2.SendRequest(batch=event_pb2.Batch(events=events))
        assert not engine.send(source, request.SerializeToString()).rejections
        definition = destination_pb2.Destination(
            name="files-test", kind="files", settings=b'{"directory": "/tmp"}', from_beginning=True
        )
        engine.create_destination(destination_pb2.CreateDestinationRequest(destination=definition).SerializeToString())
        read = engine.read_for_delivery("files-test", 0, wait_secs=0)
    finally:
        engine.close()
    as_read = Batch(
        "files-test", read.raw, read.message_ids, starts=array.array("I", read.starts), days=array.array("i", read.days)
    )
    parsed = Batch("files-test", read.raw, read.message_ids)
    deliver(destination(tmp_path / "as-read"), as_read)
    deliver(destination(tmp_path / "parsed"), parsed)
    names = files_under(tmp_path / "parsed")
    assert files_under(tmp_path / "as-read") == names
    # 1969 (before the epoch), 1 and 2 May; the event without a timestamp on the day it arrived.
    assert {name.split("/")[0] for name in names} >= {"1969-12-31", "2024-05-01", "2024-05-02"}
    assert len(names) == 4
    for name in names:
        lines = [json.loads(line) for line in (tmp_path / "as-read" / name).read_text().splitlines()]
        assert lines == [json.loads(line) for line in (tmp_path / "parsed" / name).read_text().splitlines()]
