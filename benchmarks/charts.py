"""The results page's charts: matplotlib PNGs drawn from plain data (the JSON documents).

Agg backend, and figures made with ``matplotlib.figure.Figure`` rather than pyplot, so nothing
needs a display and no global state is left behind. Every function takes what it draws as
plain values and writes one PNG; the results page decides what goes in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

DPI = 110
BASELINE_COLOUR = "#9aa0a6"
MET_COLOUR = "#2e7d32"
MISSED_COLOUR = "#d84315"
NEUTRAL_COLOUR = "#1f6feb"
CONTEXT_COLOUR = "#7fa7e0"  # a Tributary figure without a target of its own
TARGET_COLOUR = "#555555"
SERIES_COLOURS = ("#1f6feb", "#d84315", "#2e7d32", "#8e24aa")


@dataclass(frozen=True)
class Bar:
    """One path of the throughput chart.

    Attributes:
        label: The path, e.g. "Client.stream(dicts)".
        events_per_s: Its throughput.
        ratio: events/s over raw py-lmdb's, measured in the same run (None for the baseline itself).
        target: The ratio the path must reach, if it has a target.
        met: Whether it does (None: no target).
        baseline: A baseline, drawn grey.
    """

    label: str
    events_per_s: float
    ratio: float | None
    target: float | None = None
    met: bool | None = None
    baseline: bool = False


def _figure(width: float, height: float, title: str, subtitle: str, quick: bool) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    figure.suptitle(title, fontsize=13, fontweight="bold", x=0.01, ha="left")
    if subtitle or quick:
        note = ("QUICK RUN (small event counts): a harness check, not a measurement.  " if quick else "") + subtitle
        # supxlabel, unlike a free text, takes its place in the constrained layout.
        figure.supxlabel(note, fontsize=8, color=MISSED_COLOUR if quick else TARGET_COLOUR, x=0.01, ha="left")
    return figure


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _rate(value: float, _: object = None) -> str:
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def _milliseconds(value: float, _: object = None) -> str:
    # Minor ticks at 2..9 x 10^n: label 2 and 5 only, so that they do not crowd.
    mantissa = value / 10 ** math.floor(math.log10(value)) if value > 0 else 0
    if round(mantissa) not in (1, 2, 5) or abs(mantissa - round(mantissa)) > 1e-6:
        return ""
    return f"{value:g}"


def _bar_colour(bar: Bar | SecondsBar) -> str:
    if bar.baseline:
        return BASELINE_COLOUR
    if bar.met is None:
        return CONTEXT_COLOUR
    return MET_COLOUR if bar.met else MISSED_COLOUR


def throughput_chart(bars: Sequence[Bar], path: Path, *, subtitle: str = "", quick: bool = False) -> Path:
    """Horizontal bars of events/s on a log scale, each labelled with its ratio to raw py-lmdb;
    a path with a target shows it as a tick on its row."""
    figure = _figure(10, 0.62 * len(bars) + 1.6, "Ingest throughput by path (events/s, log scale)", subtitle, quick)
    axes = figure.add_subplot()
    rows = list(reversed(bars))  # the first bar on top
    values = [max(bar.events_per_s, 1.0) for bar in rows]
    raw = next((bar.events_per_s for bar in bars if bar.ratio is None and bar.baseline), None)
    colours = [_bar_colour(bar) for bar in rows]
    axes.barh(range(len(rows)), values, color=colours, height=0.62)
    axes.set_xscale("log")
    targets = [bar.target * raw for bar in rows if bar.target and raw]
    low = min(values + targets) / 4
    high = max(values + targets) * 6
    axes.set_xlim(low, high)
    axes.set_yticks(range(len(rows)), [bar.label for bar in rows])
    axes.xaxis.set_major_formatter(FuncFormatter(_rate))
    axes.grid(axis="x", which="major", alpha=0.3)
    for y, bar in enumerate(rows):
        ratio = f"{bar.ratio:.2f}x raw LMDB" if bar.ratio is not None else "raw LMDB = 1x" if bar.baseline else ""
        # The ratio inside the bar (every bar spans at least a factor 4 of the log axis), the rate after it.
        axes.text(low * 1.15, y, ratio, va="center", fontsize=9, fontweight="bold", color="white")
        axes.text(max(bar.events_per_s, low) * 1.08, y, f"{bar.events_per_s:,.0f}/s", va="center", fontsize=9)
        if bar.target and raw:
            x = bar.target * raw
            axes.plot([x], [y + 0.36], marker="v", color=TARGET_COLOUR, markersize=7)
            axes.plot([x, x], [y - 0.31, y + 0.31], color=TARGET_COLOUR, linestyle=":", linewidth=1.2)
            axes.text(x * 1.06, y + 0.36, f"target {bar.target:g}x", fontsize=7.5, color=TARGET_COLOUR, va="center")
    axes.set_xlabel("events per second (durable: acknowledged after fsync)")
    return _save(figure, path)


def latency_chart(
    samples_ms: Mapping[str, Sequence[float]],
    path: Path,
    *,
    target_ms: float | None = None,
    target_label: str = "",
    subtitle: str = "",
    quick: bool = False,
) -> Path:
    """The distribution (CDF) of per-batch ack latency for each series, log x, p99 marked."""
    figure = _figure(10, 4.6, "Per-batch acknowledgement latency (CDF)", subtitle, quick)
    axes = figure.add_subplot()
    for colour, (label, values) in zip(SERIES_COLOURS, samples_ms.items(), strict=False):
        data = sorted(max(v, 0.01) for v in values)
        if not data:
            continue
        n = len(data)
        axes.step(data, [(i + 1) / n for i in range(n)], where="post", color=colour, linewidth=1.8, label=label)
        p99 = data[max(0, math.ceil(0.99 * n) - 1)]
        p50 = data[max(0, math.ceil(0.50 * n) - 1)]
        axes.plot([p99], [0.99], marker="o", color=colour)
        axes.annotate(
            f"p99 {p99:.1f} ms", (p99, 0.99), textcoords="offset points", xytext=(6, -14), fontsize=8.5, color=colour
        )
        axes.plot([p50], [0.5], marker="o", color=colour, alpha=0.7)
        axes.annotate(
            f"p50 {p50:.1f} ms", (p50, 0.5), textcoords="offset points", xytext=(6, -4), fontsize=8.5, color=colour
        )
    if target_ms is not None:
        axes.axvline(target_ms, color=TARGET_COLOUR, linestyle="--", linewidth=1.2)
        label = target_label or f"target {target_ms:g} ms"
        box = {"facecolor": "white", "edgecolor": "none", "alpha": 0.85}
        axes.text(target_ms * 0.96, 0.05, label, fontsize=8.5, color=TARGET_COLOUR, ha="right", bbox=box)
    axes.axhline(0.99, color=TARGET_COLOUR, linewidth=0.6, alpha=0.5)
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(FuncFormatter(_milliseconds))
    axes.xaxis.set_minor_formatter(FuncFormatter(_milliseconds))
    axes.tick_params(axis="x", which="minor", labelsize=7)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("ms from handing a batch to gRPC to its ack (log scale)")
    axes.set_ylabel("share of batches")
    axes.grid(alpha=0.3, which="both")
    axes.legend(loc="upper left", fontsize=9)
    return _save(figure, path)


def startup_chart(
    sizes: Sequence[int],
    seconds: Mapping[str, Sequence[float]],
    path: Path,
    *,
    target_s: float | None = None,
    target_events: int | None = None,
    extrapolated_s: float | None = None,
    subtitle: str = "",
    quick: bool = False,
) -> Path:
    """Seconds to SERVING against events stored, one line per kind of start; the target, and
    the linear extrapolation to it, dashed."""
    figure = _figure(10, 4.6, "Start-up time to SERVING against events stored", subtitle, quick)
    axes = figure.add_subplot()
    for colour, (label, values) in zip(SERIES_COLOURS, seconds.items(), strict=False):
        axes.plot(sizes, values, marker="o", color=colour, label=label, linewidth=1.8)
    for i, x in enumerate(sizes):  # the slowest start of each size, labelled
        slowest = max(values[i] for values in seconds.values() if len(values) > i)
        axes.annotate(f"{slowest:.2f} s", (x, slowest), textcoords="offset points", xytext=(4, 6), fontsize=8)
    if extrapolated_s is not None and target_events and sizes:
        worst = max(values[-1] for values in seconds.values() if values)
        axes.plot([sizes[-1], target_events], [worst, extrapolated_s], linestyle=":", color=MISSED_COLOUR)
        axes.plot([target_events], [extrapolated_s], marker="x", color=MISSED_COLOUR)
        axes.annotate(
            f"{extrapolated_s:.1f} s (extrapolated)",
            (target_events, extrapolated_s),
            textcoords="offset points",
            xytext=(-100, 6),
            fontsize=8.5,
            color=MISSED_COLOUR,
        )
    if target_s is not None:
        label = f"target ≤ {target_s:g} s" + (f" at {target_events / 1e6:g}M events" if target_events else "")
        axes.axhline(target_s, color=TARGET_COLOUR, linestyle="--", linewidth=1.2, label=label)
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(FuncFormatter(_rate))
    axes.set_xlabel("events in the log (log scale)")
    axes.set_ylabel("seconds from process start to SERVING")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=9, loc="upper left")
    return _save(figure, path)


def memory_chart(
    rss: Sequence[Sequence[int]],
    path: Path,
    *,
    target_bytes_per_event: float | None = None,
    subtitle: str = "",
    quick: bool = False,
) -> Path:
    """The server's RssAnon against events stored (left) and its growth per stored event (right)."""
    figure = _figure(11, 4.4, "Server resident memory (RssAnon) while storing the identity workload", subtitle, quick)
    left, right = figure.subplots(1, 2)
    events = [int(e) for e, _ in rss]
    mib = [r / 2**20 for _, r in rss]
    left.plot(events, mib, marker=".", color=NEUTRAL_COLOUR, linewidth=1.8, label="RssAnon")
    if target_bytes_per_event is not None and rss:
        budget = [(rss[0][1] + target_bytes_per_event * (e - events[0])) / 2**20 for e in events]
        label = f"{target_bytes_per_event:g} B/event budget"
        left.plot(events, budget, linestyle="--", color=TARGET_COLOUR, label=label)
    left.set_xlabel("events stored")
    left.set_ylabel("MiB")
    left.xaxis.set_major_formatter(FuncFormatter(_rate))
    left.grid(alpha=0.3)
    left.legend(fontsize=9)
    growth = [(e, (r - rss[0][1]) / (e - events[0])) for e, r in rss[1:] if e > events[0]] if rss else []
    if growth:
        per_event = [g for _, g in growth]
        missed = target_bytes_per_event is not None and per_event[-1] > target_bytes_per_event
        right.plot([e for e, _ in growth], per_event, marker=".", color=MISSED_COLOUR if missed else MET_COLOUR)
        right.annotate(
            f"{per_event[-1]:,.0f} B/event",
            growth[-1],
            textcoords="offset points",
            xytext=(-70, 8),
            fontsize=9,
            fontweight="bold",
        )
    if target_bytes_per_event is not None:
        right.axhline(target_bytes_per_event, color=TARGET_COLOUR, linestyle="--", label="target")
        right.legend(fontsize=9)
    right.set_xlabel("events stored")
    right.set_ylabel("growth since start / events stored (bytes)")
    right.xaxis.set_major_formatter(FuncFormatter(_rate))
    right.set_ylim(bottom=0)
    right.grid(alpha=0.3)
    return _save(figure, path)


