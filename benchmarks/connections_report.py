"""The Connections benchmark's document (``results/connections.json``), its targets and its section of
the results page. Everything here works on the JSON document, so the page can be written from the file alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import charts
from benchmarks.report import write_document

JSON = "connections.json"
CHART = "connections.png"
ANCHOR = "#connections-delivery-against-bare-clients"
WEBHOOK_SHARE = 0.7  # webhook delivery events/s ≥ this x the bare aiohttp client's
WAREHOUSE_SHARE = 0.7  # warehouse rows/s ≥ this x the bare psycopg COPY's (warehouse_load.TARGET_RATIO)
INGEST_SHARE = 0.9  # ingest with three destinations attached ≥ this x ingest without
BARE_AIOHTTP = "bare aiohttp client"
BARE_COPY = "bare psycopg COPY"
ALONE = "no destinations"
# The parts whose profile (the server's, during the last round) explains a missed target: part → (its run, what ran).
PROFILED = {"webhook": ("ours", "webhook delivery"), "ingest": ("attached", "ingest with three destinations")}


def _target(goal: str, part: str, ratio: float | None, measured: str, share: float) -> dict[str, Any]:
    met = None if ratio is None else ratio >= share
    return {
        "target": goal,
        "value": ratio,
        "measured": measured,
        "met": met,
        "verdict": {True: "met", False: "MISSED", None: "not measured"}[met],
        "run": part,
    }


def figures(document: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """(ours, baseline) of each measured part, in the unit its target is about."""
    runs = document.get("runs", {})
    found = {}
    if "webhook" in runs:
        found["webhook"] = (runs["webhook"]["ours"]["events_per_s"], runs["webhook"]["bare"]["events_per_s"])
    if "warehouse" in runs:
        found["warehouse"] = (runs["warehouse"]["ours_rows_per_s"], runs["warehouse"]["bare_same_rows_per_s"])
    if "ingest" in runs:
        found["ingest"] = (runs["ingest"]["attached"]["events_per_s"], runs["ingest"]["alone"]["events_per_s"])
    return found


def targets(document: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The three targets: ``{"target", "value", "measured", "met", "verdict", "run"}``, ``measured`` the
    text of the results page (ours, the baseline's figure beside it)."""
    found = figures(document or {})
    goals = (
        ("webhook", f"webhook delivery events/s ≥ {WEBHOOK_SHARE:g}x a {BARE_AIOHTTP}", WEBHOOK_SHARE, "events/s"),
        ("warehouse", f"warehouse load rows/s ≥ {WAREHOUSE_SHARE:g}x a {BARE_COPY}", WAREHOUSE_SHARE, "rows/s"),
        ("ingest", f"`Client.stream` with 3 destinations ≥ {INGEST_SHARE:g}x {ALONE}", INGEST_SHARE, "events/s"),
    )
    baselines = {"webhook": BARE_AIOHTTP, "warehouse": BARE_COPY, "ingest": ALONE}
    rows = []
    for part, goal, share, unit in goals:
        if part not in found:
            rows.append(_target(goal, part, None, "—", share))
            continue
        ours, baseline = found[part]
        ratio = ours / baseline if baseline else 0.0
        measured = f"{ratio:.2f}x: {ours:,.0f} {unit} ({baselines[part]}: {baseline:,.0f})"
        rows.append(_target(goal, part, ratio, measured, share))
    return rows


def write_connections_json(
    results_dir: Path, *, runs: dict[str, dict[str, Any]], errors: dict[str, str], settings: dict[str, Any]
) -> dict[str, Any]:
    """Writes connections.json; returns the document."""
    packages = ("aiohttp", "psycopg", "nats-py")
    return write_document(
        results_dir, "connections", runs=runs, errors=errors, settings=settings, targets=targets, packages=packages
    )


def _cores(cores: dict[str, float]) -> str:
    return ", ".join(f"{role} {value:.2f}" for role, value in cores.items()) or "—"


