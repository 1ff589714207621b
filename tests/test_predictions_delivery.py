"""A prediction's scores flow out like any computed trait: one identify call per scored profile,
from the Tributary Engage source, delivered to the destinations connected to the prediction's key
(Segment's Engage connections) and to no other; a refresh that changes nothing sends nothing."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from webhook_sink import WebhookSink

from tests.cli_runner import cdp
from tests.delivery_helpers import Destinations, delivered_events, wait_for
from tests.test_predictions_e2e import send_http

pytest_plugins = ["sinks_conftest"]
PEOPLE = 600
DAYS = 360


def purchase_history(seed: int = 7) -> list[dict[str, Any]]:
    """PEOPLE people, each with a sign-up and orders at a rate of their own over DAYS days (2024),
    in time order."""
    rng = np.random.default_rng(seed)
    rates = rng.choice([0.002, 0.01, 0.03, 0.06], size=PEOPLE)
    events: list[tuple[float, int, str]] = [(0.0, person, "Signed Up") for person in range(PEOPLE)]
    for person, rate in enumerate(rates):
        count = rng.poisson(rate * DAYS)
        events.extend((float(day), person, "Order Completed") for day in rng.uniform(0, DAYS, count))
    events.sort()
    start = np.datetime64("2024-01-01T00:00:00", "ms")
    return [
        {
            "type": "track",
            "userId": f"p{person}",
            "event": name,
            "messageId": f"h{i}",
            "timestamp": f"{start + np.timedelta64(int(day * 86_400_000), 'ms')}Z",
            "properties": {"revenue": 20.0} if name == "Order Completed" else {},
        }
        for i, (day, person, name) in enumerate(events)
    ]


def test_scores_are_delivered_as_identify_calls_once(server: Any, webhook_sink: WebhookSink) -> None:
    destinations = Destinations(server)
    destinations.webhook("scores", webhook_sink.url, computations=["buy"])
    destinations.webhook("unconnected", webhook_sink.url)
    send_http(server, purchase_history())
    at = "2024-12-26T23:59:59.999Z"  # day 360 ends
    created = json.loads(
        cdp(
            server,
            "predict",
            "create",
            "buy",
            "--goal",
            "event('Order Completed')",
            "--within",
            "30d",
            "--at",
            at,
            "--json",
            timeout=600,
        ).stdout
    )
    assert created["state"] == "ready", created

    def scored() -> list[dict[str, Any]]:
        events = delivered_events(webhook_sink.requests)
        return [e for e in events if e["type"] == "identify" and "buy_probability" in e.get("traits", {})]

    calls = wait_for(lambda: len(found := scored()) >= PEOPLE and found, timeout=60)
    assert len(calls) == PEOPLE, "one call per scored profile"
    assert {call["userId"] for call in calls} == {f"p{person}" for person in range(PEOPLE)}
    for call in calls:
        traits = call["traits"]
        assert set(traits) == {"buy_probability", "buy_percentile", "buy_decile"}
        assert 0 <= traits["buy_probability"] <= 1 and 1 <= traits["buy_decile"] <= 10
        assert call["context"]["personas"] == {"computation_class": "prediction", "computation_key": "buy"}
    deciles = np.bincount([call["traits"]["buy_decile"] for call in calls], minlength=11)[1:]
    assert deciles[-1] > 0 and deciles.sum() == PEOPLE

    # The same model and time again: nothing changed, nothing is written or sent.
    again = json.loads(cdp(server, "predict", "refresh", "buy", "--at", at, "--json", timeout=600).stdout)
    assert again["scores"]["written"] == 0, again
    destinations.settled("scores")
    assert destinations.settled("unconnected").filtered == PEOPLE, "not connected: every score call filtered"
    assert len(scored()) == PEOPLE