def resolution_chart(
    seconds: Mapping[str, float],
    path: Path,
    *,
    engine: str,
    targets: Mapping[str, float],
    title: str = "Identity resolution of the same graph (seconds, lower is better)",
    subtitle: str = "",
    quick: bool = False,
) -> Path:
    """Seconds per system; each baseline's bar says how many times faster the engine is, and
    what the target asks."""
    figure = _figure(10, 0.7 * len(seconds) + 1.6, title, subtitle, quick)
    axes = figure.add_subplot()
    labels = list(reversed(list(seconds)))
    values = [seconds[label] for label in labels]
    engine_s = seconds[engine]
    colours = []
    for label in labels:
        if label == engine:
            met = all(seconds[base] / engine_s >= factor for base, factor in targets.items() if base in seconds)
            colours.append(MET_COLOUR if met else MISSED_COLOUR)
        else:
            colours.append(BASELINE_COLOUR)
    axes.barh(range(len(labels)), values, color=colours, height=0.6)
    axes.set_yticks(range(len(labels)), labels)
    for y, label in enumerate(labels):
        text = f"{seconds[label]:.2f} s"
        if label != engine and engine_s > 0:
            text += f"  ·  Tributary at {seconds[label] / engine_s:.2f}x its speed"
            if label in targets:
                text += f" (target ≥ {targets[label]:g}x)"
        axes.text(seconds[label] * 1.01 + max(values) * 0.01, y, text, va="center", fontsize=9, fontweight="bold")
    axes.set_xlim(0, max(values) * 1.75)
    axes.set_xlabel("seconds from the edge list (or the events) to the components")
    axes.grid(axis="x", alpha=0.3)
    return _save(figure, path)


