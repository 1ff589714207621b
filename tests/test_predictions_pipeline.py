"""The Predictions pipeline (cdp_server.predictions.pipeline) on a real engine: the leak guards, the
publishing gates, populations, filtered goals, explanations and backtests.

One synthetic world of 2,000 people serves most tests (each its own prediction key): latent order
rates drive orders and page views (Poisson processes, so the future depends on the rates, never on the
realised past), plus events built for one test each (a renewal whose best customers stop after AT, a
survey answered at random, a rare upgrade), all sent in time order and running 40 days past AT so that
scores made at AT can be backtested.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from tributary._proto.cdp.v1 import audience_pb2

from cdp_server import _core
from cdp_server.predictions import pipeline, quality
from cdp_server.predictions.definitions import Definition, check
from cdp_server.predictions.pipeline import BACKTEST_DROP, TARGET_LEAK_AUC, NotReady, Predictions, alone_auc, fetch_rows
from tests import prediction_workload as w

SEED = 7_2024
PEOPLE = 2_000
HORIZON = 30
AT = w.day_end(330)
END = AT + 40 * w.DAY_MS
PRO_SHARE = 0.5
UPGRADERS = 40
ORDER = "event('Order Completed')"


@dataclass
class World:
    engine: _core.Engine
    events: list[w.Event]
    rate: np.ndarray  # orders per day
    renewal: np.ndarray  # renewals per day, until AT
    pro: np.ndarray  # bool: trait plan = pro
    owners: dict[str, int]

    def predictions(self, **kwargs: Any) -> Predictions:
        return Predictions(self.engine, **kwargs)


def lognormal_rates(rng: np.random.Generator, per_days: float, sd: float) -> np.ndarray:
    return np.exp(rng.normal(np.log(1 / per_days), sd, PEOPLE))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    rng = np.random.default_rng(SEED)
    rate = lognormal_rates(rng, 60, 0.9)
    renewal = lognormal_rates(rng, 60, 0.9)
    spend = np.exp(rng.normal(np.log(40.0), 0.6, PEOPLE))
    joined = w.START_MS + 1_000 + (rng.random(PEOPLE) * 150 * w.DAY_MS).astype(np.int64)
    events = w.poisson(rng, "Order Completed", rate, joined, END, revenue=spend)
    events += w.poisson(rng, "Page Viewed", 3 * rate, joined, END)
    # The backtest's departure: after AT, the half who renewed most stop; the rest go on as before.
    events += w.poisson(rng, "Plan Renewed", renewal, joined, AT)
    after = np.where(renewal > np.median(renewal), 0.0, renewal)
    events += w.poisson(rng, "Plan Renewed", after, AT, END)
    # The same chance for everyone, whatever they did: nothing to predict.
    events += w.poisson(rng, "Survey Answered", np.full(PEOPLE, 1 / 100), joined, END)
    # Rare: too few positives to train on.
    upgraders = rng.choice(PEOPLE, UPGRADERS, replace=False)
    events += [w.Event(int(joined[p] + rng.random() * (AT - joined[p])), int(p), "Plan Upgraded") for p in upgraders]
    pro = rng.random(PEOPLE) < PRO_SHARE
    engine = _core.Engine(tmp_path_factory.mktemp("pipeline") / "data", unsafe_no_sync=True, snapshots=False)
    w.identify(engine, {p: {"plan": "pro" if pro[p] else "free"} for p in range(PEOPLE)}, w.START_MS)
    w.send(engine, events)
    yield World(engine, events, rate, renewal, pro, w.person_of(engine, PEOPLE))
    engine.close()


def define(predictions: Predictions, key: str, goals: list[str], **fields: Any) -> Definition:
    definition = check(Definition(key=key, goals=goals, horizon_days=HORIZON, **fields))
    predictions.save(definition)
    return definition


def refreshed(predictions: Predictions, key: str, at_ms: int = AT, **kwargs: Any) -> dict[str, Any]:
    outcome = predictions.refresh(key, at_ms, **kwargs)
    definition = predictions.get(key)
    assert definition is not None
    assert (outcome["state"], outcome["reason"]) == (definition.state, definition.reason)
    return outcome


def report_of(predictions: Predictions, key: str) -> dict[str, Any]:
    report = predictions.report(key)
    assert report is not None
    return report


# --- the leak guards ------------------------------------------------------------------------------


def test_the_leak_guard_refuses_the_column_that_reads_past_the_cutoff(world: World) -> None:
    predictions = world.predictions(probe_leak=True)
    define(predictions, "leaky", [ORDER])
    assert refreshed(predictions, "leaky")["state"] == "ready"
    report = report_of(predictions, "leaky")
    model = predictions.published("leaky")
    assert model is not None and report["published"] is True

    probes = [f"{name}.leak_after_cutoff" for name in report["names"]]
    assert len(probes) >= 4
    assert set(probes) <= set(report["refused_columns"]), report["refused_columns"]
    assert not [c for c in model.feature_names if c.endswith(".leak_after_cutoff")]
    assert report["feature_names"] == model.feature_names

    # It is the engine's audit that finds them, on the test cutoff's rows, and nothing else of theirs.
    test = fetch_rows(world.engine, report["names"], report["cutoffs"]["test"], audit=True, probe_leak=True)
    assert sorted(test.leaky) == sorted(probes)
    honest = fetch_rows(world.engine, report["names"], report["cutoffs"]["test"], audit=True)
    assert honest.leaky == [] and len(honest.columns) == len(test.columns) - len(probes)

    # Without the probe, the same definition refuses nothing and reads the same honest columns.
    plain = world.predictions()
    define(plain, "unleaky", [ORDER])
    assert refreshed(plain, "unleaky")["state"] == "ready"
    assert report_of(plain, "unleaky")["refused_columns"] == []
    unleaky = plain.published("unleaky")
    assert unleaky is not None and unleaky.feature_names == model.feature_names


@dataclass
class Disguise:
    engine: _core.Engine
    definition: Definition
    report: dict[str, Any]
    feature_names: list[str]
    cutoffs: list[int]


@pytest.fixture(scope="module")
def disguise(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Disguise]:
    """A shop whose system sends "Cart Reminder Sent" at noon of each day the model cuts at, to exactly
    the people who will order in the next 30 days (say, because it knows their scheduled deliveries):
    known at the cutoff, so no leak by the clock, but the label itself."""
    rng = np.random.default_rng(SEED + 1)
    people, at = 1_500, w.day_end(330)
    rate = lognormal_rates(rng, 60, 0.9)[:people]
    joined = w.START_MS + 1_000 + (rng.random(people) * 100 * w.DAY_MS).astype(np.int64)
    events = w.poisson(rng, "Order Completed", rate, joined, at)
    events += w.poisson(rng, "Page Viewed", 3 * rate, joined, at)
    test_cut = at - HORIZON * w.DAY_MS
    cutoffs = [test_cut - k * HORIZON * w.DAY_MS for k in range(8)]
    for cut in cutoffs:
        buyers = w.counts_between(events, people, cut, cut + HORIZON * w.DAY_MS, {"Order Completed"})
        events += [w.Event(cut - 12 * 3_600_000, int(p), "Cart Reminder Sent") for p in np.flatnonzero(buyers)]
    engine = _core.Engine(tmp_path_factory.mktemp("disguise") / "data", unsafe_no_sync=True, snapshots=False)
    w.send(engine, events)
    predictions = Predictions(engine)
    definition = define(predictions, "buy", [ORDER])
    assert refreshed(predictions, "buy", at)["state"] == "ready"
    model = predictions.published("buy")
    assert model is not None
    yield Disguise(engine, definition, report_of(predictions, "buy"), model.feature_names, cutoffs)
    engine.close()


def test_the_target_leak_check_refuses_a_column_that_is_the_label_in_disguise(disguise: Disguise) -> None:
    report = disguise.report
    test_cut = report["cutoffs"]["test"]
    assert test_cut == disguise.cutoffs[0] and set(report["cutoffs"]["train"]) <= set(disguise.cutoffs)
    refused = report["refused_columns"]
    print("refused:", refused)
    # The counts that hold the buyers at their top, and the recency that holds them at one value
    # between "never" (missing) and "a month ago or more".
    disguised = {f"Cart Reminder Sent.{c}" for c in ("count_7d", "count_30d", "week_0", "days_since_last")}
    assert disguised <= set(refused), refused
    assert not [c for c in refused if c.startswith(("Order Completed.", "Page Viewed."))], refused
    assert not set(refused) & set(disguise.feature_names)
    # The clock's guard has nothing to say (all was known at the cutoff); on the test split the
    # columns are the label again.
    test = fetch_rows(disguise.engine, report["names"], test_cut, label=disguise.definition.label(), audit=True)
    assert test.leaky == []
    for column in disguised:
        assert alone_auc(test.features[:, test.columns.index(column)], test.labels) == 1.0


@pytest.mark.xfail(
    strict=True,
    reason="the target-leak check judges single columns: the disguise is also spread over the event's "
    "other columns (its 90-day count, first use, weekly counts), which together rebuild the label",
)
def test_a_model_is_not_published_on_the_label_in_disguise(disguise: Disguise) -> None:
    """What the orders alone can tell (a test AUC about 0.75), not the reminders' near-perfect one."""
    print(f"test AUC with the disguise's other columns: {disguise.report['test_auc']:.4f}")
    assert disguise.report["test_auc"] < 0.9


