"""Predictions against a known truth: "the product's ranking comes close to the true probabilities".

4,000 synthetic people, each with a latent order rate (log-normal: some buy weekly, most a few times a
year) that drives everything they do: orders (with revenue around a mean order value of their own) and
page views (six per order, on average), as Poisson processes over about a year, sent in time order. What
they do in any horizon depends on their rates alone, so their true probability of ordering in the 30 days
after a cutoff is 1 - exp(-30 * rate), of doing nothing at all (churn) exp(-30 * 7 * rate), and their
expected revenue 30 * rate * mean order value. The product, which sees only their events, is measured
against two references on the same rows:

- the oracle: the true probabilities as scores (what no one who sees only behaviour can beat);
- the Bayes posterior: the true probability averaged over what the rate could be given the person's event
  count and exposure (the best anyone seeing their history can do), which the product should nearly reach.

The probabilities the product publishes (calibrated on its validation cutoff) are compared with the truth
too; their error is dominated by that one cutoff's sampling noise (about +-0.01 in its rate), so the
tolerances are a few times that.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from scipy.stats import norm, poisson

from cdp_server import _core
from cdp_server.predictions import quality
from cdp_server.predictions.definitions import Definition, check
from cdp_server.predictions.model import Model
from cdp_server.predictions.pipeline import Predictions, fetch_rows
from tests import prediction_workload as w

SEED = 20240101
PEOPLE = 4_000
HORIZON = 30
PAGE_VIEWS_PER_ORDER = 6.0
# Orders per day: median one per 100 days, log-sd 1 (a 5th-95th percentile of one per 20 to 520 days).
LOG_RATE_MEAN, LOG_RATE_SD = np.log(1 / 100), 1.0
AT = w.day_end(400)


@dataclass
class World:
    engine: _core.Engine
    predictions: Predictions
    events: list[w.Event]
    rate: np.ndarray  # orders per day
    spend: np.ndarray  # mean order value
    joined_ms: np.ndarray
    owners: dict[str, int]  # profile id -> person


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    rng = np.random.default_rng(SEED)
    rate = np.exp(rng.normal(LOG_RATE_MEAN, LOG_RATE_SD, PEOPLE))
    spend = np.exp(rng.normal(np.log(40.0), 0.6, PEOPLE))
    joined = w.START_MS + (rng.random(PEOPLE) * 200 * w.DAY_MS).astype(np.int64)
    events = w.poisson(rng, "Order Completed", rate, joined, AT, revenue=spend)
    events += w.poisson(rng, "Page Viewed", PAGE_VIEWS_PER_ORDER * rate, joined, AT)
    engine = _core.Engine(tmp_path_factory.mktemp("synthetic") / "data", unsafe_no_sync=True, snapshots=False)
    w.send(engine, events)
    yield World(engine, Predictions(engine), events, rate, spend, joined, w.person_of(engine, PEOPLE))
    engine.close()


def publish(world: World, key: str, **fields: Any) -> tuple[Definition, Model, dict[str, Any]]:
    definition = check(Definition(key=key, horizon_days=HORIZON, **fields))
    world.predictions.save(definition)
    outcome = world.predictions.refresh(key, AT)
    assert outcome["state"] == "ready", outcome
    model = world.predictions.published(key)
    report = world.predictions.report(key)
    assert model is not None and report is not None and report["published"] is True
    # Nothing here reads the future or is the label in disguise: no column is refused.
    assert report["refused_columns"] == []
    # The test cutoff's horizon ends at AT: its labels are complete.
    assert report["cutoffs"]["test"] + HORIZON * w.DAY_MS <= AT
    return definition, model, report


@dataclass
class SplitRows:
    people: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    cutoff_ms: int


def split_rows(world: World, definition: Definition, model: Model, report: dict[str, Any]) -> SplitRows:
    """The test cutoff's rows again, the product's predictions on them, and whose they are."""
    cutoff = report["cutoffs"]["test"]
    rows = fetch_rows(world.engine, report["names"], cutoff, label=definition.label())
    assert rows.labels.shape[0] == report["splits"]["test"]["rows"]
    predicted = model.predict(w.columns(rows, model.feature_names))
    return SplitRows(w.rows_people(world.engine, rows, world.owners), rows.labels, predicted, cutoff)


def posterior(world: World, people: np.ndarray, cutoff_ms: int, truth: Any) -> np.ndarray:
    """E[truth(total rate) | the person's event count and exposure at the cutoff], over the prior."""
    total = 1.0 + PAGE_VIEWS_PER_ORDER
    counts = w.counts_before(world.events, PEOPLE, cutoff_ms, {"Order Completed", "Page Viewed"})[people]
    exposure = (cutoff_ms - world.joined_ms[people]) / w.DAY_MS
    grid = np.linspace(-6.0, 6.0, 1_201)
    order_rate = np.exp(LOG_RATE_MEAN + LOG_RATE_SD * grid)
    log_weight = norm.logpdf(grid)[None, :] + poisson.logpmf(
        counts[:, None], total * order_rate[None, :] * exposure[:, None]
    )
    weight = np.exp(log_weight - log_weight.max(axis=1, keepdims=True))
    weight /= weight.sum(axis=1, keepdims=True)
    return np.asarray(weight @ truth(order_rate))


def ece_against_truth(predicted: np.ndarray, truth: np.ndarray, bins: int = 10) -> float:
    """Row-weighted |mean predicted - mean true probability| over equal-width bins of the prediction."""
    index = np.clip(np.floor(predicted * bins).astype(np.int64), 0, bins - 1)
    error = 0.0
    for b in np.unique(index):
        members = index == b
        error += members.sum() * abs(predicted[members].mean() - truth[members].mean())
    return float(error / predicted.shape[0])


def scored(world: World, key: str, trait: str) -> tuple[np.ndarray, np.ndarray]:
    """The people the product scored at AT and the trait it wrote on each."""
    people, values = [], []
    for person, traits in w.traits_of(world.engine, PEOPLE).items():
        if trait in traits:
            people.append(person)
            values.append(float(traits[trait]))
    return np.array(people, dtype=np.int64), np.array(values)


def buying(rate: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 - np.exp(-rate * HORIZON))


def churning(rate: np.ndarray) -> np.ndarray:
    return np.asarray(np.exp(-(1.0 + PAGE_VIEWS_PER_ORDER) * rate * HORIZON))


@pytest.mark.parametrize(
    ("key", "fields", "truth"),
    [
        ("purchase", {"goals": ["event('Order Completed')"]}, buying),
        ("churn", {"goals": ["event('Order Completed')", "event('Page Viewed')"], "churn": True}, churning),
    ],
)
def test_the_ranking_and_probabilities_come_close_to_the_truth(
    world: World, key: str, fields: dict[str, Any], truth: Any
) -> None:
    definition, model, report = publish(world, key, **fields)
    rows = split_rows(world, definition, model, report)
    assert quality.auc(rows.labels, rows.predicted) == pytest.approx(report["test_auc"], abs=1e-12)

    true_probability = truth(world.rate[rows.people])
    product_auc = report["test_auc"]
    oracle_auc = quality.auc(rows.labels, true_probability)
    best = posterior(world, rows.people, rows.cutoff_ms, truth)
    bayes_auc = quality.auc(rows.labels, best)
    print(f"{key}: product AUC {product_auc:.4f}, Bayes given history {bayes_auc:.4f}, oracle {oracle_auc:.4f}")
    assert oracle_auc - product_auc <= 0.03
    assert bayes_auc - product_auc <= 0.015
    # Nobody who sees only the past ranks better than the truth: a product that did read the future.
    assert product_auc <= oracle_auc + 0.01

    # The calibrated probabilities: on the test rows, and as the traits written at AT.
    mean_error = abs(rows.predicted.mean() - true_probability.mean())
    ece = ece_against_truth(rows.predicted, true_probability)
    to_bayes = float(np.mean(np.abs(rows.predicted - best)))
    print(f"{key}: test rows: |mean - truth| {mean_error:.4f}, ECE vs truth {ece:.4f}, MAE vs Bayes {to_bayes:.4f}")
    assert mean_error <= 0.03 and ece <= 0.03 and to_bayes <= 0.05

    people, probabilities = scored(world, key, f"{key}_probability")
    scored_rows = fetch_rows(world.engine, world.predictions.inputs(key)[0], AT)
    assert set(people) == set(w.rows_people(world.engine, scored_rows, world.owners))
    assert people.shape[0] >= 0.95 * PEOPLE
    now_truth = truth(world.rate[people])
    mean_error = abs(probabilities.mean() - now_truth.mean())
    ece = ece_against_truth(probabilities, now_truth)
    print(f"{key}: traits at AT: |mean - truth| {mean_error:.4f}, ECE vs truth {ece:.4f}")
    assert mean_error <= 0.03 and ece <= 0.03


@pytest.fixture(scope="module")
def ltv(world: World) -> tuple[Definition, Model, dict[str, Any]]:
    return publish(world, "ltv", goals=["event('Order Completed')"], ltv=True)


def test_lifetime_value_ranks_the_true_spenders_first(
    world: World, ltv: tuple[Definition, Model, dict[str, Any]]
) -> None:
    definition, model, report = ltv
    assert model.kind == "regression"
    rows = split_rows(world, definition, model, report)
    # The labels are each row's revenue in the horizon after the cutoff.
    revenue: dict[int, float] = {}
    for event in world.events:
        if rows.cutoff_ms < event.ms <= rows.cutoff_ms + HORIZON * w.DAY_MS and event.name == "Order Completed":
            revenue[event.person] = revenue.get(event.person, 0.0) + (event.revenue or 0.0)
    expected_labels = np.array([revenue.get(int(p), 0.0) for p in rows.people])
    np.testing.assert_allclose(rows.labels, expected_labels, rtol=1e-9, atol=1e-6)

    value = world.rate * HORIZON * world.spend
    product = w.spearman(rows.predicted, value[rows.people])
    realized_product = w.spearman(rows.predicted, rows.labels)
    realized_oracle = w.spearman(value[rows.people], rows.labels)
    print(f"ltv: Spearman with the true value {product:.4f}; with the realized {realized_product:.4f}")
    print(f"ltv: the oracle's with the realized {realized_oracle:.4f}")
    assert product >= 0.6
    assert realized_oracle - realized_product <= 0.05

    people, values = scored(world, "ltv", "ltv_value")
    assert people.shape[0] >= 0.95 * PEOPLE
    for traits in w.traits_of(world.engine, PEOPLE).values():
        if "ltv_value" in traits:
            assert "ltv_probability" not in traits and 0 <= traits["ltv_percentile"] < 1
            assert traits["ltv_decile"] in range(1, 11)
    traits_rank = w.spearman(values, value[people])
    print(f"ltv: traits at AT: Spearman with the true value {traits_rank:.4f}")
    assert traits_rank >= 0.6


def test_lifetime_value_is_in_the_right_currency(world: World, ltv: tuple[Definition, Model, dict[str, Any]]) -> None:
    """On average the published values are what the scored people are expected to spend (within 15%),
    as the published probabilities are: both are calibrated on the validation cutoff (a regression by
    one factor, which corrects the overestimate its growing all-time columns cause)."""
    definition, model, report = ltv
    value = world.rate * HORIZON * world.spend
    rows = split_rows(world, definition, model, report)
    people, values = scored(world, "ltv", "ltv_value")
    on_test, at = rows.predicted.mean() / value[rows.people].mean(), values.mean() / value[people].mean()
    print(f"ltv: mean value / true mean: {on_test:.4f} on the test rows, {at:.4f} in the traits at AT")
    assert 0.85 <= on_test <= 1.15 and 0.85 <= at <= 1.15