@dataclass(frozen=True)
class HttpPanel:
    """One request of the HTTP chart: Tributary's rate against the baseline's.

    Attributes:
        title: The request, e.g. "POST /v1/batch".
        unit: What the rates count, e.g. "events/s".
        tributary: Tributary's rate.
        baseline: The baseline's rate, measured in the same run.
        p99_ms: (Tributary's, the baseline's) p99 request latency.
        target_share: The share of the baseline's rate Tributary must reach.
        met: Whether every target of this request is met.
        p99_target_ms: The bound on Tributary's p99, if it has one.
    """

    title: str
    unit: str
    tributary: float
    baseline: float
    p99_ms: tuple[float, float]
    target_share: float
    met: bool | None
    p99_target_ms: float | None = None


def http_chart(
    panels: Sequence[HttpPanel], path: Path, *, baseline: str, subtitle: str = "", quick: bool = False
) -> Path:
    """One panel per request: the baseline's and Tributary's rate as bars, each labelled with its
    rate and p99 latency, the target as a dotted line at its share of the baseline's rate."""
    figure = _figure(5 * len(panels) + 1, 3.4, "HTTP port against a do-nothing aiohttp handler", subtitle, quick)
    axes_list = figure.subplots(1, len(panels), squeeze=False)[0]
    for axes, panel in zip(axes_list, panels, strict=True):
        values = [panel.baseline, panel.tributary]
        colours = [BASELINE_COLOUR, CONTEXT_COLOUR if panel.met is None else MET_COLOUR if panel.met else MISSED_COLOUR]
        axes.barh([1, 0], values, color=colours, height=0.6)
        axes.set_yticks([1, 0], [baseline, "Tributary"])
        top = max([*values, panel.target_share * panel.baseline]) * 1.6
        axes.set_xlim(0, top)
        bound = f", target ≤ {panel.p99_target_ms:g} ms" if panel.p99_target_ms is not None else ""
        for y, value, p99, note in (
            (1, panel.baseline, panel.p99_ms[1], ""),
            (0, panel.tributary, panel.p99_ms[0], bound),
        ):
            label = f"{value:,.0f}/s\np99 {p99:.1f} ms{note}"
            axes.text(value + top * 0.01, y, label, va="center", fontsize=8.5)
        _target_and_ratio(axes, panel.title, panel.unit, panel.tributary, panel.baseline, panel.target_share)
    return _save(figure, path)


