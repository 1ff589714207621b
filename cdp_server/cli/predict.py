"""`cdp predict …`: propensity scores on profiles (likelihood to purchase or churn, a custom goal,
lifetime value), their quality reports and the reasons behind one profile's score."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from tributary._proto.cdp.v1 import audience_pb2

from cdp_server.cli.audiences import _call, _timestamp, at_option
from cdp_server.cli.common import (
    RPC_TIMEOUT_SECS,
    console,
    fail,
    json_option,
    print_json,
    stdout,
    target_option,
    token_option,
)

# Training can take minutes on a large workspace.
_REFRESH_TIMEOUT_SECS = 1800.0


def _days(text: str) -> int:
    found = re.fullmatch(r"\s*(\d+)\s*(d|days?)?\s*", text)
    if not found:
        fail(f"--within: {text!r} is not a number of days (e.g. 30d)")
    return int(found.group(1))


def _prediction_json(p: audience_pb2.Prediction) -> dict[str, Any]:
    return {
        "key": p.key,
        "goals": list(p.goals),
        "horizon_days": p.horizon_days,
        "churn": p.churn,
        "ltv": p.ltv,
        "population": p.population or None,
        "state": p.state,
        "reason": p.reason,
        "version": p.version,
        "traits": list(p.traits),
        "trait_features": list(p.trait_features),
        "trained_at": p.trained_at.ToJsonString() if p.HasField("trained_at") else None,
        "scored_at": p.scored_at.ToJsonString() if p.HasField("scored_at") else None,
    }


@click.group()
def predict() -> None:
    """Predictions: calibrated propensity scores written onto profiles as traits."""


@predict.command("create")
@click.argument("key")
@click.option(
    "--goal", "goals", multiple=True, required=True, help="An event stream, e.g. \"event('Order Completed')\"."
)
@click.option("--within", "within", required=True, help="The horizon, 7-180 days (e.g. 30d).")
@click.option("--churn", is_flag=True, help="Likelihood to churn: doing none of the goals within the horizon.")
@click.option("--ltv", is_flag=True, help="Predicted lifetime value: the goals' revenue within the horizon.")
@click.option("--population", default="", help="Only the members of this saved audience.")
@click.option("--trait", "trait_features", multiple=True, help="A profile trait the model also reads (repeatable).")
@click.option("--refresh/--no-refresh", default=True, show_default=True, help="Train and score now.")
@at_option
@target_option
@token_option
@json_option
def create(
    key: str,
    goals: tuple[str, ...],
    within: str,
    churn: bool,
    ltv: bool,
    population: str,
    trait_features: tuple[str, ...],
    refresh: bool,
    at: str,
    target: str,
    token: str,
    as_json: bool,
) -> None:
    """Creates prediction KEY; its traits are KEY_probability (KEY_value), KEY_percentile, KEY_decile."""
    prediction = audience_pb2.Prediction(
        key=key,
        goals=list(goals),
        horizon_days=_days(within),
        churn=churn,
        ltv=ltv,
        population=population,
        trait_features=list(trait_features),
    )
    created = _call(
        target,
        token,
        lambda stub, md: stub.CreatePrediction(
            audience_pb2.CreatePredictionRequest(prediction=prediction), metadata=md, timeout=RPC_TIMEOUT_SECS
        ),
    )
    if refresh:
        _refresh(key, at, False, target, token)
        created = _get(key, target, token)
    _show(created, as_json)


def _get(key: str, target: str, token: str) -> audience_pb2.Prediction:
    return _call(  # type: ignore[no-any-return]
        target,
        token,
        lambda stub, md: stub.GetPrediction(
            audience_pb2.GetPredictionRequest(key=key), metadata=md, timeout=RPC_TIMEOUT_SECS
        ),
    )


def _refresh(key: str, at: str, retrain: bool, target: str, token: str) -> dict[str, Any]:
    request = audience_pb2.RefreshPredictionRequest(key=key, retrain=retrain)
    stamp = _timestamp(at)
    if stamp is not None:
        request.at.CopyFrom(stamp)
    with console.status(f"training and scoring {key}…"):
        reply = _call(
            target, token, lambda stub, md: stub.RefreshPrediction(request, metadata=md, timeout=_REFRESH_TIMEOUT_SECS)
        )
    return json.loads(reply.outcome_json)  # type: ignore[no-any-return]


def _show(p: audience_pb2.Prediction, as_json: bool) -> None:
    if as_json:
        print_json(_prediction_json(p))
        return
    fields = _prediction_json(p)
    table = Table(show_header=False, box=None)
    for name, value in fields.items():
        table.add_row(name, str(value if not isinstance(value, list) else ", ".join(value)))
    stdout.print(table)


@predict.command("refresh")
@click.argument("key")
@click.option("--retrain", is_flag=True, help="Train a new model first, whatever its age.")
@at_option
@target_option
@token_option
@json_option
def refresh(key: str, retrain: bool, at: str, target: str, token: str, as_json: bool) -> None:
    """Scores KEY now (training first when asked, when it has no model or the model is a week old)."""
    outcome = _refresh(key, at, retrain, target, token)
    if as_json:
        print_json(outcome)
        return
    scores = outcome.get("scores") or {}
    stdout.print(
        f"{key}: {outcome['state']}{' (' + outcome['reason'] + ')' if outcome.get('reason') else ''};"
        f" {scores.get('profiles', 0):,} profiles scored, {scores.get('written', 0):,} changed"
    )


@predict.command("list")
@target_option
@token_option
@json_option
def list_predictions(target: str, token: str, as_json: bool) -> None:
    """Lists the predictions."""
    reply = _call(
        target,
        token,
        lambda stub, md: stub.ListPredictions(
            audience_pb2.ListPredictionsRequest(), metadata=md, timeout=RPC_TIMEOUT_SECS
        ),
    )
    if as_json:
        print_json({"predictions": [_prediction_json(p) for p in reply.predictions]})
        return
    table = Table("key", "goal", "horizon", "kind", "state", "version")
    for p in reply.predictions:
        kind = "churn" if p.churn else "ltv" if p.ltv else "goal"
        table.add_row(
            p.key,
            " or ".join(p.goals),
            f"{p.horizon_days}d",
            kind,
            p.state + (f": {p.reason}" if p.reason else ""),
            str(p.version),
        )
    stdout.print(table)


@predict.command("show")
@click.argument("key")
@target_option
@token_option
@json_option
def show(key: str, target: str, token: str, as_json: bool) -> None:
    """Shows one prediction."""
    _show(_get(key, target, token), as_json)


@predict.command("report")
@click.argument("key")
@click.option(
    "--charts", type=click.Path(file_okay=False, path_type=Path), help="Write the PNG charts into this folder."
)
@target_option
@token_option
@json_option
def report(key: str, charts: Path | None, target: str, token: str, as_json: bool) -> None:
    """The quality report of KEY's latest training: both candidates, the winner, calibration, lift."""
    reply = _call(
        target,
        token,
        lambda stub, md: stub.GetPredictionReport(
            audience_pb2.GetPredictionRequest(key=key), metadata=md, timeout=RPC_TIMEOUT_SECS
        ),
    )
    if not reply.report_json:
        fail(f"{key}: not trained yet")
    document = json.loads(reply.report_json)
    document["backtests"] = [json.loads(b) for b in reply.backtests_json]
    if charts is not None:
        charts.mkdir(parents=True, exist_ok=True)
        for name, data in (("calibration", reply.calibration_png), ("gains", reply.gains_png)):
            if data:
                (charts / f"{key}-{name}.png").write_bytes(data)
    if as_json:
        print_json(document)
        return
    test = document.get("test") or {}
    stdout.print(
        f"[bold]{key}[/]: {'published' if document.get('published') else 'not published'}"
        f"{': ' + document['reason'] if document.get('reason') else ''}"
    )
    table = Table("candidate", "val AUC", "test AUC", "test lift@10%", "test log loss")
    for name, candidate in (document.get("candidates") or {}).items():
        v, t = candidate.get("validation", {}), candidate.get("test", {})
        table.add_row(
            name + (" (winner)" if name == document.get("winner") else ""),
            _f(v.get("auc")),
            _f(t.get("auc")),
            _f(t.get("lift_at_10")),
            _f(t.get("log_loss")),
        )
    stdout.print(table)
    if test:
        stdout.print(
            f"calibrated winner on test: AUC {_f(test.get('auc'))}, lift@5/10/20% {_f(test.get('lift_at_5'))}/"
            f"{_f(test.get('lift_at_10'))}/{_f(test.get('lift_at_20'))}, calibration error {_f(test.get('ece'))},"
            f" Brier {_f(test.get('brier'))} ({(document.get('calibration') or {}).get('method')})"
        )
    cohorts = document.get("test_cohorts") or []
    if cohorts:
        table = Table(
            "decile", "profiles", "converted", "rate", title="test conversions by decile", title_justify="left"
        )
        for cohort in cohorts:
            table.add_row(str(cohort["decile"]), f"{cohort['rows']:,}", f"{cohort['positives']:,}", _f(cohort["rate"]))
        stdout.print(table)
    for backtest in document["backtests"]:
        flag = " [red]FLAGGED[/]" if backtest.get("flagged") else ""
        scored = dt.datetime.fromtimestamp(backtest["scored_ms"] / 1000, dt.UTC).date().isoformat()
        stdout.print(
            f"backtest of the scores of {scored} (version {backtest['version']}, {backtest['rows']:,} profiles):"
            f" realized AUC {_f(backtest.get('realized_auc'))} (validation {_f(backtest.get('validation_auc'))}){flag}"
        )


