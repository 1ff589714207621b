"""Checks of the Governance benchmark's harness: one tiny run whose figures must add up (every event of
the workload valid against the 50-event plan and stored, the plan proven enforced, the ratio computed
from the figures beside it). Nothing here times anything against a bound."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks import governance, governance_report

CDP = Path(sys.executable).with_name("cdp")


def test_a_tiny_run_checks_every_event_against_the_plan_and_reports_the_ratio(tmp_path: Path) -> None:
    status = governance.main(
        [
            "--events",
            "2000",
            "--rounds",
            "1",
            "--results-dir",
            str(tmp_path),
            "--tmp-dir",
            str(tmp_path),
            "--cdp",
            str(CDP),
        ]
    )
    document = json.loads((tmp_path / governance_report.JSON).read_text())
    assert status == 0, document["errors"]
    plan = document["runs"]["plan"]
    assert plan["plan_events"] == 50 and plan["events"] == 2000
    [target] = document["targets"]
    ratio = plan["planned"]["events_per_s"] / plan["unplanned"]["events_per_s"]
    assert target["value"] == ratio and target["met"] == (ratio >= governance_report.PLAN_SHARE)
    page = (tmp_path / "README.md").read_text()
    assert "## Governance: tracking plans on the ingest path" in page and (tmp_path / governance_report.CHART).exists()
