"""The HTTP benchmark's document (``results/http.json``), its targets and its part of the results
page. Everything here works on the JSON document, so the page can be written from the file alone.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import charts
from benchmarks.report import environment

TRACKING_SHARE = 1.0  # Tributary's events/s ≥ this x the do-nothing handler's
TRAITS_SHARE = 0.9  # Tributary's /traits requests/s ≥ this x the do-nothing handler's
TRAITS_P99_MS = 10.0
BASELINE = "do-nothing aiohttp"
CHART = "http.png"
ANCHOR = "#http-port-tracking-and-profile-api-against-do-nothing-aiohttp"


def _rate(run: dict[str, Any], per_request: int = 1) -> float:
    return float(run.get("requests_per_s") or 0.0) * per_request


def targets(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's three targets: ``{"target", "value", "baseline", "measured", "met", "run"}``,
    ``measured`` the text of the results page (Tributary's figure, the baseline's beside it)."""
    runs = document.get("runs", {})
    found = []
    tracking = runs.get("tracking")
    goal = f"`POST /v1/batch` (100 events) events/s ≥ {TRACKING_SHARE:g}x {BASELINE}"
    if tracking:
        per = tracking["events_per_request"]
        real, base = _rate(tracking["tributary"], per), _rate(tracking["aiohttp"], per)
        ratio = real / base if base else 0.0
        measured = f"{ratio:.2f}x: {real:,.0f} events/s ({BASELINE}: {base:,.0f})"
        found.append(_target(goal, ratio, base, measured, ratio >= TRACKING_SHARE, "tracking"))
    else:
        found.append(_target(goal, None, None, "—", None, "tracking"))
    traits = runs.get("traits")
    connections = document.get("settings", {}).get("connections", 32)
    goal = f"`GET …/traits` requests/s ≥ {TRAITS_SHARE:g}x {BASELINE} ({connections} connections)"
    p99_goal = f"`GET …/traits` p99 ≤ {TRAITS_P99_MS:g} ms ({connections} connections)"
    if traits:
        real, base = _rate(traits["tributary"]), _rate(traits["aiohttp"])
        ratio = real / base if base else 0.0
        measured = f"{ratio:.2f}x: {real:,.0f}/s ({BASELINE}: {base:,.0f}/s)"
        found.append(_target(goal, ratio, base, measured, ratio >= TRAITS_SHARE, "traits"))
        p99, base_p99 = traits["tributary"]["p99_ms"], traits["aiohttp"]["p99_ms"]
        measured = f"{p99:.2f} ms ({BASELINE}: {base_p99:.2f} ms)"
        found.append(_target(p99_goal, p99, base_p99, measured, p99 <= TRAITS_P99_MS, "traits"))
    else:
        found += [_target(goal, None, None, "—", None, "traits"), _target(p99_goal, None, None, "—", None, "traits")]
    return found


def _target(
    goal: str, value: float | None, baseline: float | None, measured: str, met: bool | None, run: str
) -> dict[str, Any]:
    return {
        "target": goal,
        "value": value,
        "baseline": baseline,
        "measured": measured,
        "met": met,
        "verdict": {True: "met", False: "MISSED", None: "not measured"}[met],
        "run": run,
    }


