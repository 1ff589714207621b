"""The Predictions benchmark's data: a year of customers who buy at their own rates, and stop.

Each profile ``u<N>`` has one identify of the Engage workload's 20 traits (dated the day before the
year), then track events over a year that ends at ``now``. A profile arrives at a random time in the
year's first 70 %, is active at a log-normal rate until it leaves (an exponential lifetime of mean
``LIFETIME_DAYS``, so many are gone before ``now``), and buys with its own share of its events
(Beta-distributed, ``Order Completed``): whether it buys in the next 30 days follows from its rates
and whether it is still there, which its past only hints at, as in a real shop. The other events
take the Engage workload's 48 other names by 1/rank (no ``Churned``). Times are whole seconds, sent
in time order, so the log's clock runs through the year and every training cutoff sees the history
before it. The columns are an ``AudienceData`` (with a year, not 90 days), so the Engage workload's
encoders turn them into ``StreamRequest`` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from benchmarks.audience_workload import (
    DAY_S,
    EVENT_NAMES,
    PROPERTY_VARIANTS,
    AudienceData,
    _traits,
    today,
)

DEFAULT_PROFILES = 1_000_000
EVENTS_PER_PROFILE = 10
DEFAULT_SEED = 20_261_202
DAYS = 365
# A profile's first event falls in the year's first ARRIVAL_SHARE.
ARRIVAL_SHARE = 0.7
LIFETIME_DAYS = 240.0
ACTIVITY_SIGMA = 1.0
# Beta(a, b) share of a profile's events that are purchases: mean 1/8.
PURCHASE_SHARE = (2.0, 14.0)


@dataclass(frozen=True)
class PredictionData(AudienceData):
    """``AudienceData`` over a year (its identifies are dated before the year's first event)."""

    @property
    def start_s(self) -> int:
        return self.now_s - DAYS * DAY_S


def _other_name_weights() -> np.ndarray:
    # Names 2.. of EVENT_NAMES (0 is Order Completed, 1 Churned), by 1/rank.
    ranks = 1.0 / np.arange(1, len(EVENT_NAMES) - 1, dtype=np.float64)
    return np.asarray(ranks / ranks.sum(), dtype=np.float64)


def generate(n_profiles: int, n_events: int, seed: int = DEFAULT_SEED, now: datetime | None = None) -> PredictionData:
    """Draws the traits and exactly ``n_events`` track events in the year up to ``now`` (default
    ``today()``), sorted by time; the same seed and ``now`` give the same data."""
    now_s = int((now or today()).timestamp())
    start_s = now_s - DAYS * DAY_S
    rng = np.random.default_rng(seed)
    arrive = start_s + (rng.random(n_profiles) * ARRIVAL_SHARE * DAYS * DAY_S).astype(np.int64)
    leave = np.minimum(arrive + (rng.exponential(LIFETIME_DAYS, n_profiles) * DAY_S).astype(np.int64), now_s)
    span = np.maximum(leave - arrive, DAY_S)
    activity = rng.lognormal(0.0, ACTIVITY_SIGMA, size=n_profiles)
    weights = activity * span
    per_profile = rng.multinomial(n_events, weights / weights.sum())
    user = np.repeat(np.arange(n_profiles, dtype=np.int32), per_profile)
    ts = np.minimum(arrive[user] + (rng.random(n_events) * span[user]).astype(np.int64), now_s - 1)
    buys = rng.beta(*PURCHASE_SHARE, size=n_profiles)
    bought = rng.random(n_events) < buys[user]
    others = 2 + rng.choice(len(EVENT_NAMES) - 2, size=n_events, p=_other_name_weights())
    name = np.where(bought, 0, others).astype(np.uint8)
    variant = rng.integers(0, PROPERTY_VARIANTS, size=n_events, dtype=np.uint8)
    order = np.argsort(ts, kind="stable")
    traits = _traits(rng, n_profiles, start_s)
    return PredictionData(n_profiles, seed, now_s, user[order], name[order], variant[order], ts[order], traits)


def extra_events(data: PredictionData, n_events: int, seed: int) -> PredictionData:
    """``n_events`` more events of the same profiles in the last day before ``now`` (what a day of
    live traffic adds), with names drawn as above; a different ``seed`` gives other message ids."""
    rng = np.random.default_rng([data.seed, seed])
    user = rng.integers(0, data.n_profiles, size=n_events, dtype=np.int32)
    ts = np.sort(rng.integers(data.now_s - DAY_S, data.now_s, size=n_events, dtype=np.int64))
    others = 2 + rng.choice(len(EVENT_NAMES) - 2, size=n_events, p=_other_name_weights())
    name = np.where(rng.random(n_events) < 0.125, 0, others).astype(np.uint8)
    variant = rng.integers(0, PROPERTY_VARIANTS, size=n_events, dtype=np.uint8)
    return PredictionData(data.n_profiles, seed, data.now_s, user, name, variant, ts, data.traits)


def purchased_between(data: PredictionData, start_s: int, end_s: int) -> np.ndarray:
    """Per profile: whether it has an ``Order Completed`` in ``(start_s, end_s]`` (the oracle of
    the label, for the harness test)."""
    chosen = (data.name == 0) & (data.ts > start_s) & (data.ts <= end_s)
    return np.bincount(data.user[chosen], minlength=data.n_profiles) > 0
