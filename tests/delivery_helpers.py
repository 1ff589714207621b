"""Shared by the delivery tests: destinations over AdminService, and waiting for delivery."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tributary._proto.cdp.v1 import admin_pb2_grpc, destination_pb2

T = TypeVar("T")


class Destinations:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.stub = admin_pb2_grpc.AdminServiceStub(server.channel())

    def call(self, rpc: str, request: Any) -> Any:
        return getattr(self.stub, rpc)(request, metadata=self.server.admin_metadata, timeout=30)

    def create(self, name: str, kind: str = "webhook", settings: dict[str, Any] | None = None, **fields: Any) -> Any:
        definition = destination_pb2.Destination(
            name=name, kind=kind, settings=json.dumps(settings or {}).encode(), **fields
        )
        return self.call(
            "CreateDestination", destination_pb2.CreateDestinationRequest(destination=definition)
        ).destination

    def webhook(self, name: str, url: str, **fields: Any) -> Any:
        return self.create(name, "webhook", {"url": url, "allow": ["127.0.0.1"], "timeout_secs": 2}, **fields)

    def stats(self, name: str) -> Any:
        return self.call("DeliveryStats", destination_pb2.DeliveryStatsRequest(name=name)).destinations[0]

    def dead_letters(self, name: str) -> list[Any]:
        request = destination_pb2.ListDeadLettersRequest(name=name, limit=1000)
        return list(self.call("ListDeadLetters", request).dead_letters)

    def settled(self, name: str, timeout: float = 20.0) -> Any:
        """The destination's stats once its cursor reached the end of the log."""
        return wait_for(lambda: (s := self.stats(name)) and s.backlog == 0 and s.cursor > 0 and s, timeout)


def wait_for(probe: Callable[[], T | bool | None], timeout: float = 20.0, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def delivered_events(requests: list[Any]) -> list[dict[str, Any]]:
    """Every event the sink received, in the order received."""
    return [event for request in requests for event in json.loads(request.body)]
