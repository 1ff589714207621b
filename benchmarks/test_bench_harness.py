"""Checks of the benchmark harness itself, plus micro benchmarks of the costs baseline (c) pays.

Run with ``pytest benchmarks`` (quick: benchmarks are disabled by the project's addopts) or
``pytest benchmarks --benchmark-enable`` to time the micro benchmarks.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest
from tributary import event_from_json
from tributary._proto.cdp.v1 import event_pb2, ingest_pb2

from benchmarks import workload
from benchmarks.empty_server import sequence_of
from benchmarks.measurement import percentile
from benchmarks.startup import STARTS, StartupSettings, measure_startup
from benchmarks.systems import StreamSettings, measure_empty_grpc, measure_python_pipeline, measure_tributary
from benchmarks.user_paths import measure_cdp_import, measure_client_stream

CDP = Path(sys.executable).with_name("cdp")

SMALL = 1_200  # two full batches and a short one


@pytest.fixture(scope="module")
def small() -> workload.Workload:
    return workload.generate(SMALL, seed=7)


def test_workload_is_deterministic_for_a_seed(small: workload.Workload) -> None:
    again = workload.generate(SMALL, seed=7)
    assert again.batches == small.batches
    assert workload.generate(SMALL, seed=8).batches != small.batches


def test_workload_batches_are_numbered_and_hold_every_event(small: workload.Workload) -> None:
    requests = [ingest_pb2.StreamRequest.FromString(raw) for raw in small.batches]
    assert [r.sequence for r in requests] == [1, 2, 3]
    assert [len(r.batch.events) for r in requests] == [500, 500, 200]
    events = [ev for r in requests for ev in r.batch.events]
    assert [ev.SerializeToString() for ev in events] == small.events
    assert [ev.message_id.encode() for ev in events] == small.message_ids
    assert len(set(small.message_ids)) == SMALL
    assert all(ev.user_id or ev.anonymous_id for ev in events)
    assert all(ev.original_timestamp.seconds and ev.context for ev in events)


def test_workload_mix_looks_like_segment_traffic(small: workload.Workload) -> None:
    types = [event_pb2.Event.FromString(raw).type for raw in small.events]
    assert 0.75 < types.count(event_pb2.EVENT_TYPE_TRACK) / SMALL < 0.85
    assert types.count(event_pb2.EVENT_TYPE_IDENTIFY) > 0
    assert types.count(event_pb2.EVENT_TYPE_PAGE) > 0
    assert 250 < small.mean_event_bytes < 350


def test_workload_cache_round_trips(small: workload.Workload, tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    workload.save(small, path)
    assert workload.load_batches(path) == small.batches


@pytest.mark.parametrize("sequence", [1, 127, 128, 300, 2**32 + 5, 2**64 - 1])
def test_sequence_is_read_without_decoding_the_batch(sequence: int) -> None:
    raw = ingest_pb2.StreamRequest(sequence=sequence, batch=event_pb2.Batch()).SerializeToString()
    assert sequence_of(raw) == sequence


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([], 50) == 0.0


@pytest.fixture(scope="module")
def settings(small: workload.Workload, tmp_path_factory: pytest.TempPathFactory) -> StreamSettings:
    path = tmp_path_factory.mktemp("workload") / "w.bin"
    workload.save(small, path)
    return StreamSettings(path, SMALL, window=4, timeout_s=30, tmp_root=None, cdp=Path("/nonexistent"))


def test_empty_server_acknowledges_every_batch(settings: StreamSettings) -> None:
    assert measure_empty_grpc(settings).details["batches"] == 3


def test_python_pipeline_accepts_every_event(settings: StreamSettings) -> None:
    assert measure_python_pipeline(settings).details["accepted"] == SMALL


def test_segment_messages_are_the_same_events_with_their_batch_sent_at(small: workload.Workload) -> None:
    messages = list(workload.segment_messages(small.batches))
    assert len(messages) == SMALL
    expected = []
    for raw in small.batches:
        request = ingest_pb2.StreamRequest.FromString(raw)
        for event in request.batch.events:
            event.sent_at.CopyFrom(request.batch.sent_at)
            expected.append(event.SerializeToString())
    # What the Python reading of the Spec makes of each message is the protobuf event, byte for byte.
    assert [event_from_json(message).SerializeToString() for message in messages] == expected


def test_json_lines_file_holds_the_messages_and_is_cached(small: workload.Workload, tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    workload.save(small, path)
    lines = workload.json_lines(path)
    assert lines == workload.json_lines_path(path)
    assert workload.read_json_lines(lines) == list(workload.segment_messages(small.batches))
    written = lines.stat().st_mtime_ns
    assert workload.json_lines(path).stat().st_mtime_ns == written  # not written again


@pytest.fixture(scope="module")
def real_settings(settings: StreamSettings) -> StreamSettings:
    return dataclasses.replace(settings, cdp=CDP)


def test_tributary_run_keeps_every_ack_latency_and_samples_the_server_memory(real_settings: StreamSettings) -> None:
    run = measure_tributary(real_settings)
    assert run.details["accepted"] == SMALL
    assert len(run.details["ack_samples_ms"]) == 3
    rss = run.details["rss"]
    assert (rss[0][0], rss[-1][0]) == (0, SMALL)
    assert all(resident > 0 for _, resident in rss)
    assert run.details["profile"]["error"] == "profiling off"


def test_client_stream_of_dicts_stores_exactly_the_workload(real_settings: StreamSettings) -> None:
    json_lines = workload.json_lines(real_settings.workload_path)
    run = measure_client_stream(real_settings, json_lines)
    assert (run.key, run.events, run.details["accepted"]) == ("dicts", SMALL, SMALL)
    assert run.details["window"] >= 1 and run.details["batch_size"] >= 1


def test_cdp_import_stores_exactly_the_workload_and_subtracts_its_start_up(real_settings: StreamSettings) -> None:
    json_lines = workload.json_lines(real_settings.workload_path)
    own, wall = measure_cdp_import(real_settings, json_lines, startup_runs=1)
    assert own.details["stored"] == SMALL
    # The import's own time is the wall time less the start-up of an empty import, kept positive: on a workload this
    # small the two are close, and the median start-up can be the larger.
    assert own.seconds == pytest.approx(max(wall.seconds - own.details["startup_s"], 1e-6), abs=1e-3)
    assert (own.key, wall.key) == ("import", "import-wall")


def test_startup_is_timed_for_every_size_and_kind_of_start(small: workload.Workload) -> None:
    settings = StartupSettings(sizes=[500, 1_200], cdp=CDP, tmp_root=None, profiler=None)
    found = measure_startup(small.batches, settings, settle=lambda: None)
    assert found["sizes"] == [500, 1_200]
    assert all(len(found["seconds"][start]) == 2 for start in STARTS)
    assert found["extrapolated_s"] is not None and found["disk_bytes"][1] >= found["disk_bytes"][0] > 0


def test_bench_decode_batch(benchmark: Any, small: workload.Workload) -> None:
    request = benchmark(ingest_pb2.StreamRequest.FromString, small.batches[0])
    assert len(request.batch.events) == workload.BATCH_SIZE


def test_bench_reencode_events(benchmark: Any, small: workload.Workload) -> None:
    events = list(ingest_pb2.StreamRequest.FromString(small.batches[0]).batch.events)
    encoded = benchmark(lambda: [ev.SerializeToString() for ev in events])
    assert encoded == small.events[: workload.BATCH_SIZE]
