"""Checks of the Connections benchmark's harness: its sink, and one tiny run of the whole benchmark whose
figures must add up (every event delivered on both sides, each ratio computed from the figures beside it).
Nothing here times anything against a bound: the figures of a run this short mean nothing."""

from __future__ import annotations

import json
import shutil
import sys
import urllib.request
from pathlib import Path

import orjson
import pytest

from benchmarks import connections, connections_report, warehouse_load
from benchmarks.connections_sink import dump_recorded, read_bodies, running_sink, tally

CDP = Path(sys.executable).with_name("cdp")
EVENTS = 1_000  # ten webhook batches of 100
INGEST_EVENTS = 1_200


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def test_the_sink_counts_each_paths_events_and_gives_back_the_recorded_bodies(tmp_path: Path) -> None:
    bodies = [orjson.dumps([{"messageId": f"m{i}-{j}"} for j in range(i + 1)]) for i in range(3)]
    with running_sink(tmp_path) as (_, url):
        for body in bodies:
            assert _post(f"{url}/record-a", body) == 200
        assert _post(f"{url}/other", bodies[0]) == 200
        recorded, other = tally(url, "/record-a"), tally(url, "/other")
        assert (recorded.requests, recorded.events, recorded.body_bytes) == (3, 6, sum(map(len, bodies)))
        assert (other.requests, other.events) == (1, 1)
        assert recorded.first_at <= recorded.last_at
        assert dump_recorded(url, "/record-a", tmp_path / "bodies.bin") == (3, sum(map(len, bodies)))
        assert dump_recorded(url, "/other", tmp_path / "none.bin") == (0, 0), "only /record… paths keep bodies"
    assert read_bodies(tmp_path / "bodies.bin") == bodies


def test_a_tiny_run_delivers_every_event_on_both_sides_and_its_ratios_add_up(tmp_path: Path) -> None:
    if shutil.which("nats-server") is None:
        pytest.fail("nats-server is needed (`make test` and `make bench` install Debian's nats-server)")
    results = tmp_path / "results"
    argv = ["--events", str(EVENTS), "--ingest-events", str(INGEST_EVENTS), "--rounds", "2", "--settle", "0"]
    argv += ["--results-dir", str(results), "--tmp-dir", str(tmp_path), "--profile", "off", "--cdp", str(CDP)]
    assert connections.main(argv) == 0
    document = json.loads((results / connections_report.JSON).read_text())
    assert document["errors"] == {}
    runs = document["runs"]

    webhook = runs["webhook"]
    assert webhook["requests"] == EVENTS // 100
    for measured in [webhook["warm_up"], *(r[side] for r in webhook["rounds"] for side in ("ours", "bare"))]:
        # Every event reached the sink, in the same bytes on both sides.
        assert measured["events"] == EVENTS and measured["bytes"] == webhook["bytes"]
        assert measured["requests"] == webhook["requests"]
        assert measured["events_per_s"] == pytest.approx(EVENTS / measured["window_s"], rel=1e-3)
    assert webhook["ours"]["events_per_s"] == max(r["ours"]["events_per_s"] for r in webhook["rounds"])
    for mode in ("fsync", "no_fsync"):
        phases = webhook["phases"][mode]["phases"]
        assert phases["deliver (POST)"]["calls"] == EVENTS // 100, "the real worker posted every batch once"
        # Settlements are grouped while batches keep coming: at least the last, at most one a batch.
        assert 1 <= phases["settle"]["calls"] <= EVENTS // 100

    warehouse = runs["warehouse"]
    assert warehouse["events"] == EVENTS and warehouse["ours_rows_per_s"] == 2 * warehouse["ours_events_per_s"]

    ingest = runs["ingest"]
    for measured in ingest["rounds"]:
        assert measured["alone"]["events"] == measured["attached"]["events"] == INGEST_EVENTS
        destinations = measured["attached"]["destinations"]
        assert {d["kind"] for d in destinations.values()} == {"webhook", "files", "nats"}
        assert all(d["received"] == INGEST_EVENTS for d in destinations.values()), "each got every event"
        assert all(0 <= d["backlog_at_end"] <= measured["attached"]["last_seq"] for d in destinations.values())

    targets = {t["run"]: t for t in document["targets"]}
    ratios = {
        "webhook": webhook["ours"]["events_per_s"] / webhook["bare"]["events_per_s"],
        "warehouse": warehouse["ours_rows_per_s"] / warehouse["bare_same_rows_per_s"],
        "ingest": ingest["attached"]["events_per_s"] / ingest["alone"]["events_per_s"],
    }
    for part, ratio in ratios.items():
        assert targets[part]["value"] == pytest.approx(ratio)
        assert targets[part]["measured"].startswith(f"{ratio:.2f}x")
        assert targets[part]["met"] == (ratio >= {"webhook": 0.7, "warehouse": 0.7, "ingest": 0.9}[part])
    assert warehouse["ratio_same_rows"] == pytest.approx(ratios["warehouse"])
    assert warehouse_load.TARGET_RATIO == connections_report.WAREHOUSE_SHARE

    page = (results / "README.md").read_text()
    assert "## Connections" in page and all(t["target"] in page for t in document["targets"])
    assert (results / connections_report.CHART).stat().st_size > 0
