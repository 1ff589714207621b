"""Client calls, queueing and backpressure that need no server (the target refuses connections)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import grpc
import pytest
from tributary import Backoff, Client, ClientClosed, DeliveryFailed, InvalidEvent, QueueFull
from tributary._proto.cdp.v1 import event_pb2


@pytest.fixture
def client(unused_target: str) -> Any:
    client = Client(unused_target, "key", backoff=Backoff(0.05, 2.0, 0.2), max_retries=0)
    yield client
    # Nothing listens there: events a test queued cannot be delivered, which close() reports.
    with contextlib.suppress(DeliveryFailed):
        client.close(timeout=5)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.identify(traits={"a": 1}), "userId"),
        (lambda c: c.track("u"), "event"),
        (lambda c: c.group("u"), "groupId"),
        (lambda c: c.alias("", "u"), "previousId"),
        (lambda c: c.track("u", "E", timestamp=datetime(2024, 1, 1)), "timestamp"),
        (lambda c: c.identify("u", [1, 2]), "traits"),
        (lambda c: c.track("u", "E", {"x": float("inf")}), "properties"),
        (lambda c: c.page("u", context={"when": object()}), "context"),
        (lambda c: c.track("u", "E", message_id="m" * 101), "messageId"),
        (lambda c: c.enqueue({"type": "nope"}), "type"),
    ],
)
def test_mistakes_raise_at_the_call_site(client: Client, call: Any, field: str) -> None:
    with pytest.raises(InvalidEvent) as raised:
        call(client)
    assert raised.value.field == field


def test_calls_after_close_raise(client: Client) -> None:
    client.close()
    with pytest.raises(ClientClosed):
        client.track("u", "E")
    with pytest.raises(ClientClosed):
        client.stream([])
    assert client.close() is True  # idempotent


def test_enqueue_does_not_change_the_callers_event(client: Client) -> None:
    event = event_pb2.Event(type=event_pb2.EVENT_TYPE_TRACK, user_id="u", event="E")
    message_id = client.enqueue(event)
    assert message_id and event.message_id == "" and not event.HasField("original_timestamp")


def test_full_queue_blocks_for_timeout_then_raises_and_close_reports_the_rest(unused_target: str) -> None:
    failed: list[tuple[Exception, Sequence[dict[str, Any]]]] = []
    client = Client(
        unused_target,
        "key",
        max_queue=10,
        batch_size=5,
        timeout=0.3,
        max_retries=1_000,  # the sender keeps retrying its batch: nothing drains the queue
        backoff=Backoff(0.05, 2.0, 0.2),
        on_error=lambda exc, events: failed.append((exc, events)),
    )
    accepted = []
    with pytest.raises(QueueFull):
        for n in range(100):
            started = time.monotonic()
            accepted.append(client.track("u", "E", {"n": n}))
    assert time.monotonic() - started >= 0.3
    assert 10 <= len(accepted) <= 15  # the queue, plus the batch the sender holds

    assert client.close(timeout=0.5) is False
    reported = [event["messageId"] for _, events in failed for event in events]
    assert sorted(reported) == sorted(accepted)  # every accepted event is accounted for
    assert any(isinstance(exc, ClientClosed) for exc, _ in failed)


def test_flush_times_out_while_the_server_is_unreachable(unused_target: str) -> None:
    with Client(unused_target, "key", max_retries=1_000, backoff=Backoff(0.05, 2.0, 0.2)) as client:
        client.track("u", "E")
        assert client.flush(timeout=0.3) is False
        client.close(timeout=0.1)


def test_unreachable_server_is_reported_after_the_retries(unused_target: str) -> None:
    failed: list[Exception] = []
    with Client(
        unused_target, "key", max_retries=3, backoff=Backoff(0.01, 2.0, 0.05), on_error=lambda e, _: failed.append(e)
    ) as client:
        client.track("u", "E")
        with pytest.raises(DeliveryFailed, match="unreachable through every retry") as raised:
            client.flush(timeout=10)
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE and raised.value.events == 1
    assert len(failed) == 1 and "UNAVAILABLE" in str(failed[0])