def _webhook(run: dict[str, Any]) -> list[str]:
    ours, bare = run["ours"], run["bare"]
    return [
        f"**Webhook delivery.** {run['events']:,} events (the ingest benchmark's Segment-like workload, 100 k "
        f"users; ~{run['bytes'] / run['events']:.0f} B an event as delivered JSON) already in `cdp serve`, then a "
        "webhook destination created "
        f"with `from_beginning`, batches of {run['batch_size']} (the default): {run['requests']:,} requests, "
        f"{run['bytes'] / 2**20:,.1f} MiB of JSON. The {BARE_AIOHTTP} (`benchmarks/connections_bare.py`, its own "
        "process) posts the very bodies the worker sent (recorded by the sink in an untimed warm-up delivery) to "
        "the same sink, one request in flight as the worker has, with a plain `ClientSession`: no signing, SSRF "
        "checks, log reads or cursor settles. The sink (`benchmarks/connections_sink.py`, an aiohttp server in its "
        "own process) decodes each body to count its events and answers 200; both sides are timed on its clock, "
        "from the first request's arrival to the last one's answer, and must deliver every event and the same "
        f"bytes. Best of {len(run['rounds'])} rounds, the order alternating.",
        "",
        "| side | events/s | window | other timings | cores busy |",
        "|---|--:|--:|---|---|",
        f"| Tributary's worker | {ours['events_per_s']:,.0f} | {ours['window_s']:.2f} s "
        f"| create to cursor past the last event: {ours['settled_s']:.2f} s | {_cores(ours['cores'])} |",
        f"| {BARE_AIOHTTP} | {bare['events_per_s']:,.0f} | {bare['window_s']:.2f} s "
        f"| client's own clock: {bare['client_s']:.2f} s | {_cores(bare['cores'])} |",
        "",
    ]


PHASES = {
    "read_for_delivery": "`read_for_delivery` (runs ahead, while the batch before is delivered)",
    "deliver (POST)": "`WebhookDestination.deliver`: sign, check the address, POST, read the answer",
    "settle": "`settle`: the cursor forward, one durable LMDB transaction",
    "report_delivery": "`report_delivery` (metrics)",
    "set_delivery_status": "`set_delivery_status`",
}


def _phases(run: dict[str, Any]) -> list[str]:
    """The worker's phases, in-process (`connections_phases`), with fsync'd settles and without."""
    phases = run.get("phases")
    if not phases:
        return []
    fsync, no_fsync = phases["fsync"], phases["no_fsync"]
    batches = max(fsync["phases"].get("settle", {}).get("calls", 0), 1)
    text = [
        f"Where the worker's time goes (`python -m benchmarks.connections_phases`): the same {fsync['events']:,} "
        "events in an in-process engine, delivered by the server's own `DestinationWorker` and `WebhookDestination` "
        "to the sink, each engine call and each `deliver` timed. With fsync'd settles (as `cdp serve` runs): "
        f"**{fsync['events_per_s']:,.0f} events/s**; with the engine's commits not fsync'd (as "
        f"`--unsafe-benchmark-mode`): **{no_fsync['events_per_s']:,.0f} events/s**; the bare client: "
        f"{run['bare']['events_per_s']:,.0f} events/s. A batch ({run['batch_size']} events) takes "
        f"{fsync['wall_s'] / batches * 1000:.2f} ms of wall time with fsync, "
        f"{no_fsync['wall_s'] / batches * 1000:.2f} ms without; the bare client posts one in "
        f"{run['bare']['window_s'] / run['requests'] * 1000:.2f} ms. The last read waits up to 0.5 s for events "
        "that never come: it is in the read's seconds, not in the wall time.",
        "",
        "| phase | calls | ms each, fsync | ms each, no fsync | share of the wall time, fsync |",
        "|---|--:|--:|--:|--:|",
    ]
    for name, label in PHASES.items():
        on, off = fsync["phases"].get(name), no_fsync["phases"].get(name)
        if not on or not off:
            continue
        each_on = on["seconds"] / max(on["calls"], 1) * 1000
        each_off = off["seconds"] / max(off["calls"], 1) * 1000
        share = on["seconds"] / fsync["wall_s"] * 100
        text.append(f"| {label} | {on['calls']:,} | {each_on:.3f} | {each_off:.3f} | {share:.0f} % |")
    return [*text, ""]


def _warehouse(run: dict[str, Any]) -> list[str]:
    return [
        f"**Warehouse load** (`benchmarks/warehouse_load.py`, whose figures these are): {run['events']:,} "
        f"`Order Completed` events in batches of {run['batch_size']:,} through the warehouse destination's `deliver` "
        "(two rows an event: `tracks` and the event's table) against a bare psycopg binary COPY of the same rows, "
        f"already built as typed tuples, on a private PostgreSQL; best of {run['rounds']} rounds. Ours "
        f"{run['ours_events_per_s']:,.0f} events/s = {run['ours_rows_per_s']:,.0f} rows/s; bare COPY "
        f"{run['bare_same_rows_per_s']:,.0f} rows/s for the same rows, {run['bare_one_table_rows_per_s']:,.0f} rows/s "
        f"into one table (ours in events/s: {run['ratio_one_table']:.2f}x that).",
        "",
    ]


