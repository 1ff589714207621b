"""The debugger's Predictions tab and its routes against a real `cdp serve`: the routes
(`/debugger/api/predictions`, `…/{key}/report`, `…/{key}/calibration.png`, `…/{key}/gains.png`)
and the tab in a real browser (headless chromium, as test_debugger_browser.py, whose fixture and
helpers it uses).

One server for the module, trained once (a training takes seconds): the first 2,000 customers of
the CDNOW purchase history (about 6,500 `Order Completed` calls, 1997-01 to 1998-06) sent in time
order over the HTTP batch API; a 90-day purchase prediction trained and scored at 1998-03-31, then
retrained at 1998-06-29, which also backtests the first model's scores against the 90 days after
them; a 90-day lifetime value (a regression: no calibration, no deciles); and a prediction whose
goal nobody reached (its event name is markup), not ready.

What it proves: the routes say what the gRPC API's GetPredictionReport says (the same report,
the same PNG bytes, the same backtest), need the admin token (401 without a usable one, 403 with a
read token) and answer 404 for an unknown key or a chart a prediction lacks; the tab lists the
predictions with their figures and why one is not ready, shows the user's text as text, and for the
selected one loads both charts and shows both candidates' metrics and the conversions by decile (a
lifetime value: its regression metrics and its gains chart).
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
import test_debugger_browser as page
from cli_runner import cdp
from http_client import get
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from test_predictions_e2e import cdnow_events, send_http
from tributary._proto.cdp.v1 import audience_pb2, audience_pb2_grpc

# The same module-scoped chromium as the other tabs' tests (one per module).
browser = page.browser
by_id, by_testid, wait_for = page.by_id, page.by_testid, page.wait_for

CUSTOMERS = 2_000
# Trained and scored first at FIRST; at AT, 90 days later, retrained and the first scores backtested.
FIRST = "1998-03-31T23:59:59.999Z"
AT = "1998-06-29T23:59:59.999Z"
# A goal nobody reached, whose event name is markup: shown as text, never run.
ODD_GOAL = "event('<img src=x onerror=\"window.hacked=1\">Signed Up')"
TIMES = "\N{MULTIPLICATION SIGN}"  # the page writes a lift as 4.52 and this sign
# Charts take longer than the default wait on a loaded machine.
CHART_WAIT_SECS = 30.0


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
    # A value is calibrated by one factor; lift and calibration error are a classifier's.
    assert (value["report"]["calibration"], value["report"]["lift_at_10"], value["report"]["ece"]) == (
        "scale",
        None,
        None,
    )
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
    # The tab's script, like the page, needs none.
    with urllib.request.urlopen(server.http_url + "/debugger/debugger-predictions.js", timeout=10) as script:
        assert script.headers["content-type"].startswith("text/javascript")
        assert b"tributaryDebugger" in script.read()


# ---- the tab --------------------------------------------------------------------------------


def rows(driver: WebDriver) -> dict[str, WebElement]:
    return {row.get_attribute("data-key") or "": row for row in by_testid(driver, "prediction-row")}


def cell(row: WebElement, testid: str) -> str:
    return row.find_element(By.CSS_SELECTOR, f"[data-testid='{testid}']").text


def chart_width(driver: WebDriver, chart: str) -> int:
    """The natural width of the chart's image once loaded (0 before)."""
    width = driver.execute_script(
        "const img = document.getElementById(arguments[0]);"
        "return img && !img.hidden && img.complete ? img.naturalWidth : 0;",
        f"prediction-chart-{chart}",
    )
    return int(width or 0)


