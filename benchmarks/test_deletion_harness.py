"""Checks of the privacy deletion benchmark's harness: one tiny run whose figures must add up (each
deletion removed exactly its person's events and left the others, the rebuild found every other
profile, the target judged on the slowest deletion). Nothing here times anything against a bound."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks import deletion, deletion_report

CDP = Path(sys.executable).with_name("cdp")


def test_a_tiny_run_deletes_each_person_checks_the_rest_and_reports_the_slowest(tmp_path: Path) -> None:
    argv = ["--profiles", "2000", "--people", "3", "--results-dir", str(tmp_path), "--tmp-dir", str(tmp_path)]
    status = deletion.main([*argv, "--cdp", str(CDP)])
    document = json.loads((tmp_path / deletion_report.JSON).read_text())
    assert status == 0, document["errors"]
    run = document["runs"]["deletion"]
    people = deletion.people_deleted(2000, 3)
    assert [d["user_id"] for d in run["deletions"]] == [f"u{n}" for n in people]
    for d in run["deletions"]:
        stages = {s["store"]: s["detail"] for s in d["stages"]}
        assert stages["events and dedupe markers"].startswith(f"{d['events']} events removed")
        assert d["engine_s"] > 0 and d["wall_s"] >= d["engine_s"] and d["scrub_s"] is not None
    rebuild = run["rebuild"]
    assert rebuild["profiles"] == 2000 - 3 and rebuild["through_seq"] == run["events"]
    assert rebuild["events"] == run["events"] - sum(d["events"] for d in run["deletions"])
    [target] = document["targets"]
    assert target["value"] == run["engine_max_s"] and target["met"] == (run["engine_max_s"] <= deletion_report.TARGET_S)
    page = (tmp_path / "README.md").read_text()
    assert "## Privacy deletion: one person among all profiles" in page and (tmp_path / deletion_report.CHART).exists()