def _ingest(run: dict[str, Any]) -> list[str]:
    alone, attached = run["alone"], run["attached"]
    text = [
        f"**Ingest with destinations attached.** `Client.stream(dicts)` of {run['events']:,} events "
        f"(`benchmarks/dicts_client.py`: the library's defaults, batches of {alone['batch_size']}, window "
        f"{alone['window']}) into a fresh `cdp serve`, alone and with three destinations delivering meanwhile: a "
        "webhook (`hook`, to the sink), files (`lake`, JSON lines in a temp directory, fsync'd) and NATS JetStream "
        "(`bus`, a nats-server with a file store started for the run), each with its default batch of 100. "
        f"Best of {len(run['rounds'])} rounds, the order alternating. After the last acknowledgement every "
        "event must reach all three (the sink's count, the files' lines, the stream's messages).",
        "",
        "| run | events/s | seconds | cores busy while ingesting |",
        "|---|--:|--:|---|",
        f"| {ALONE} | {alone['events_per_s']:,.0f} | {alone['seconds']:.2f} | {_cores(alone['cores'])} |",
        f"| 3 destinations | {attached['events_per_s']:,.0f} | {attached['seconds']:.2f} "
        f"| {_cores(attached['cores'])} |",
        "",
        "Did they keep up? Each one's backlog when the last event was acknowledged (the best round; the log at "
        f"seq {attached['last_seq']:,}); all three had delivered everything {attached['drained_s']:.1f} s later.",
        "",
        "| destination | kind | backlog at the last ack | delivered by then | receipt-to-delivery p50 | p95 |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for name, dest in attached["destinations"].items():
        text.append(
            f"| `{name}` | {dest['kind']} | {dest['backlog_at_end']:,} | {dest['delivered_at_end']:,} "
            f"| {dest['latency_p50_ms']:,.0f} ms | {dest['latency_p95_ms']:,.0f} ms |"
        )
    backlogs = [
        f"round {n}: " + ", ".join(f"{k} {d['backlog_at_end']:,}" for k, d in r["attached"]["destinations"].items())
        for n, r in enumerate(run["rounds"], 1)
    ]
    return [*text, "", "Backlog at the last ack, every round: " + "; ".join(backlogs) + ".", ""]


def section(document: dict[str, Any] | None, results_dir: Path, *, origin: str, quick: bool) -> str:
    """The results page's section: chart, figures and method (without the profiles)."""
    text = ["## Connections: delivery against bare clients", ""]
    runs = (document or {}).get("runs", {})
    if not document or not runs:
        return "\n".join([*text, "Not measured (run `python -m benchmarks.connections`).", ""])
    found = {t["run"]: t for t in targets(document)}
    measured = figures(document)
    titles = {
        "webhook": ("Webhook delivery", "events/s", BARE_AIOHTTP, WEBHOOK_SHARE, "Tributary"),
        "warehouse": ("Warehouse load", "rows/s", BARE_COPY, WAREHOUSE_SHARE, "Tributary"),
        "ingest": ("Ingest (Client.stream)", "events/s", ALONE, INGEST_SHARE, "3 destinations"),
    }
    panels = [
        charts.RatioPanel(
            title=title,
            unit=unit,
            ours=measured[part][0],
            baseline=measured[part][1],
            baseline_name=baseline,
            target_share=share,
            met=found[part]["met"],
            ours_name=ours,
        )
        for part, (title, unit, baseline, share, ours) in titles.items()
        if part in measured
    ]
    charts.ratio_chart(
        panels, results_dir / CHART, title="Connections against bare clients", subtitle=origin, quick=quick
    )
    text += [
        f"![Connections against bare clients]({CHART})",
        "",
        f"From the {origin}. Every ratio is against a baseline measured in the same run; green: target met, red: "
        "missed, the dotted line marks the target. Everything shares the machine (the server, the sink, "
        "nats-server, PostgreSQL and the clients); cores busy: CPU seconds over wall seconds of each process "
        "during the timed part. `python -m benchmarks.connections` measures it.",
        "",
    ]
    if "webhook" in runs:
        text += _webhook(runs["webhook"]) + _phases(runs["webhook"])
    if "warehouse" in runs:
        text += _warehouse(runs["warehouse"])
    if "ingest" in runs:
        text += _ingest(runs["ingest"])
    return "\n".join(text)