def test_the_predictions_tab_lists_them_and_shows_the_selected_ones_report(trained: Any, browser: WebDriver) -> None:
    server = trained
    answer = get(server, "/debugger/api/predictions", bearer=server.admin_token)[1]
    assert answer is not None
    listed = {p["key"]: p for p in answer["predictions"]}
    report = json.loads(grpc_report(server, "buy_90d").report_json)

    page.open_debugger(browser, server)
    by_id(browser, "tab-predictions").click()
    wait_for(browser, lambda d: list(rows(d)) == ["buy_90d", "odd", "value_90d"], "the predictions, by key")
    assert not by_id(browser, "live").is_displayed()
    buy, odd = rows(browser)["buy_90d"], rows(browser)["odd"]
    cells = [td.text for td in buy.find_elements(By.TAG_NAME, "td")]
    summary = listed["buy_90d"]["report"]
    assert cells == [
        "buy_90d",
        "event('Order Completed')",
        "90 d",
        "likelihood",
        "ready",
        "2",
        f"{summary['test_auc']:.3f}",
        f"{summary['lift_at_10']:.2f}{TIMES}",
        f"{summary['ece']:.3f}",
        ("flagged" if listed["buy_90d"]["backtest"]["flagged"] else "ok")
        + f" · {listed['buy_90d']['backtest']['realized_auc']:.3f}",
    ]
    # The odd one: not ready and why; its goal (markup) is text, never an element.
    assert cell(odd, "prediction-row-state") == "not ready"
    assert cell(odd, "prediction-row-reason") == listed["odd"]["reason"]
    assert odd.find_element(By.CSS_SELECTOR, "td.goal").text == ODD_GOAL
    assert odd.find_elements(By.TAG_NAME, "img") == []
    assert [cell(odd, t) for t in ("prediction-row-auc", "prediction-row-lift", "prediction-row-backtest")] == ["—"] * 3

    # The selected one: both charts loaded, both candidates side by side, the deciles.
    buy.click()
    wait_for(browser, lambda d: by_id(d, "prediction-title").text == "buy_90d", "buy_90d's detail")
    charts = WebDriverWait(browser, CHART_WAIT_SECS)
    charts.until(lambda d: chart_width(d, "calibration") > 0, "the calibration chart")
    charts.until(lambda d: chart_width(d, "gains") > 0, "the gains chart")
    assert chart_width(browser, "calibration") == chart_width(browser, "gains") == 640
    assert by_id(browser, "prediction-outcome").text.startswith("published as version 2")
    assert by_id(browser, "prediction-winner").text.startswith(report["winner"])
    candidates = {c.get_attribute("data-name"): c for c in by_testid(browser, "prediction-candidate")}
    assert list(candidates) == list(report["candidates"])
    winners = [name for name, c in candidates.items() if c.find_elements(By.CSS_SELECTOR, ".tag")]
    assert winners == [report["winner"]]
    metrics = {
        row.get_attribute("data-metric"): [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        for row in by_testid(browser, "prediction-metric")
    }
    auc = [
        report["candidates"][name][split]["auc"] for name in report["candidates"] for split in ("validation", "test")
    ]
    assert metrics["auc"] == ["AUC", *(f"{a:.3f}" for a in auc), f"{report['test']['auc']:.3f}"]
    assert metrics["lift_at_10"][-1] == f"{report['test']['lift_at_10']:.2f}{TIMES}"
    assert len(metrics) == 13
    cohorts = [
        [td.text for td in row.find_elements(By.TAG_NAME, "td")][:3] for row in by_testid(browser, "prediction-cohort")
    ]
    assert cohorts == [[str(c["decile"]), f"{c['rows']:,}", f"{c['positives']:,}"] for c in report["test_cohorts"]]
    assert by_id(browser, "prediction-backtest").text.startswith(f"version 1 scored {FIRST[:16].replace('T', ' ')} UTC")
    page.save_screenshot_if_asked(browser)

    # The one not ready: why, and no chart nor model.
    rows(browser)["odd"].click()
    wait_for(browser, lambda d: by_id(d, "prediction-title").text == "odd", "odd's detail")
    wait_for(browser, lambda d: by_id(d, "prediction-report").is_displayed(), "odd's report")
    assert by_id(browser, "prediction-reason").text == listed["odd"]["reason"]
    assert by_id(browser, "prediction-goals").text == ODD_GOAL
    assert by_id(browser, "prediction-outcome").text == f"not published: {listed['odd']['reason']}"
    assert by_id(browser, "prediction-chart-calibration-note").text == "No calibration chart: no model was fitted yet."
    assert not by_id(browser, "prediction-chart-gains").is_displayed()
    assert by_id(browser, "prediction-candidates-note").text == "No model was fitted at this training."
    assert by_testid(browser, "prediction-cohort") == []
    assert browser.execute_script("return window.hacked === undefined") is True

    # The lifetime value: its gains chart, its regression metrics, no calibration nor deciles.
    value = rows(browser)["value_90d"]
    assert [cell(value, t) for t in ("prediction-row-lift", "prediction-row-ece")] == ["—"] * 2
    value.click()
    wait_for(browser, lambda d: by_id(d, "prediction-title").text == "value_90d", "value_90d's detail")
    charts.until(lambda d: chart_width(d, "gains") == 640, "the lifetime value's gains chart")
    assert not by_id(browser, "prediction-chart-calibration").is_displayed()
    assert by_id(browser, "prediction-chart-calibration-note").text.startswith("No calibration chart: a lifetime value")
    metrics = {row.get_attribute("data-metric") for row in by_testid(browser, "prediction-metric")}
    assert {"rmse", "mae", "r2", "spearman"} <= metrics and "auc" not in metrics
    assert by_id(browser, "prediction-cohorts-note").text == "A lifetime value has no conversions by decile."