def write_http_json(
    results_dir: Path, *, runs: dict[str, dict[str, Any]], errors: dict[str, str], settings: dict[str, Any]
) -> dict[str, Any]:
    """Writes http.json; returns the document."""
    results_dir.mkdir(parents=True, exist_ok=True)
    env = environment()
    try:
        env["aiohttp"] = metadata.version("aiohttp")
    except metadata.PackageNotFoundError:
        env["aiohttp"] = "not installed"
    document: dict[str, Any] = {
        "benchmark": "http",
        "measured_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "environment": env,
        "settings": settings,
        "runs": runs,
        "errors": errors,
    }
    document["targets"] = targets(document)
    (results_dir / "http.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return document


def _rows(document: dict[str, Any]) -> list[str]:
    lines = [
        "| request | server | requests/s | events/s | p50 | p99 | p99.9 | cores: server | wrk | others "
        "| server's switches a request (threads) |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    labels = {"tracking": "`POST /v1/batch`", "traits": "`GET …/traits`"}
    for key, part in document.get("runs", {}).items():
        per = part.get("events_per_request")
        for system, name in (("tributary", "Tributary"), ("aiohttp", BASELINE)):
            run = part[system]
            events = f"{_rate(run, per):,.0f}" if per else "—"
            details = run.get("details", {})
            switches = details.get("context_switches_per_request")
            switched = f"{switches:.1f} ({details.get('threads')})" if switches is not None else "—"
            lines.append(
                f"| {labels[key]} | {name} | {_rate(run):,.0f} | {events} | {run['p50_ms']:.2f} ms "
                f"| {run['p99_ms']:.2f} ms | {run['p999_ms']:.2f} ms | {run['cores']['server']:.2f} "
                f"| {run['cores']['wrk']:.2f} | {run['cores'].get('others', 0.0):.2f} | {switched} |"
            )
    return lines


def section(document: dict[str, Any], results_dir: Path, *, origin: str, quick: bool) -> str:
    """The results page's section: chart, figures and method (without the profiles)."""
    text = ["## HTTP port: Tracking and Profile API against do-nothing aiohttp", ""]
    runs = document.get("runs", {})
    if not runs:
        return "\n".join([*text, "Not measured (run `python -m benchmarks.http_api`).", ""])
    settings = document.get("settings", {})
    found = {t["run"] + (":p99" if "p99" in t["target"] else ""): t for t in targets(document)}
    panels = []
    if "tracking" in runs:
        part = runs["tracking"]
        per = part["events_per_request"]
        panels.append(
            charts.HttpPanel(
                title="POST /v1/batch (100 events a request)",
                unit="events/s",
                tributary=_rate(part["tributary"], per),
                baseline=_rate(part["aiohttp"], per),
                p99_ms=(part["tributary"]["p99_ms"], part["aiohttp"]["p99_ms"]),
                target_share=TRACKING_SHARE,
                met=found["tracking"]["met"],
            )
        )
    if "traits" in runs:
        part = runs["traits"]
        panels.append(
            charts.HttpPanel(
                title=f"GET …/traits ({part['profiles']:,} profiles)",
                unit="requests/s",
                tributary=_rate(part["tributary"]),
                baseline=_rate(part["aiohttp"]),
                p99_ms=(part["tributary"]["p99_ms"], part["aiohttp"]["p99_ms"]),
                target_share=TRAITS_SHARE,
                met=bool(found["traits"]["met"] and found["traits:p99"]["met"]),
                p99_target_ms=TRAITS_P99_MS,
            )
        )
    charts.http_chart(panels, results_dir / CHART, baseline=BASELINE, subtitle=origin, quick=quick)
    tracking, traits = runs.get("tracking", {}), runs.get("traits", {})
    text += [
        f"![HTTP port against do-nothing aiohttp]({CHART})",
        "",
        f"wrk {settings.get('wrk', '')} with {settings.get('connections')} connections on "
        f"{settings.get('wrk_threads')} thread, {settings.get('seconds')} s per server after a "
        f"{settings.get('warmup_s')} s warm-up, one server after the other; the same Lua script (`benchmarks/wrk/`) "
        f"against Tributary's HTTP port (`cdp serve`: durable, fsync'd acknowledgements, identity resolution on, "
        f"**the Tracking API's per-source rate limit off**: `TRIBUTARY_HTTP_RATE_LIMIT=0`) and against "
        f"{BASELINE} (`benchmarks/http_baseline.py`, one event loop, no access log), which reads each body and "
        "answers a fixed one. Green: target met; red: missed; the dotted line marks the target. Latency is wrk's, "
        "per request; with a fixed number of connections it is about connections / rate (Little's law). "
        "Cores: CPU time over wall time of the server, of wrk, and of every other process on the machine during "
        "the run (the machine has two). Switches: the server's context switches (voluntary or not, all threads) "
        "a request, and its thread count at the end. Profiles below are taken in a separate run after the "
        "measured one: perf slows a server that switches threads per request by ~40 %.",
        "",
    ]
    if tracking:
        text += [
            f"- `POST /v1/batch`: {tracking['events_per_request']} Segment messages a request "
            f"(~{tracking['message_bytes']:.0f} B each; ~80 % track, ~10 % identify, ~10 % page; users drawn "
            f"from 100,000), {tracking['templates']} bodies whose messageIds get a prefix new to each request "
            "in the Lua script, so nothing deduplicates. Checked: the engine stored at least every answered "
            "request's events and refused none ("
            + ", ".join(f"{name} {count:,.0f}" for name, count in tracking["engine_counters"].items())
            + ", the warm-up and the profiled run included).",
        ]
    if traits:
        text += [
            f"- `GET /v1/spaces/default/collections/users/profiles/user_id:<id>/traits`: a random one of "
            f"{traits['profiles']:,} profiles a request (made first with one identify call each of "
            f"{traits['traits_per_profile']} traits, through `/v1/batch`, in {traits['profiles_made_s']:.1f} s), "
            f"with the admin token; the answer holds {traits['answer_traits']} traits in "
            f"{traits['answer_bytes']} B. {BASELINE} answers the bytes of a real answer of Tributary's.",
        ]
    text += ["", *_rows(document), ""]
    return "\n".join(text)
