"""The routes of the debugger's Predictions tab against a real `cdp serve`:
`/debugger/api/predictions`, `…/{key}/report`, `…/{key}/calibration.png`, `…/{key}/gains.png`.

One server for the module, trained once (a training takes seconds): the first 2,000 customers of
the CDNOW purchase history (about 6,500 `Order Completed` calls, 1997-01 to 1998-06) sent in time
order over the HTTP batch API; a 90-day purchase prediction trained and scored at 1998-03-31, then
retrained at 1998-06-29, which also backtests the first model's scores against the 90 days after
them; a 90-day lifetime value (a regression: no calibration, no deciles); and a prediction whose
goal nobody reached (its event name is markup), not ready.

What it proves: the routes say what the gRPC API's GetPredictionReport says (the same report,
the same PNG bytes, the same backtest), need the admin token (401 without a usable one, 403 with a
read token) and answer 404 for an unknown key or a chart a prediction lacks.
"""

from __future__ import annotations

import base64
import json
import math
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from cli_runner import cdp
from http_client import get
from test_predictions_e2e import cdnow_events, send_http
from tributary._proto.cdp.v1 import audience_pb2, audience_pb2_grpc

CUSTOMERS = 2_000
# Trained and scored first at FIRST; at AT, 90 days later, retrained and the first scores backtested.
FIRST = "1998-03-31T23:59:59.999Z"
AT = "1998-06-29T23:59:59.999Z"
# A goal nobody reached, whose event name is markup.
ODD_GOAL = "event('<img src=x onerror=\"window.hacked=1\">Signed Up')"


def cdp_json(server: Any, *args: str) -> Any:
    # Training takes seconds, but a loaded machine can stretch it.
    return json.loads(cdp(server, *args, "--json", timeout=600).stdout)


@pytest.fixture(scope="module")
def trained(module_server: Any) -> Iterator[Any]:
    server = module_server
    events = [e for e in cdnow_events() if int(e["userId"].removeprefix("cdnow-")) <= CUSTOMERS]
    assert 6_000 <= len(events) <= 7_000, len(events)
    send_http(server, events)
    goal = "event('Order Completed')"
    first = cdp_json(server, "predict", "create", "buy_90d", "--goal", goal, "--within", "90d", "--at", FIRST)
    assert first["state"] == "ready", first
    again = cdp_json(server, "predict", "refresh", "buy_90d", "--at", AT)
    assert again["trained"] and again["state"] == "ready" and len(again["backtests"]) == 1, again
    value = cdp_json(server, "predict", "create", "value_90d", "--goal", goal, "--within", "90d", "--ltv", "--at", AT)
    assert value["state"] == "ready", value
    odd = cdp_json(server, "predict", "create", "odd", "--goal", ODD_GOAL, "--within", "90d", "--at", AT)
    assert odd["state"] == "not_ready" and "positive" in odd["reason"], odd
    yield server


def grpc_report(server: Any, key: str) -> audience_pb2.PredictionReport:
    with server.channel() as channel:
        stub = audience_pb2_grpc.AudienceServiceStub(channel)
        request = audience_pb2.GetPredictionRequest(key=key)
        reply: audience_pb2.PredictionReport = stub.GetPredictionReport(
            request, metadata=server.admin_metadata, timeout=30
        )
        return reply