def _target_and_ratio(axes: Axes, title: str, unit: str, ours: float, baseline: float, target_share: float) -> None:
    """A rate panel's target (a dotted line at its share of the baseline), its title with the
    ratio, and its axis."""
    target = target_share * baseline
    axes.axvline(target, color=TARGET_COLOUR, linestyle=":", linewidth=1.2)
    axes.text(target, 1.45, f"target {target_share:g}x", fontsize=8, color=TARGET_COLOUR, ha="center")
    ratio = ours / baseline if baseline else 0.0
    axes.set_title(f"{title}: {ratio:.2f}x", fontsize=10, loc="left")
    axes.xaxis.set_major_formatter(FuncFormatter(_rate))
    axes.set_xlabel(unit)
    axes.set_ylim(-0.6, 1.7)
    axes.grid(axis="x", alpha=0.3)


@dataclass(frozen=True)
class RatioPanel:
    """One figure of a chart of rates against their baselines, each its own panel.

    Attributes:
        title: The figure, e.g. "Webhook delivery".
        unit: What the rates count, e.g. "events/s".
        ours: Tributary's rate.
        baseline: The baseline's rate, measured in the same run.
        baseline_name: The baseline, e.g. "bare aiohttp client".
        target_share: The share of the baseline's rate Tributary must reach.
        met: Whether it does (None: not measured).
        ours_name: Tributary's bar's label.
    """

    title: str
    unit: str
    ours: float
    baseline: float
    baseline_name: str
    target_share: float
    met: bool | None
    ours_name: str = "Tributary"