def test_a_single_column_is_judged_by_its_bins_not_its_order() -> None:
    rng = np.random.default_rng(SEED)
    labels = (rng.random(6_000) < 0.3).astype(np.float64)
    # Days since a reminder: the positives got one half a day ago; the others never (missing) or long ago.
    recency = np.where(labels > 0, 0.5, np.where(rng.random(6_000) < 0.5, np.nan, 30.5 + 300 * rng.random(6_000)))
    raw = quality.auc(labels, np.nan_to_num(recency, nan=-1.0))
    assert max(raw, 1 - raw) < 0.9 <= TARGET_LEAK_AUC <= alone_auc(recency, labels) == 1.0
    # A column with nothing to say, or a strong but honest one, stays far below.
    assert alone_auc(rng.random(6_000), labels) < 0.6
    honest = labels + rng.normal(0.0, 0.8, 6_000)
    assert 0.75 < alone_auc(honest, labels) < TARGET_LEAK_AUC
    assert alone_auc(-honest, labels) == pytest.approx(alone_auc(honest, labels))


# --- the publishing gates ---------------------------------------------------------------------------


def assert_not_ready(predictions: Predictions, key: str, at_ms: int, naming: str) -> dict[str, Any]:
    outcome = refreshed(predictions, key, at_ms)
    assert outcome["state"] == "not_ready" and naming in outcome["reason"], outcome
    assert "scores" not in outcome
    assert predictions.published(key) is None
    assert predictions.records_of(key) and not [k for k, _ in predictions.records_of(key) if "/snapshot/" in k]
    report = report_of(predictions, key)
    assert report["published"] is False and report["reason"] == outcome["reason"]
    return report


