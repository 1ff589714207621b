"""Checks of the benchmark report: targets from a results document, the charts and the results
page written from small documents, and the profile readers on canned profiler output. No timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import charts
from benchmarks.profiling import available_profiler, parse_perf_script, parse_py_spy_raw, profiled, summarise
from benchmarks.report import memory_growth, targets
from benchmarks.results_page import write_page
from benchmarks.startup import extrapolate

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _run(key: str, events_per_s: float, **details: Any) -> dict[str, Any]:
    run: dict[str, Any] = {"key": key, "name": key, "events": 10_000, "events_per_s": events_per_s}
    run["seconds"] = 10_000 / events_per_s
    run["details"] = details
    if "ack_samples_ms" in details:
        samples = sorted(details["ack_samples_ms"])
        run["ack"] = {"p50_ms": samples[len(samples) // 2], "p99_ms": samples[-1], "max_ms": samples[-1]}
    return run


def _hot_path(role: str) -> dict[str, Any]:
    lines = [
        " tributary-write 100/101  2004008  7f01 mdb_page_alloc (/x/_core.abi3.so)",
        " tributary-write 100/101  2004008  ffffffff8226e227 fdatasync ([kernel.kallsyms])",
        " cdp 100/102  2004008  7f02 _PyEval_EvalFrameDefault (/usr/lib/libpython3.11.so.1.0)",
    ]
    samples = list(parse_perf_script(lines, {100: role}))
    hot = summarise(samples, tool="perf", seconds=1.0, command="perf record ...", context="python -m benchmarks.run")
    return {"tool": "perf", "error": None, "hot_path": hot.to_json()}


@pytest.fixture
def ingest_document() -> dict[str, Any]:
    rss = [[0, 30 << 20], [5_000, 31 << 20], [10_000, 32 << 20]]
    return {
        "benchmark": "ingest",
        "measured_at": "2026-12-01T00:00:00+00:00",
        "environment": {"cpus": 2, "platform": "test", "python": "3.11", "grpcio": "1"},
        "settings": {"events": 10_000, "seed": 1, "mean_event_bytes": 305.0, "quick": True},
        "names": {"a": "raw py-lmdb", "b": "empty", "c": "python", "real": "Tributary", "real-latency": "w4"},
        "runs": {
            "a": _run("a", 50_000),
            "b": _run("b", 1_000_000, ack_samples_ms=[1.0, 2.0]),
            "c": _run("c", 40_000, ack_samples_ms=[10.0, 20.0]),
            "real": _run(
                "real", 200_000, window=16, ack_samples_ms=[5.0, 9.0, 30.0], rss=rss, profile=_hot_path("server")
            ),
            "real-latency": _run("real-latency", 90_000, window=4, ack_samples_ms=[3.0, 4.0, 80.0]),
            "dicts": _run("dicts", 120_000, profile=_hot_path("client")),
            "import": _run("import", 60_000, profile={"tool": None, "error": "no profiler found", "hot_path": None}),
            "import-wall": _run("import-wall", 30_000),
        },
        "errors": {},
        "startup": {
            "sizes": [1_000, 3_000, 10_000],
            "disk_bytes": [1 << 20, 3 << 20, 10 << 20],
            "seconds": {
                "after preload": [0.2, 0.3, 0.5],
                "after SIGTERM": [0.2, 0.3, 0.5],
                "after kill -9": [0.2, 0.3, 0.6],
            },
            "extrapolated_s": 400.0,
            "target_events": 10_000_000,
            "target_s": 5.0,
            "profile": None,
        },
    }


@pytest.fixture
def unify_document() -> dict[str, Any]:
    return {
        "benchmark": "unify",
        "measured_at": "2026-12-01T00:00:00+00:00",
        "settings": {"quick": True},
        "details": {
            "a": {
                "people": 100,
                "events": 180,
                "identifiers": 250,
                "engine": {"seconds": 0.5},
                "networkx_s": 10.0,
                "duckdb": {"seconds": 2.0},
                "verified_sample": 2_000,
                "mismatch_count": 0,
                "profile": _hot_path("benchmark process"),
            }
        },
        "errors": {},
    }


def test_targets_are_ratios_against_raw_lmdb_of_the_same_run(ingest_document: dict[str, Any]) -> None:
    found = {(t.chart, t.run, t.stretch): t for t in targets(ingest_document)}
    assert (found["throughput", "real", False].value, found["throughput", "real", False].met) == (4.0, True)
    assert found["throughput", "real", True].met is False  # the 5x stretch
    assert found["throughput", "dicts", False].value == pytest.approx(2.4) and found["throughput", "dicts", False].met
    assert found["throughput", "import", False].value == pytest.approx(1.2)
    assert found["throughput", "import", False].met is False
    assert "50,000 events/s" in found["throughput", "import", False].measured
    assert (found["latency", "real-latency", False].value, found["latency", "real-latency", False].met) == (80.0, False)
    assert found["memory", "real", False].met is False  # ~210 B/event
    assert found["startup", "startup", False].met is False


def test_memory_growth_is_per_stored_event(ingest_document: dict[str, Any]) -> None:
    growth = memory_growth(ingest_document["runs"]["real"])
    assert growth is not None
    assert growth["bytes_per_event"] == pytest.approx((2 << 20) / 10_000)
    assert growth["marginal_bytes_per_event"] == pytest.approx((1 << 20) / 5_000)
    assert memory_growth(ingest_document["runs"]["a"]) is None


def test_startup_extrapolates_the_slower_restart_along_its_line() -> None:
    seconds = {"after preload": [9.0, 9.0], "after SIGTERM": [1.0, 2.0], "after kill -9": [1.0, 3.0]}
    assert extrapolate([1_000, 2_000], seconds, 3_000) == pytest.approx(5.0)
    assert extrapolate([1_000], {k: v[:1] for k, v in seconds.items()}, 3_000) is None


def test_results_page_and_its_charts_are_written_from_the_documents(
    tmp_path: Path, ingest_document: dict[str, Any], unify_document: dict[str, Any]
) -> None:
    (tmp_path / "ingest.json").write_text(json.dumps(ingest_document))
    (tmp_path / "unify.json").write_text(json.dumps(unify_document))
    page = write_page(tmp_path)
    assert page == tmp_path / "README.md"
    text = page.read_text()
    for chart in ("throughput", "ack_latency", "startup", "memory", "resolution"):
        png = tmp_path / f"{chart}.png"
        assert png.read_bytes().startswith(PNG_SIGNATURE), chart
        assert f"]({chart}.png)" in text
    assert "QUICK RUN" in text
    # Missed targets get their profile, met ones none.
    assert "Where the time goes: `cdp import`" in text and "No profile: no profiler found" in text
    assert "Where the time goes: the pre-encoded stream" not in text  # 4x: met
    assert "Where the time goes: `Client.stream(dicts)`" not in text  # 2.4x: met
    assert "Where the time goes: window 4" in text
    assert "Where the time goes: the engine's in-process ingest" in text  # 20x networkx but 4x DuckDB
    assert "`mdb_page_alloc`" in text and "Reproduce: while `python -m benchmarks.run` runs" in text
    assert "| 4.00 | 0.20 | 5.00 |" in text  # the real run's ratios to (a), (b), (c)


def test_the_memory_section_splits_the_engine_structures_by_part(
    tmp_path: Path, ingest_document: dict[str, Any], unify_document: dict[str, Any]
) -> None:
    parts = {"graph.nodes": 3_000, "graph.profiles": 7_000, "dedupe": 5_000, "index.id_cache": 1_000}
    ingest_document["memory_parts"] = {
        "events": 100,
        "rss_bytes_per_event": 250.0,
        "parts_bytes": parts,
        "parts_bytes_per_event": {name: size / 100 for name, size in parts.items()},
        "accounted_bytes_per_event": 160.0,
    }
    (tmp_path / "ingest.json").write_text(json.dumps(ingest_document))
    (tmp_path / "unify.json").write_text(json.dumps(unify_document))
    text = write_page(tmp_path).read_text()  # type: ignore[union-attr]
    assert "That process grew by **250 B per event**" in text and "account for 160 B per event" in text
    assert "| identity graph | 100.0 |" in text and "| dedupe window | 50.0 |" in text
    assert text.index("| `graph.profiles` | 70.0 |") < text.index("| `graph.nodes` | 30.0 |"), "largest first"


def test_results_page_needs_a_document(tmp_path: Path) -> None:
    assert write_page(tmp_path) is None


def test_throughput_chart_draws_bars_without_targets(tmp_path: Path) -> None:
    bars = [charts.Bar("raw", 10.0, None, baseline=True), charts.Bar("x", 20.0, 2.0)]
    path = charts.throughput_chart(bars, tmp_path / "t.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_perf_script_samples_are_summarised_by_process_thread_and_function() -> None:
    lines = [  # periods of 0.5 s of CPU each, to keep the arithmetic plain
        " tributary-write 100/101  500000000  7f01 mdb_page_alloc (/x/_core.abi3.so)",
        " tributary-write 100/101  500000000  7f01 mdb_page_alloc (/x/_core.abi3.so)",
        " python 200/200  500000000  7f02 orjson::serialize::h0123456789abcdef (/y/orjson.cpython-311.so)",
        "not a sample line",
    ]
    samples = list(parse_perf_script(lines, {100: "server", 200: "client"}))
    hot = summarise(samples, tool="perf", seconds=2.0, command="c")
    assert hot.samples == 3
    assert hot.cores == {"server": 0.5, "client": 0.25}
    top = hot.frames[0]
    assert (top.role, top.thread, top.function, top.module) == (
        "server",
        "tributary-write",
        "mdb_page_alloc",
        "engine (_core)",
    )
    assert top.share == pytest.approx(2 / 3, abs=1e-3)
    assert hot.frames[1].function == "orjson::serialize"  # the Rust hash is dropped


def test_py_spy_raw_stacks_count_their_leaf() -> None:
    lines = ["thread (0x1);main (run.py:3);encode (orjson.so) 30", "thread (0x2);idle (x.py:1) 10", "junk"]
    samples = list(parse_py_spy_raw(lines, "client"))
    assert [(s.thread, s.function, s.module, s.weight) for s in samples] == [
        ("thread (0x1)", "encode", "orjson", pytest.approx(30 / 199)),
        ("thread (0x2)", "idle", "Python: x.py", pytest.approx(10 / 199)),
    ]


def test_no_profile_is_taken_when_profiling_is_off() -> None:
    with profiled({"server": 1}, tool=None) as profile:
        pass
    assert profile.hot_path is None and profile.error == "profiling off"


@pytest.mark.skipif(available_profiler() != "perf", reason="perf cannot record here")
def test_perf_profiles_a_running_process() -> None:
    spin = "import time\nend = time.monotonic() + 1\nwhile time.monotonic() < end: pass"
    busy = subprocess.Popen([sys.executable, "-c", spin])
    try:
        with profiled({"busy": busy.pid}, tool="perf") as profile:
            busy.wait(timeout=30)
    finally:
        busy.kill()
        busy.wait()
    assert profile.error is None, profile.error
    assert profile.hot_path is not None and profile.hot_path.samples > 0
    assert {frame.role for frame in profile.hot_path.frames} == {"busy"}