def ratio_chart(
    panels: Sequence[RatioPanel], path: Path, *, title: str, subtitle: str = "", quick: bool = False
) -> Path:
    """One panel per figure: the baseline's and Tributary's rate as bars, each labelled with its
    rate, the target as a dotted line at its share of the baseline's rate, the ratio in the title."""
    figure = _figure(4.6 * len(panels) + 1, 3.2, title, subtitle, quick)
    axes_list = figure.subplots(1, len(panels), squeeze=False)[0]
    for axes, panel in zip(axes_list, panels, strict=True):
        values = [panel.baseline, panel.ours]
        colours = [BASELINE_COLOUR, CONTEXT_COLOUR if panel.met is None else MET_COLOUR if panel.met else MISSED_COLOUR]
        axes.barh([1, 0], values, color=colours, height=0.6)
        axes.set_yticks([1, 0], [panel.baseline_name, panel.ours_name], fontsize=8.5)
        top = max([*values, panel.target_share * panel.baseline]) * 1.45
        axes.set_xlim(0, top)
        for y, value in ((1, panel.baseline), (0, panel.ours)):
            axes.text(value + top * 0.01, y, f"{value:,.0f}/s", va="center", fontsize=8.5)
        _target_and_ratio(axes, panel.title, panel.unit, panel.ours, panel.baseline, panel.target_share)
    return _save(figure, path)


@dataclass(frozen=True)
class SecondsBar:
    """One row of a chart of durations against a bound.

    Attributes:
        label: What took that long, e.g. "engine, median of 5 deletions".
        seconds: How long.
        met: Whether it is within the bound (None: a figure shown for context).
        baseline: A baseline, drawn grey.
    """

    label: str
    seconds: float
    met: bool | None = None
    baseline: bool = False


def seconds_chart(
    bars: Sequence[SecondsBar],
    path: Path,
    *,
    title: str,
    target_s: float,
    xlabel: str,
    subtitle: str = "",
    quick: bool = False,
) -> Path:
    """Horizontal bars of seconds on a log scale (a baseline can be orders of magnitude longer),
    each labelled, the bound as a dotted line."""
    figure = _figure(10, 0.55 * len(bars) + 1.7, title, subtitle, quick)
    axes = figure.add_subplot()
    rows = list(reversed(bars))  # the first bar on top
    values = [max(bar.seconds, 1e-4) for bar in rows]
    colours = [_bar_colour(bar) for bar in rows]
    axes.barh(range(len(rows)), values, color=colours, height=0.6)
    axes.set_xscale("log")
    axes.set_xlim(min([*values, target_s]) / 3, max([*values, target_s]) * 3)
    axes.set_ylim(-1.0, len(rows) - 0.5)  # room for the target's label under the bars
    axes.set_yticks(range(len(rows)), [bar.label for bar in rows], fontsize=9)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    for y, value in enumerate(values):
        axes.text(value * 1.08, y, f"{value:.3f} s" if value < 10 else f"{value:.1f} s", va="center", fontsize=9)
    axes.axvline(target_s, color=TARGET_COLOUR, linestyle=":", linewidth=1.2)
    axes.text(target_s * 1.04, -0.75, f"target ≤ {target_s:g} s", fontsize=8, color=TARGET_COLOUR)
    axes.set_xlabel(xlabel)
    axes.grid(axis="x", which="major", alpha=0.3)
    return _save(figure, path)