def test_too_few_positives_is_not_ready_naming_them(world: World) -> None:
    predictions = world.predictions()
    define(predictions, "upgrade", ["event('Plan Upgraded')"])
    report = assert_not_ready(predictions, "upgrade", AT, "positive")
    examples = report["training_examples"]
    print(f"upgrade: {report['reason']}")
    assert 0 < examples["positives"] < 100 <= examples["negatives"]
    assert f"has {examples['positives']} and {examples['negatives']}" in report["reason"]
    # Enough history: it is the positives that stop it.
    assert report["history_days"] >= 3 * HORIZON


def test_a_goal_drawn_at_random_is_not_ready_naming_the_auc(world: World) -> None:
    predictions = world.predictions()
    define(predictions, "survey", ["event('Survey Answered')"])
    report = assert_not_ready(predictions, "survey", AT, "AUC")
    print(f"survey: {report['reason']}")
    assert report["training_examples"]["positives"] >= 100 and report["training_examples"]["negatives"] >= 100
    assert abs(report["test_auc"] - 0.5) < 0.1 and f"{report['test_auc']:.3f}" in report["reason"]


def test_history_short_of_three_horizons_is_not_ready_and_enough_passes(world: World) -> None:
    predictions = world.predictions()
    define(predictions, "early", [ORDER])
    # At day 80 the log holds 80 days of history (events after it are not known at its cutoffs).
    report = assert_not_ready(predictions, "early", w.day_end(80), "history")
    print(f"early: {report['reason']}")
    assert report["history_days"] < 3 * HORIZON
    outcome = refreshed(predictions, "early", AT)
    assert outcome["state"] == "ready" and outcome["reason"] == "", outcome
    assert report_of(predictions, "early")["published"] is True and predictions.published("early") is not None
    definition = predictions.get("early")
    assert definition is not None and definition.version == 1 and definition.trained_ms == AT


