"""A prediction's report charts: PNG bytes of its reliability diagram and its cumulative gains.

Drawn from the plain values quality.py computes (calibration_bins, gains_curve), with
``matplotlib.figure.Figure`` on the Agg canvas rather than pyplot: no display, no global backend switch,
nothing left behind. The PNG carries no timestamp or version (metadata {"Software": None}), so the same
values give the same bytes, and a report stored twice does not differ.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
SIZE = (6.4, 4.8)
MODEL_COLOUR = "#1f6feb"
BASELINE_COLOUR = "#9aa0a6"
COUNT_COLOUR = "#c9d1d9"


def _figure(title: str) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    figure.suptitle(title, fontsize=12, fontweight="bold")
    return figure


def _png(figure: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def calibration_png(bins: Sequence[Mapping[str, float]], title: str = "Calibration") -> bytes:
    """Reliability diagram: observed rate against mean predicted probability per bin, the diagonal being
    perfect calibration; the bars behind show how many rows each bin holds (empty bins are skipped)."""
    figure = _figure(title)
    axes = figure.add_subplot()
    counts = axes.twinx()
    filled = [b for b in bins if b["rows"] and not math.isnan(b["mean_predicted"])]
    counts.bar(
        [(b["low"] + b["high"]) / 2 for b in bins],
        [b["rows"] for b in bins],
        width=[(b["high"] - b["low"]) * 0.9 for b in bins],
        color=COUNT_COLOUR,
        label="rows",
    )
    counts.set_ylabel("rows in bin")
    axes.set_zorder(counts.get_zorder() + 1)
    axes.patch.set_visible(False)
    axes.plot([0, 1], [0, 1], linestyle="--", color=BASELINE_COLOUR, label="perfectly calibrated")
    axes.plot(
        [b["mean_predicted"] for b in filled],
        [b["observed_rate"] for b in filled],
        marker="o",
        color=MODEL_COLOUR,
        label="model",
    )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("mean predicted probability")
    axes.set_ylabel("observed rate")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left")
    return _png(figure)


def gains_png(
    curve: Mapping[str, Sequence[float]], baseline_label: str = "random targeting", title: str = "Cumulative gains"
) -> bytes:
    """Cumulative gains: the share of all conversions reached by targeting the best-scored share of
    people, against the diagonal a random order would give."""
    figure = _figure(title)
    axes = figure.add_subplot()
    population = [100 * x for x in curve["population"]]
    axes.plot([0, 100], [0, 100], linestyle="--", color=BASELINE_COLOUR, label=baseline_label)
    axes.plot(population, [100 * y for y in curve["captured"]], color=MODEL_COLOUR, label="model")
    axes.set_xlim(0, 100)
    axes.set_ylim(0, 100)
    axes.set_xlabel("people targeted, best scores first (%)")
    axes.set_ylabel("conversions captured (%)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    return _png(figure)