def _f(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


@predict.command("why")
@click.argument("key")
@click.argument("profile")
@at_option
@target_option
@token_option
@json_option
def why(key: str, profile: str, at: str, target: str, token: str, as_json: bool) -> None:
    """The five strongest reasons behind PROFILE's score (a profile id or kind:value identifier)."""
    request = audience_pb2.ExplainPredictionRequest(key=key, profile=profile)
    stamp = _timestamp(at)
    if stamp is not None:
        request.at.CopyFrom(stamp)
    reply = _call(
        target, token, lambda stub, md: stub.ExplainPrediction(request, metadata=md, timeout=RPC_TIMEOUT_SECS)
    )
    found = json.loads(reply.explanation_json)
    if as_json:
        print_json(found)
        return
    stdout.print(
        f"{key} for {profile}: {found['score']:.4f} (raw {found['raw_score']:+.3f},"
        f" baseline {found['expected_value']:+.3f})"
    )
    table = Table("feature", "value", "contribution")
    for item in found["contributions"]:
        value = "-" if item["value"] is None else f"{item['value']:g}"
        table.add_row(item["feature"], value, f"{item['contribution']:+.3f}")
    stdout.print(table)


@predict.command("delete")
@click.argument("key")
@target_option
@token_option
def delete(key: str, target: str, token: str) -> None:
    """Deletes KEY, its models and reports (the traits stay on profiles)."""
    _call(
        target,
        token,
        lambda stub, md: stub.DeletePrediction(
            audience_pb2.DeletePredictionRequest(key=key), metadata=md, timeout=RPC_TIMEOUT_SECS
        ),
    )
    stdout.print(f"deleted prediction {key}")
