"""Checks of the Engage benchmark's harness: the data it generates, its hand-made protobuf
encoding, the numpy oracle, the DuckDB baseline, the bitmap comparison and one tiny run of the
whole benchmark. Small inputs, a few seconds in all; nothing here holds a time to a bound."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from pyroaring import BitMap
from tributary._proto.cdp.v1 import event_pb2, ingest_pb2

from benchmarks import audience_bitmaps, audience_duckdb, audience_report, audiences
from benchmarks import audience_workload as aw
from benchmarks.results_page import write_page
from benchmarks.unify_report import Figure
from cdp_server import _core

PROFILES = 3_000
EVENTS = 30_000
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def data() -> aw.AudienceData:
    return aw.generate(PROFILES, EVENTS, seed=7, now=NOW)


def test_generation_is_deterministic_for_a_seed(data: aw.AudienceData) -> None:
    again = aw.generate(PROFILES, EVENTS, seed=7, now=NOW)
    assert np.array_equal(again.user, data.user) and np.array_equal(again.ts, data.ts)
    assert all(np.array_equal(again.traits[key], data.traits[key]) for key in data.traits)
    assert aw.track_batches(again, 1)[:3] == aw.track_batches(data, 1)[:3]
    assert aw.identify_batches(again)[:2] == aw.identify_batches(data)[:2]
    assert not np.array_equal(aw.generate(PROFILES, EVENTS, seed=8, now=NOW).user, data.user)
    later = aw.generate(PROFILES, EVENTS, seed=7, now=datetime(2026, 1, 2, tzinfo=UTC))
    assert np.array_equal(later.ts - aw.DAY_S, data.ts) and aw.members(later) == aw.members(data)


def test_the_data_has_the_shape_the_issue_asks_for(data: aw.AudienceData) -> None:
    assert data.n_events == EVENTS and len(aw.EVENT_NAMES) == len(set(aw.EVENT_NAMES)) == 50
    assert len(data.traits) == 20 and set(data.traits["plan"]) == set(aw.PLANS)
    assert data.now_s == NOW.timestamp() and data.start_s == data.now_s - 90 * aw.DAY_S
    assert np.all(np.diff(data.ts) >= 0) and data.ts.min() >= data.start_s and data.ts.max() <= data.now_s
    names = Counter(data.name.tolist())
    assert names[aw.EVENT_NAMES.index(aw.CHURNED)] < names[aw.EVENT_NAMES.index(aw.ORDER_COMPLETED)] / 20
    shape = aw.describe(data)
    assert 0.01 < shape["profiles_with_3_orders_in_30_days"] / PROFILES < 0.06
    assert 0 < shape["profiles_churned"] / PROFILES < 0.05
    assert shape["audience_size"] == len(aw.members(data)) > 0


def _decoded(batches: list[bytes]) -> list[event_pb2.Event]:
    requests = [ingest_pb2.StreamRequest.FromString(raw) for raw in batches]
    assert [r.sequence for r in requests] == list(range(requests[0].sequence, requests[0].sequence + len(requests)))
    assert all(len(r.batch.events) <= aw.BATCH_SIZE for r in requests)
    return [event for r in requests for event in r.batch.events]


def test_batches_decode_to_the_generated_events(data: aw.AudienceData) -> None:
    identifies = _decoded(aw.identify_batches(data))
    tracks = _decoded(aw.track_batches(data, 100))
    assert [e.user_id for e in identifies] == [f"u{k}" for k in range(PROFILES)]
    assert all(e.type == event_pb2.EVENT_TYPE_IDENTIFY for e in identifies)
    traits = json.loads(identifies[5].traits)
    assert len(traits) == 20 and traits["plan"] == data.traits["plan"][5] and traits["age"] == data.traits["age"][5]
    assert all(e.type == event_pb2.EVENT_TYPE_TRACK for e in tracks)
    assert [e.user_id for e in tracks] == [f"u{k}" for k in data.user]
    assert [e.event for e in tracks] == [aw.EVENT_NAMES[k] for k in data.name]
    assert [e.timestamp.seconds for e in tracks] == data.ts.tolist()
    assert not any(e.HasField("sent_at") or e.HasField("original_timestamp") for e in tracks)
    assert all(json.loads(e.properties) and json.loads(e.context)["library"] for e in tracks[:100])
    ids = [e.message_id for e in identifies + tracks]
    assert len(set(ids)) == len(ids) and {len(i) for i in ids} == {36}


def test_oracle_follows_the_reference_semantics_at_the_window_edges() -> None:
    """within(30 days) is now - 30 days <= t <= now; Churned counts at any time."""
    now_s = int(NOW.timestamp())
    edge = now_s - 30 * aw.DAY_S
    # profile 0: 3 orders, one exactly at the window's start: in. 1: one a second before it: out.
    # 2: in, but churned long ago: out. 3: basic plan: out.
    user = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3], dtype=np.int32)
    name = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], dtype=np.uint8)
    ts = np.array(
        [edge, edge + 5, now_s, edge - 1, edge + 5, edge + 6, edge, edge, edge, now_s - 80 * aw.DAY_S, *[edge] * 3]
    )
    order = np.argsort(ts, kind="stable")
    plans = np.array(["pro", "pro", "pro", "basic"], dtype=object)
    data = aw.AudienceData(4, 0, now_s, user[order], name[order], name[order] * 0, ts[order], {"plan": plans})
    assert aw.members(data) == {0}


def test_duckdb_finds_the_oracles_members_in_both_orders(data: aw.AudienceData) -> None:
    con = audience_duckdb.build_tables(data, seed=7)
    expected = aw.members(data)
    now_s = data.now_s
    assert audience_duckdb.members(con, audience_duckdb.UNSORTED, now_s) == expected
    assert audience_duckdb.members(con, audience_duckdb.SORTED, now_s) == expected
    assert con.execute(audience_duckdb.size_sql(audience_duckdb.SORTED, now_s)).fetchall() == [(len(expected),)]
    member, other = min(expected), min(set(range(PROFILES)) - expected)
    check = audience_duckdb.member_check_sql(audience_duckdb.SORTED, now_s)
    assert con.execute(check, [f"u{member}"]).fetchall() == [(f"u{member}",)]
    assert con.execute(check, [f"u{other}"]).fetchall() == []
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {audience_duckdb.UNSORTED})").fetchall())
    assert types == {"user_id": "VARCHAR", "event": "VARCHAR", "ts": "TIMESTAMP"}
    unsorted = con.execute(f"SELECT ts FROM {audience_duckdb.UNSORTED} LIMIT 200").fetchall()
    assert unsorted != sorted(unsorted)


def test_rust_and_pyroaring_agree_on_every_operation(data: aw.AudienceData) -> None:
    runs = audience_bitmaps.compare(audience_bitmaps.operand_sets(data), operations=3, rounds=2)
    assert len(runs) == 2 * len(audience_bitmaps.PAIRS)
    assert all(len(r.rounds_rust_us) == len(r.rounds_pyroaring_us) == 2 and r.rust_us > 0 for r in runs)
    left, right = BitMap([1, 2, 3, 70_000]), BitMap([3, 70_000, 1 << 31])
    assert audience_bitmaps.time_bitmap_op(left.serialize(), right.serialize(), "and", 1)[1] == 2
    assert audience_bitmaps.time_bitmap_op(left.serialize(), right.serialize(), "or", 1)[1] == 5
    with pytest.raises(_core.InvalidRequest):
        audience_bitmaps.time_bitmap_op(left.serialize(), right.serialize(), "xor", 1)
    with pytest.raises(_core.InvalidRequest):
        audience_bitmaps.time_bitmap_op(b"not a bitmap", right.serialize(), "and", 1)


def test_a_tiny_run_measures_every_part_and_keeps_the_definitions_in_real_time(tmp_path: Path) -> None:
    results = tmp_path / "results"
    argv = ["--scale", "0.002", "--runs", "2", "--checks", "40", "--bitmap-ops", "5", "--bitmap-rounds", "2"]
    argv += ["--results-dir", str(results), "--tmp-dir", str(tmp_path), "--profile", "off"]
    status = audiences.main(argv)
    document = json.loads((results / "audiences.json").read_text())
    assert document["errors"] == {} and status == 0
    assert {figure["part"] for figure in document["figures"]} == set(audiences.PARTS)
    assert all(figure["measured"] is not None for figure in document["figures"])
    details = document["details"]
    assert details["a"]["identifies"]["accepted"] == 2_000 and details["a"]["tracks"]["accepted"] == 20_000
    assert details["b"]["mismatches"] == [] and details["c"]["wrong_answers"] == 0
    assert details["c"]["live_status"] == "STATUS_READY"
    # (e): every definition was accepted and kept; those without a time window are exact.
    real_time = details["e"]
    assert set(real_time["sizes"]) == set(real_time["definitions"]) and len(real_time["sizes"]) == 30
    exact = real_time["exact_sizes"]
    assert {key: real_time["sizes"][key] for key in exact} == exact and exact["rt_churned"] > 0
    assert real_time["events"] == 22_000 and real_time["derived_events"] > 0
    assert real_time["drained_s"] >= real_time["acked_s"] > 0
    page = (results / "README.md").read_text()
    assert "## Engage: audiences against DuckDB and pyroaring" in page


def test_the_page_explains_a_missed_evaluation_target_with_its_profile_and_says_how_to_take_one(
    tmp_path: Path,
) -> None:
    missed = Figure("b", "audience evaluation, 10 profiles", 9.0, "ms", "DuckDB", 3.0, 1 / 3, "≥ 4x DuckDB", False)
    size = Figure("c", "the audience's size", 5.0, "ms", target="≤ 1 ms", met=False)
    audience_report.write_results(
        tmp_path,
        figures=[missed, size],
        details={"b": {"profile": {"tool": None, "error": "profiling off", "hot_path": None}}},
        errors={},
        settings={"parts": ["b", "c"], "profiles": 10, "events": 100, "seed": 1},
    )
    page = (tmp_path / "README.md").read_text() if write_page(tmp_path) else ""
    assert "#### Where the time goes: `Engine.preview_audience`, 0.33x: 9 ms (DuckDB: 3 ms)" in page
    assert "No profile: profiling off." in page and "python -m benchmarks.audiences --only b" in page
    # The size is not what check_membership's profile explains.
    assert "Engine.check_membership" not in page
    assert "| [Engage](#engage-audiences-against-duckdb-and-pyroaring) | the audience's size: ≤ 1 ms | 5 ms |" in page
