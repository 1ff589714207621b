"""Events per second through one compiled mapping, on one core.

The mapping is what an Actions destination typically saves: ten fields, of which paths, a
template, an @if with a default, a @case and an @arrayPath over the order's three products; the
event a realistic Order Completed (1.3 kB as JSON). Two figures: `apply` alone on decoded
events, and decode + apply + encode with orjson, which is what the delivery worker does per event.

    .venv/bin/python -m benchmarks.mapping_throughput [--events 200000]

tests/test_mapping.py checks that the mapping gives EXPECTED, so the figure stays about real work.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson

from cdp_server.destinations.mapping import compile_mapping

EVENT: dict[str, Any] = {
    "type": "track",
    "event": "Order Completed",
    "messageId": "ajs-next-1718031234567-3f9b2c7e-5d1a-4c1e-9b7a-2f7c1e0d9a11",
    "userId": "user_8812",
    "anonymousId": "0f7c2b1e-9d3a-4f6b-8c2e-1a5d7e9b3c40",
    "timestamp": "2024-06-10T14:53:54.567Z",
    "sentAt": "2024-06-10T14:53:54.601Z",
    "receivedAt": "2024-06-10T14:53:55.012Z",
    "originalTimestamp": "2024-06-10T14:53:54.567Z",
    "context": {
        "ip": "203.0.113.42",
        "locale": "en-GB",
        "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15",
        "library": {"name": "analytics.js", "version": "next-1.70.0"},
        "page": {
            "path": "/checkout/complete",
            "referrer": "https://shop.example.com/cart",
            "title": "Thank you",
            "url": "https://shop.example.com/checkout/complete",
        },
        "traits": {"email": "Ada.Lovelace@Example.com", "plan": "pro"},
    },
    "properties": {
        "order_id": "50314b8e9bcf000000000000",
        "checkout_id": "fksdjfsdjfisjf9sdfjsd9f",
        "total": 27.5,
        "revenue": 25.0,
        "shipping": 3,
        "tax": 2,
        "discount": 2.5,
        "coupon": "hasbros",
        "currency": "GBP",
        "products": [
            {
                "product_id": "507f1f77bcf86cd799439011",
                "sku": "45790-32",
                "name": "Monopoly",
                "price": 19,
                "quantity": 1,
            },
            {"product_id": "505bd76785ebb509fc183733", "sku": "46493-32", "name": "Uno", "price": 3, "quantity": 2},
            {"product_id": "5f2b1c0e8a9d4e3f2a1b0c9d", "sku": "46998-32", "name": "Go", "price": 0.5, "quantity": 1},
        ],
    },
    "integrations": {"All": True},
}

MAPPING: dict[str, Any] = {
    "event_name": {"@path": "$.event"},
    "user_id": {"@path": "$.userId"},
    "email": {"@case": {"operator": "lower", "value": {"@path": "$.context.traits.email"}}},
    "time": {"@path": "$.timestamp"},
    "revenue": {"@path": "$.properties.revenue"},
    "currency": {
        "@if": {"exists": {"@path": "$.properties.currency"}, "then": {"@path": "$.properties.currency"}, "else": "USD"}
    },
    "order": {"@template": "order-{{properties.order_id}}"},
    "products": {
        "@arrayPath": [
            "$.properties.products",
            {"id": {"@path": "$.product_id"}, "price": {"@path": "$.price"}, "quantity": {"@path": "$.quantity"}},
        ]
    },
    "ip": {"@path": "$.context.ip"},
    "insert_id": {"@path": "$.messageId"},
}

EXPECTED: dict[str, Any] = {
    "event_name": "Order Completed",
    "user_id": "user_8812",
    "email": "ada.lovelace@example.com",
    "time": "2024-06-10T14:53:54.567Z",
    "revenue": 25.0,
    "currency": "GBP",
    "order": "order-50314b8e9bcf000000000000",
    "products": [
        {"id": "507f1f77bcf86cd799439011", "price": 19, "quantity": 1},
        {"id": "505bd76785ebb509fc183733", "price": 3, "quantity": 2},
        {"id": "5f2b1c0e8a9d4e3f2a1b0c9d", "price": 0.5, "quantity": 1},
    ],
    "ip": "203.0.113.42",
    "insert_id": "ajs-next-1718031234567-3f9b2c7e-5d1a-4c1e-9b7a-2f7c1e0d9a11",
}


def events_per_second(events: int, *, with_json: bool, rounds: int = 5) -> float:
    """The best of `rounds` runs over `events` events (the best: the least disturbed by the machine)."""
    mapping = compile_mapping(MAPPING)
    assert mapping.apply(EVENT) == EXPECTED
    raw = orjson.dumps(EVENT)
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        if with_json:
            for _ in range(events):
                orjson.dumps(mapping.apply(orjson.loads(raw)))
        else:
            apply = mapping.apply
            for _ in range(events):
                apply(EVENT)
        best = min(best, time.perf_counter() - started)
    return events / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    print(f"event: {len(orjson.dumps(EVENT))} bytes of JSON; mapping: {len(MAPPING)} fields")
    print(f"apply:                  {events_per_second(args.events, with_json=False):>10,.0f} events/s")
    print(f"decode + apply + encode: {events_per_second(args.events, with_json=True):>9,.0f} events/s")


if __name__ == "__main__":
    main()