# --- what is trained on and scored -------------------------------------------------------------------


def test_a_population_trains_and_scores_only_its_members(world: World) -> None:
    request = audience_pb2.CreateAudienceRequest(
        key="pro_users", query="trait('plan') = 'pro'", type=audience_pb2.DEFINITION_TYPE_AUDIENCE
    )
    world.engine.create_audience(request.SerializeToString())
    predictions = world.predictions()
    definition = define(predictions, "pro_buy", [ORDER], population="pro_users")
    assert refreshed(predictions, "pro_buy")["state"] == "ready"
    report = report_of(predictions, "pro_buy")

    # Every split holds exactly the members among the rows of its cutoff.
    names = report["names"]
    cutoffs = [("test", report["cutoffs"]["test"]), ("validation", report["cutoffs"]["validation"])]
    for split, cutoff in cutoffs:
        everyone = w.rows_people(world.engine, fetch_rows(world.engine, names, cutoff), world.owners)
        assert report["splits"][split]["rows"] == int(world.pro[everyone].sum())
        members = fetch_rows(world.engine, names, cutoff, label=definition.label(), population="pro_users")
        assert world.pro[w.rows_people(world.engine, members, world.owners)].all()
    trained_rows = sum(
        int(world.pro[w.rows_people(world.engine, fetch_rows(world.engine, names, cut), world.owners)].sum())
        for cut in report["cutoffs"]["train"]
    )
    assert report["training_examples"]["rows"] == trained_rows

    traits = w.traits_of(world.engine, PEOPLE)
    scored = {p for p, t in traits.items() if "pro_buy_probability" in t}
    assert scored == {p for p in traits if world.pro[p]}
    assert not [p for p, t in traits.items() if not world.pro[p] and any(k.startswith("pro_buy_") for k in t)]

    # Nor is anyone outside it explained: the prediction has no score for them.
    member = min(scored)
    outsider = min(p for p in traits if not world.pro[p])
    assert predictions.explain("pro_buy", f"user_id:{w.user_id(member)}", AT)["score"] == pytest.approx(
        traits[member]["pro_buy_probability"], abs=5e-5
    )
    with pytest.raises(LookupError, match="population"):
        predictions.explain("pro_buy", f"user_id:{w.user_id(outsider)}", AT)


def test_a_filtered_goal_labels_only_the_events_that_pass_the_filter(world: World) -> None:
    goal = "event('Order Completed').where(property('revenue') > 50)"
    predictions = world.predictions()
    definition = define(predictions, "big_order", [goal])
    assert definition.goal_names() == ["Order Completed"]
    assert refreshed(predictions, "big_order")["state"] == "ready"
    report = report_of(predictions, "big_order")

    orders = [e for e in world.events if e.name == "Order Completed"]
    big = [e for e in orders if (e.revenue or 0) > 50]
    assert 0.2 * len(orders) < len(big) < 0.8 * len(orders)
    unfiltered = check(Definition(key="any_order", goals=[ORDER], horizon_days=HORIZON)).label()
    for cutoff in [report["cutoffs"]["test"], report["cutoffs"]["validation"], *report["cutoffs"]["train"][:2]]:
        rows = fetch_rows(world.engine, report["names"], cutoff, label=definition.label())
        people = w.rows_people(world.engine, rows, world.owners)
        expected = w.counts_between(big, PEOPLE, cutoff, cutoff + HORIZON * w.DAY_MS, {"Order Completed"})[people]
        np.testing.assert_array_equal(rows.labels, (expected > 0).astype(np.float64))
        every = fetch_rows(world.engine, report["names"], cutoff, label=unfiltered)
        assert every.labels.sum() > rows.labels.sum()
    assert report["splits"]["test"]["positives"] == int(
        fetch_rows(world.engine, report["names"], report["cutoffs"]["test"], label=definition.label()).labels.sum()
    )


