"""Predictions end to end: the CDNOW purchase history (shipped inside the `lifetimes` package) sent
through Segment's HTTP batch API, a 90-day purchase prediction at 1998-03-31 trained, published,
written onto profiles, usable in an audience and explained, through `cdp predict`."""

from __future__ import annotations

import base64
import datetime as dt
import importlib.util
import json
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
from tributary._proto.cdp.v1 import audience_pb2, audience_pb2_grpc, profile_pb2, profile_pb2_grpc

from tests.cli_runner import cdp

DAY_MS = 86_400_000
# The evaluation time whose 90-day horizon starts the day after 1998-03-31.
AT = "1998-06-29T23:59:59.999Z"
TEST_CUTOFF_MS = int(dt.datetime(1998, 3, 31, 23, 59, 59, 999000, tzinfo=dt.UTC).timestamp() * 1000)


def cdnow_events() -> list[dict[str, Any]]:
    """CDNOW_master.txt (customer, YYYYMMDD, CDs, dollars) as `Order Completed` calls, in time order
    (history loaded in the order it happened: see docs/predictions.md on the log's clock)."""
    spec = importlib.util.find_spec("lifetimes")
    assert spec is not None and spec.submodule_search_locations, "lifetimes (make test installs it) is missing"
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "CDNOW_master.txt"
    rows = []
    for line in path.read_text().splitlines():
        customer, day, cds, dollars = line.split()
        if customer.isdigit():
            rows.append((day, customer, int(cds), float(dollars)))
    assert len(rows) == 69_659
    rows.sort()
    return [
        {
            "type": "track",
            "userId": f"cdnow-{customer}",
            "event": "Order Completed",
            "messageId": f"cdnow-{i}",
            "timestamp": f"{day[:4]}-{day[4:6]}-{day[6:]}T00:00:00Z",
            "properties": {"revenue": dollars, "quantity": cds},
        }
        for i, (day, customer, cds, dollars) in enumerate(rows)
    ]


def send_http(server: Any, events: list[dict[str, Any]]) -> None:
    auth = "Basic " + base64.b64encode(f"{server.write_key}:".encode()).decode()
    for start in range(0, len(events), 1_000):
        body = json.dumps({"batch": events[start : start + 1_000]}).encode()
        request = urllib.request.Request(
            f"{server.http_url}/v1/batch",
            data=body,
            headers={"Authorization": auth, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as reply:
            assert reply.status == 200


def cdp_json(server: Any, *args: str) -> Any:
    # Training takes seconds, but a loaded machine can stretch it.
    return json.loads(cdp(server, *args, "--json", timeout=600).stdout)


@pytest.fixture(scope="module")
def cdnow() -> list[dict[str, Any]]:
    return cdnow_events()


def test_a_90_day_purchase_prediction_on_cdnow_meets_its_targets(
    server: Any, cdnow: list[dict[str, Any]], tmp_path: Path
) -> None:
    send_http(server, cdnow)
    created = cdp_json(
        server, "predict", "create", "purchase_90d", "--goal", "event('Order Completed')", "--within", "90d", "--at", AT
    )
    assert created["state"] == "ready", created
    assert created["traits"] == ["purchase_90d_probability", "purchase_90d_percentile", "purchase_90d_decile"]

    report = cdp_json(server, "predict", "report", "purchase_90d", "--charts", str(tmp_path))
    assert report["published"] is True
    assert report["cutoffs"]["test"] == TEST_CUTOFF_MS
    test = report["test"]
    assert test["rows"] == 23_570, "every customer bought on or before the cutoff"
    assert test["auc"] >= 0.835 and test["lift_at_10"] >= 4.0 and test["ece"] <= 0.03, test
    assert set(report["candidates"]) == {"lightgbm", "logistic"}
    for name in ("calibration", "gains"):
        assert (tmp_path / f"purchase_90d-{name}.png").read_bytes().startswith(b"\x89PNG")
    shown = cdp(server, "predict", "report", "purchase_90d").stdout
    assert "lightgbm" in shown and "logistic" in shown and "conversions by decile" in shown, shown

    # Scores are traits: on the profile, and in an audience ("the top 20 %").
    channel = server.channel()
    metadata = server.admin_metadata
    profile = profile_pb2_grpc.ProfileServiceStub(channel).GetProfile(
        profile_pb2.GetProfileRequest(identifier="user_id:cdnow-00002"), metadata=metadata, timeout=30
    )
    traits = json.loads(profile.profile.traits)
    assert not profile.profile.predictions, "explanations come with verbose reads only"
    verbose = profile_pb2_grpc.ProfileServiceStub(channel).GetProfile(
        profile_pb2.GetProfileRequest(identifier="user_id:cdnow-00002", verbose=True), metadata=metadata, timeout=60
    )
    [explained] = verbose.profile.predictions
    assert explained.key == "purchase_90d" and 0 < explained.score < 1
    assert len(explained.reasons) == 5 and all(r.feature for r in explained.reasons)
    assert 0 < traits["purchase_90d_probability"] < 1
    assert 0 <= traits["purchase_90d_percentile"] < 1 and 1 <= traits["purchase_90d_decile"] <= 10
    audiences = audience_pb2_grpc.AudienceServiceStub(channel)
    top = audiences.Preview(
        audience_pb2.PreviewRequest(query="trait('purchase_90d_percentile') >= 0.8"), metadata=metadata, timeout=60
    )
    assert 0.15 * 23_570 <= top.count <= 0.25 * 23_570, top.count

    why = cdp_json(server, "predict", "why", "purchase_90d", "user_id:cdnow-00002", "--at", AT)
    assert len(why["contributions"]) == 5
    magnitudes = [abs(c["contribution"]) for c in why["contributions"]]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert abs(why["score"] - traits["purchase_90d_probability"]) < 1e-4

    # The same log, configuration and seed: the same model, so not one trait changes.
    again = cdp_json(server, "predict", "refresh", "purchase_90d", "--retrain", "--at", AT)
    assert again["scores"]["written"] == 0 and again["scores"]["unchanged"] == 23_570, again


def test_a_prediction_without_enough_history_says_why_it_is_not_ready(server: Any) -> None:
    day = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    events = [
        {
            "type": "track",
            "userId": f"u{i}",
            "event": "Order Completed",
            "messageId": f"m{i}-{d}",
            "timestamp": (day + dt.timedelta(days=d)).isoformat(),
        }
        for i in range(50)
        for d in range(0, 40, 7)
    ]
    send_http(server, events)
    created = cdp_json(
        server,
        "predict",
        "create",
        "buy",
        "--goal",
        "event('Order Completed')",
        "--within",
        "30d",
        "--at",
        "2024-02-15T00:00:00Z",
    )
    assert created["state"] == "not_ready"
    assert "history" in created["reason"], created["reason"]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--goal", "event('Order Completed')", "--within", "5d"], "within"),
        (["--goal", "trait('x') = 1", "--within", "30d"], "goal"),
        (["--goal", "event('A').within(3 days)", "--within", "30d"], "goal"),
    ],
)
def test_a_definition_that_cannot_be_is_refused_naming_the_field(server: Any, args: list[str], field: str) -> None:
    refused = cdp(server, "predict", "create", "bad", *args, "--no-refresh", check=False)
    assert refused.returncode != 0
    assert f"{field}:" in refused.stderr, refused.stderr
    stub = audience_pb2_grpc.AudienceServiceStub(server.channel())
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetPrediction(audience_pb2.GetPredictionRequest(key="bad"), metadata=server.admin_metadata, timeout=10)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
