"""The Governance benchmark's document (``results/governance.json``), its targets and its section of
the results page; everything works on the JSON document, so the page can be written from the file alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import charts
from benchmarks.report import write_document

JSON = "governance.json"
CHART = "governance.png"
ANCHOR = "#governance-tracking-plans-on-the-ingest-path"
PLAN_SHARE = 0.85  # ingest with a 50-event plan in block mode ≥ this x ingest without a plan
NO_PLAN = "no tracking plan"


def targets(document: dict[str, Any] | None) -> list[dict[str, Any]]:
    """``{"target", "value", "measured", "met", "verdict", "run"}`` of each target."""
    runs = (document or {}).get("runs", {})
    goal = f"ingest with a 50-event plan (block) ≥ {PLAN_SHARE:g}x {NO_PLAN}"
    plan = runs.get("plan")
    if not plan:
        return [{"target": goal, "value": None, "measured": "—", "met": None, "verdict": "not measured", "run": "plan"}]
    ours, baseline = plan["planned"]["events_per_s"], plan["unplanned"]["events_per_s"]
    ratio = ours / baseline if baseline else 0.0
    met = ratio >= PLAN_SHARE
    return [
        {
            "target": goal,
            "value": ratio,
            "measured": f"{ratio:.2f}x: {ours:,.0f} events/s ({NO_PLAN}: {baseline:,.0f})",
            "met": met,
            "verdict": "met" if met else "MISSED",
            "run": "plan",
        }
    ]


def write_governance_json(
    results_dir: Path, *, runs: dict[str, dict[str, Any]], errors: dict[str, str], settings: dict[str, Any]
) -> dict[str, Any]:
    """Writes governance.json; returns the document."""
    return write_document(results_dir, "governance", runs=runs, errors=errors, settings=settings, targets=targets)


def section(document: dict[str, Any] | None, results_dir: Path, *, origin: str, quick: bool) -> str:
    text = ["## Governance: tracking plans on the ingest path", ""]
    plan = (document or {}).get("runs", {}).get("plan")
    if not plan:
        return "\n".join([*text, "Not measured (run `python -m benchmarks.governance`).", ""])
    [target] = targets(document)
    charts.ratio_chart(
        [
            charts.RatioPanel(
                title="Ingest (pre-encoded stream)",
                unit="events/s",
                ours=plan["planned"]["events_per_s"],
                baseline=plan["unplanned"]["events_per_s"],
                baseline_name=NO_PLAN,
                target_share=PLAN_SHARE,
                met=target["met"],
                ours_name="50-event plan, block",
            )
        ],
        results_dir / CHART,
        title="Tracking plan enforcement against none",
        subtitle=origin,
        quick=quick,
    )
    rounds = "; ".join(
        f"round {n}: {r['planned']:,.0f} with the plan, {r['unplanned']:,.0f} without"
        for n, r in enumerate(plan["rounds"], 1)
    )
    return "\n".join(
        [
            *text,
            f"![Tracking plan enforcement against none]({CHART})",
            "",
            f"From the {origin}. {plan['events']:,} events of the ingest benchmark's workload, pre-encoded, streamed "
            f"over gRPC (window {plan['window']}) into a fresh `cdp serve`, once with no plan and once with its "
            f"source enforcing a {plan['plan_events']}-event tracking plan (JSON Schemas with types, required "
            "properties, enums, bounds and no extra properties, plus identify traits) that blocks unplanned events "
            "and violations; every event of the workload is valid, so every one is checked and stored. Best of "
            f"{len(plan['rounds'])} rounds, the order alternating ({rounds}). `python -m benchmarks.governance` "
            "measures it.",
            "",
            "| run | events/s | seconds |",
            "|---|--:|--:|",
            f"| {NO_PLAN} | {plan['unplanned']['events_per_s']:,.0f} | {plan['unplanned']['seconds']:.2f} |",
            f"| 50-event plan, block | {plan['planned']['events_per_s']:,.0f} | {plan['planned']['seconds']:.2f} |",
            "",
        ]
    )