# --- explanations ----------------------------------------------------------------------------------------


def test_an_explanation_is_the_five_strongest_contributions_that_add_up_to_the_raw_score(world: World) -> None:
    predictions = world.predictions()
    define(predictions, "explained", [ORDER])
    assert refreshed(predictions, "explained")["state"] == "ready"
    model = predictions.published("explained")
    assert model is not None
    traits = w.traits_of(world.engine, PEOPLE)
    by_score = sorted((t["explained_probability"], p) for p, t in traits.items() if "explained_probability" in t)
    chosen = [by_score[0][1], by_score[len(by_score) // 2][1], by_score[-1][1]]
    for person in chosen:
        profile = f"user_id:{w.user_id(person)}"
        explained = predictions.explain("explained", profile, AT)
        contributions = explained["contributions"]
        assert len(contributions) == 5
        magnitudes = [abs(c["contribution"]) for c in contributions]
        assert magnitudes == sorted(magnitudes, reverse=True)
        assert explained["score"] == pytest.approx(traits[person]["explained_probability"], abs=5e-5)

        row = fetch_rows(world.engine, predictions.inputs("explained")[0], AT, profiles=[profile])
        features = w.columns(row, model.feature_names)
        full = model.explain(features, top=len(model.feature_names))
        assert explained["raw_score"] == pytest.approx(float(model.raw(features)[0]), rel=1e-9)
        assert explained["expected_value"] == pytest.approx(full.expected_value, rel=1e-9)
        assert full.expected_value + float(full.total[0]) == pytest.approx(explained["raw_score"], abs=1e-6)
        assert full.expected_value + float(full.contributions[0].sum()) == pytest.approx(
            explained["raw_score"], abs=1e-6
        )
        for given, index, value in zip(contributions, full.features[0][:5], full.contributions[0][:5], strict=True):
            assert given["feature"] == model.feature_names[int(index)]
            assert given["contribution"] == pytest.approx(float(value), rel=1e-9)
            assert given["value"] == pytest.approx(float(features[0, int(index)]), nan_ok=True)
    with pytest.raises(LookupError):
        predictions.explain("explained", "user_id:nobody", AT)
    with pytest.raises(KeyError):
        predictions.explain("no_such_prediction", f"user_id:{w.user_id(chosen[0])}", AT)
    define(predictions, "unpublished", ["event('Plan Upgraded')"])
    with pytest.raises(NotReady):
        predictions.explain("unpublished", f"user_id:{w.user_id(chosen[0])}", AT)


# --- backtests ---------------------------------------------------------------------------------------------


def snapshot_of(predictions: Predictions, key: str, scored_ms: int) -> dict[str, np.ndarray]:
    """What the scoring at `scored_ms` kept for its backtest."""
    data = predictions.record(key, f"snapshot/{scored_ms:016d}")
    assert data is not None
    with np.load(io.BytesIO(data), allow_pickle=False) as snapshot:
        return {name: snapshot[name] for name in snapshot.files}


def validation_auc(report: dict[str, Any]) -> float:
    return float(report["candidates"][report["winner"]]["validation"]["auc"])


@pytest.mark.parametrize(
    ("key", "goal", "departs"),
    [("orders", ORDER, False), ("renewals", "event('Plan Renewed')", True)],
)
def test_a_backtest_measures_the_kept_scores_once_the_horizon_has_passed(
    world: World, key: str, goal: str, departs: bool
) -> None:
    predictions = world.predictions()
    definition = define(predictions, key, [goal])
    outcome = refreshed(predictions, key)
    assert outcome["state"] == "ready" and outcome["backtests"] == []
    report = report_of(predictions, key)
    snapshot = snapshot_of(predictions, key, AT)
    assert int(snapshot["at_ms"][0]) == AT and snapshot["ids"].shape[0] == 2 * outcome["scores"]["profiles"]
    assert int(snapshot["version"][0]) == 1

    # Not before the horizon has passed; then once.
    definition = predictions.get(key) or definition
    assert predictions.backtest_due(definition, AT + HORIZON * w.DAY_MS - 1) == []
    later = AT + HORIZON * w.DAY_MS + w.DAY_MS
    (backtest,) = predictions.backtest_due(definition, later)
    assert predictions.backtest_due(definition, later) == []
    assert json.loads(predictions.record(key, f"backtest/{AT:016d}") or b"") == backtest
    assert backtest["version"] == 1 and backtest["scored_ms"] == AT
    assert backtest["rows"] == outcome["scores"]["profiles"]
    assert backtest["validation_auc"] == validation_auc(report)

    # The realized AUC is the kept scores' against what happened in the horizon after AT.
    realized = fetch_rows(world.engine, predictions.inputs(key)[0], AT, label=definition.label())
    happened = dict(zip(world.engine.profile_ids(realized.ids.tobytes()), realized.labels, strict=True))
    kept = world.engine.profile_ids(snapshot["ids"].tobytes())
    assert set(kept) <= set(happened)
    labels = np.array([happened[profile] for profile in kept])
    assert backtest["realized_auc"] == pytest.approx(quality.auc(labels, snapshot["predicted"]), abs=1e-12)

    print(f"{key}: validation AUC {backtest['validation_auc']:.4f}, realized {backtest['realized_auc']:.4f}")
    if departs:
        assert backtest["realized_auc"] < backtest["validation_auc"] - BACKTEST_DROP
        assert backtest["flagged"] is True
    else:
        # (A little better, if anything: at AT everyone has a longer history to be judged by.)
        assert backtest["realized_auc"] > backtest["validation_auc"] - 0.02
        assert backtest["flagged"] is False


def test_a_backtest_compares_with_the_validation_auc_of_the_model_that_scored(world: World) -> None:
    """Through `refresh`, as the scheduler runs it: a weekly retraining makes a new model (and keeps its
    first scores) before the older one's horizon has passed."""
    predictions = world.predictions()
    define(predictions, "versions", [ORDER])
    assert refreshed(predictions, "versions")["state"] == "ready"
    first = validation_auc(report_of(predictions, "versions"))
    week = AT + 7 * w.DAY_MS
    outcome = refreshed(predictions, "versions", week)
    assert outcome["trained"] is True and outcome["backtests"] == []
    second = validation_auc(report_of(predictions, "versions"))
    assert second != first
    assert int(snapshot_of(predictions, "versions", week)["version"][0]) == 2

    outcome = refreshed(predictions, "versions", AT + HORIZON * w.DAY_MS + w.DAY_MS)
    assert [(b["version"], b["validation_auc"]) for b in outcome["backtests"]] == [(1, first)]
    outcome = refreshed(predictions, "versions", week + HORIZON * w.DAY_MS)
    assert [(b["version"], b["validation_auc"]) for b in outcome["backtests"]] == [(2, second)]
    definition = predictions.get("versions")
    assert definition is not None and definition.version == 3  # retrained at AT + 31 days, not 6 days later


def test_a_scoring_keeps_a_fixed_sample_for_its_backtest(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past SNAPSHOT_ROWS scored profiles, the snapshot keeps those with the smallest ids (ids are
    random: an unbiased sample, the same one at every scoring)."""
    monkeypatch.setattr(pipeline, "SNAPSHOT_ROWS", 50)
    predictions = world.predictions()
    define(predictions, "sampled", [ORDER])
    assert refreshed(predictions, "sampled")["state"] == "ready"
    kept = snapshot_of(predictions, "sampled", AT)["ids"].view(pipeline.ID_DTYPE).reshape(-1)
    names, traits = predictions.inputs("sampled")
    scored = fetch_rows(world.engine, names, AT, traits=traits).ids
    assert scored.shape[0] > 50 and kept.shape[0] == 50
    assert sorted(kept["low"].tolist()) == sorted(scored["low"].tolist())[:50]
