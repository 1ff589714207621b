"""Checks of the HTTP benchmark's harness: its requests, and one tiny run of the whole benchmark
(1 s per server, a few hundred profiles) whose figures must be sane. Nothing here times anything
against a bound: the figures of a run this short mean nothing."""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from benchmarks import http_api, http_workload

CDP = Path(sys.executable).with_name("cdp")


def test_every_message_of_a_batch_template_has_a_marked_message_id() -> None:
    templates = http_workload.batch_templates(20, seed=3)
    assert templates == http_workload.batch_templates(20, seed=3)
    messages = [m for body in templates for m in json.loads(body)["batch"]]
    assert len(messages) == 20 * http_workload.EVENTS_PER_REQUEST
    assert all(m["messageId"].startswith(http_workload.MESSAGE_ID_MARK) for m in messages)
    assert len({m["messageId"] for m in messages}) == len(messages)
    types = Counter(m["type"] for m in messages)
    assert 0.75 < types["track"] / len(messages) < 0.85 and types["identify"] and types["page"]
    assert all(m.get("userId") or m.get("anonymousId") for m in messages)


def test_templates_file_holds_one_body_a_line_of_about_300_bytes_a_message(tmp_path: Path) -> None:
    path = tmp_path / "batches.txt"
    per_message = http_workload.write_templates(path, 10, seed=3)
    lines = path.read_text().splitlines()
    assert len(lines) == 10 and all(json.loads(line)["sentAt"] for line in lines)
    assert 250 < per_message < 400


def test_identify_bodies_give_every_profile_its_traits_once() -> None:
    bodies = [json.loads(body) for body in http_workload.identify_bodies(250, seed=3)]
    assert [len(body["batch"]) for body in bodies] == [100, 100, 50]
    messages = [m for body in bodies for m in body["batch"]]
    assert [m["userId"] for m in messages] == [f"{http_workload.PROFILE_USER_PREFIX}{n}" for n in range(1, 251)]
    assert all(len(m["traits"]) == http_workload.TRAITS_PER_PROFILE for m in messages)


def _sane(run: dict[str, Any]) -> None:
    assert run["requests"] > 0 and run["requests_per_s"] > 0
    assert 0 < run["p50_ms"] <= run["p99_ms"] <= run["max_ms"]
    assert run["cores"]["server"] > 0 and run["cores"]["wrk"] > 0 and run["cores"]["others"] >= 0


def test_a_tiny_run_measures_both_servers_and_writes_the_results(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.fail("wrk is needed (`make test` and `make bench` install Debian's wrk)")
    results = tmp_path / "results"
    argv = ["--seconds", "1", "--warmup", "0", "--profiles", "300", "--templates", "5", "--connections", "4"]
    argv += ["--results-dir", str(results), "--tmp-dir", str(tmp_path), "--profile", "off", "--cdp", str(CDP)]
    assert http_api.main(argv) == 0
    document = json.loads((results / "http.json").read_text())
    assert document["errors"] == {}
    assert document["settings"]["rate_limit"].startswith("off")
    tracking, traits = document["runs"]["tracking"], document["runs"]["traits"]
    for part in (tracking, traits):
        _sane(part["tributary"])
        _sane(part["aiohttp"])
    counters = tracking["engine_counters"]
    assert counters["accepted"] >= tracking["tributary"]["requests"] * 100
    assert counters["duplicate"] == counters["conflicting"] == counters["rejected"] == 0
    assert traits["answer_traits"] > 0
    targets = document["targets"]
    assert len(targets) == 3 and all(t["value"] is not None and t["met"] is not None for t in targets)
    page = (results / "README.md").read_text()
    assert "## HTTP port" in page and "TRIBUTARY_HTTP_RATE_LIMIT=0" in page
    assert all(t["target"] in page for t in targets)
    assert (results / "http.png").stat().st_size > 0