def finite(value: Any) -> Any:
    """`value` with NaN as None (the route's JSON has no NaN; Python's json writes it)."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def fetch(server: Any, path: str, bearer: str | None) -> tuple[int, str, bytes]:
    """(status, content type, body bytes) of a GET."""
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    request = urllib.request.Request(server.http_url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["content-type"], response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["content-type"], error.read()


ROUTES = [
    "/debugger/api/predictions",
    "/debugger/api/predictions/buy_90d/report",
    "/debugger/api/predictions/buy_90d/calibration.png",
    "/debugger/api/predictions/buy_90d/gains.png",
]


# ---- the routes -----------------------------------------------------------------------------


def test_the_list_gives_each_predictions_state_and_headline_figures(trained: Any) -> None:
    server = trained
    status, body, _ = get(server, "/debugger/api/predictions", bearer=server.admin_token)
    assert status == 200 and body is not None
    listed = {p["key"]: p for p in body["predictions"]}
    assert list(listed) == ["buy_90d", "odd", "value_90d"], "by key"

    buy = listed["buy_90d"]
    grpc = grpc_report(server, "buy_90d")
    report = json.loads(grpc.report_json)
    assert {k: buy[k] for k in ("goals", "horizon_days", "kind", "population", "state", "reason", "version")} == {
        "goals": ["event('Order Completed')"],
        "horizon_days": 90,
        "kind": "propensity",
        "population": None,
        "state": "ready",
        "reason": "",
        "version": 2,
    }
    assert buy["trained_at"] == buy["scored_at"] == AT
    assert buy["report"] == {
        "published": True,
        "reason": "",
        "version": 2,
        "trained_at": AT,
        "winner": report["winner"],
        "calibration": report["calibration"]["method"],
        "test_auc": report["test_auc"],
        "lift_at_10": report["test"]["lift_at_10"],
        "ece": report["test"]["ece"],
    }
    assert report["winner"] in report["candidates"] and buy["report"]["test_auc"] >= 0.65
    assert buy["charts"] == {"calibration": True, "gains": True}
    # The first model's scores (at FIRST) against the 90 days after them.
    [backtested] = [json.loads(b) for b in grpc.backtests_json]
    assert buy["backtests"] == 1
    assert buy["backtest"] == {
        "version": 1,
        "scored_at": FIRST,
        "rows": backtested["rows"],
        "realized_auc": backtested["realized_auc"],
        "validation_auc": backtested["validation_auc"],
        "flagged": backtested["flagged"],
    }
    assert backtested["rows"] > 1_000 and buy["backtest"]["realized_auc"] > 0.6

    odd = listed["odd"]
    assert (odd["state"], odd["version"], odd["goals"]) == ("not_ready", 0, [ODD_GOAL])
    assert odd["reason"].startswith("needs 100 positive and 100 negative training examples; has 0 and")
    assert odd["report"]["published"] is False and odd["report"]["reason"] == odd["reason"]
    assert (odd["report"]["test_auc"], odd["report"]["winner"], odd["report"]["version"]) == (None, None, None)
    assert odd["charts"] == {"calibration": False, "gains": False} and odd["backtest"] is None

    # A lifetime value: ranked (its AUC is of who spent at all), neither lift nor calibration.
    value = listed["value_90d"]
    value_report = json.loads(grpc_report(server, "value_90d").report_json)
    assert (value["kind"], value["state"], value["version"]) == ("ltv", "ready", 1)
    assert value["report"]["test_auc"] == value_report["test_auc"] >= 0.65
    assert (value["report"]["calibration"], value["report"]["lift_at_10"], value["report"]["ece"]) == (None,) * 3
    assert value["charts"] == {"calibration": False, "gains": True}


def test_the_report_and_charts_are_the_grpc_reports(trained: Any) -> None:
    server = trained
    grpc = grpc_report(server, "buy_90d")
    status, kind, raw = fetch(server, "/debugger/api/predictions/buy_90d/report", server.admin_token)
    assert (status, kind) == (200, "application/json")
    report = json.loads(raw, parse_constant=lambda word: pytest.fail(f"{word} in the report's JSON"))
    assert report == finite(json.loads(grpc.report_json))
    assert set(report["candidates"]) == {"lightgbm", "logistic"}
    assert [c["decile"] for c in report["test_cohorts"]] == list(range(10, 0, -1))
    for chart, expected in (("calibration", grpc.calibration_png), ("gains", grpc.gains_png)):
        status, kind, png = fetch(server, f"/debugger/api/predictions/buy_90d/{chart}.png", server.admin_token)
        assert (status, kind) == (200, "image/png") and png.startswith(b"\x89PNG") and png == expected

    # The prediction that is not ready has a report (why not) and no chart.
    status, _, raw = fetch(server, "/debugger/api/predictions/odd/report", server.admin_token)
    assert status == 200 and json.loads(raw)["published"] is False
    for key, chart in (("odd", "calibration"), ("odd", "gains"), ("value_90d", "calibration")):
        status, body, _ = get(server, f"/debugger/api/predictions/{key}/{chart}.png", bearer=server.admin_token)
        assert status == 404 and body is not None and body["error"]["code"] == "not_found"
        assert body["error"]["message"] == f'prediction "{key}" has no {chart} chart yet'


def test_an_unknown_prediction_is_404(trained: Any) -> None:
    server = trained
    for what in ("report", "calibration.png", "gains.png"):
        for key in ("nobody", "BUY_90D", "buy_90d%2Fmodel"):
            status, body, _ = get(server, f"/debugger/api/predictions/{key}/{what}", bearer=server.admin_token)
            assert status == 404 and body is not None, (key, what)
            assert body["error"]["message"].startswith("no prediction"), body


def test_the_routes_need_an_admin_token(trained: Any) -> None:
    server = trained
    read_token = cdp_json(server, "token", "create", "--role", "read", "--name", "reader")["token"]
    for path in ROUTES:
        status, body, _ = get(server, path)
        assert status == 401 and body is not None and body["error"]["code"] == "authentication_error", path
        assert get(server, path, bearer="not-the-token")[0] == 401, path
        status, body, _ = get(server, path, bearer=read_token)
        assert status == 403 and body is not None and "admin" in body["error"]["message"], path
        # A read token as Basic (the Profile API's way) is refused the same.
        basic = {"Authorization": "Basic " + base64.b64encode(f"{read_token}:".encode()).decode()}
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(server.http_url + path, headers=basic), timeout=30)
        with refused.value as answer:
            assert answer.code == 403, path
