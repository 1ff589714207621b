"""Background delivery against a real server: batching, flush, rejections, retries across a crash."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from tributary import Backoff, Client, DeliveryFailed, EventRejected, MessageIdConflict, QueueFull, event_to_json

Failures = list[tuple[Exception, Sequence[dict[str, Any]]]]


def collector() -> tuple[Failures, Any]:
    failures: Failures = []
    return failures, lambda exc, events: failures.append((exc, list(events)))


def test_calls_are_sent_in_batches_of_at_most_batch_size(make_client: Any, stored_events: Any, user_id: str) -> None:
    client = make_client(batch_size=50, flush_interval=5.0)
    ids = [client.track(user_id, "Clicked", {"n": n}) for n in range(120)]
    assert client.flush(timeout=30)
    stored = stored_events(user_id)
    assert sorted(e.message_id for e in stored) == sorted(ids)
    # Events of one Send share its sent_at: full batches went out at once, the rest on flush.
    sizes = Counter((e.sent_at.seconds, e.sent_at.nanos) for e in stored)
    assert sorted(sizes.values()) == [20, 50, 50]


def test_every_call_is_stored_as_segment_spec(make_client: Any, stored_events: Any, user_id: str) -> None:
    client = make_client()
    when = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    client.identify(user_id, {"email": "ada@example.com"}, anonymous_id="anon-1", timestamp=when)
    client.track(user_id, "Order Completed", {"revenue": 42.5}, context={"ip": "10.0.0.1"})
    client.page(user_id, "Pricing", {"path": "/pricing"}, category="Docs")
    client.screen(user_id, "Cart")
    client.group(user_id, "acme", {"plan": "pro"}, integrations={"All": False})
    client.alias("anon-1", user_id)
    assert client.flush(timeout=30)
    messages = {m["type"]: m for m in map(event_to_json, stored_events(user_id))}
    assert set(messages) == {"identify", "track", "page", "screen", "group", "alias"}
    assert messages["identify"]["traits"] == {"email": "ada@example.com"}
    assert messages["identify"]["originalTimestamp"] == "2024-01-02T03:04:05.678Z"
    assert messages["track"]["context"] == {
        "library": {"name": "tributary-python", "version": "0.1.0"},
        "ip": "10.0.0.1",
    }
    assert messages["page"]["properties"] == {"path": "/pricing", "category": "Docs"}
    assert messages["page"]["name"] == "Pricing"
    assert messages["group"]["groupId"] == "acme" and messages["group"]["integrations"] == {"All": False}
    assert messages["alias"]["previousId"] == "anon-1"
    assert all("receivedAt" in m and "timestamp" in m for m in messages.values())


@pytest.mark.parametrize("valid", [10, 400], ids=["results-attached", "results-too-large"])
def test_rejected_events_go_to_on_error_and_the_rest_are_stored(
    make_client: Any, stored_events: Any, user_id: str, valid: int
) -> None:
    failures, on_error = collector()
    client = make_client(on_error=on_error, batch_size=500, flush_interval=5.0)
    ids = [client.track(user_id, "E", {"n": n}) for n in range(valid // 2)]
    bad = [
        client.enqueue({"type": "track", "event": "E"}),  # neither userId nor anonymousId
        client.enqueue({"type": "track", "userId": user_id}),  # track without event
    ]
    ids += [client.track(user_id, "E", {"n": n}) for n in range(valid // 2, valid)]
    assert client.flush(timeout=60)
    assert {(type(exc), exc.field) for exc, _ in failures if isinstance(exc, EventRejected)} == {
        (EventRejected, "userId"),
        (EventRejected, "event"),
    }
    assert sorted(event["messageId"] for _, events in failures for event in events) == sorted(bad)
    stored = stored_events(user_id)
    assert sorted(e.message_id for e in stored) == sorted(ids)  # each once, resends deduplicated


def test_a_reused_message_id_with_another_payload_is_a_conflict(
    make_client: Any, stored_events: Any, user_id: str
) -> None:
    failures, on_error = collector()
    client = make_client(on_error=on_error)
    client.track(user_id, "First", message_id=f"{user_id}-m")
    assert client.flush(timeout=30)
    client.track(user_id, "Second", message_id=f"{user_id}-m")
    assert client.flush(timeout=30)
    assert [type(exc) for exc, _ in failures] == [MessageIdConflict]
    assert [e.event for e in stored_events(user_id)] == ["First"]


def test_a_wrong_write_key_is_reported_without_retrying(make_client: Any) -> None:
    failures, on_error = collector()
    client = make_client(write_key="not-a-key", on_error=on_error, backoff=Backoff(1.0, 2.0, 10.0))
    started = time.monotonic()
    client.track("u", "E")
    with pytest.raises(DeliveryFailed, match="does not know this write key") as raised:
        client.flush(timeout=30)
    assert raised.value.code == grpc.StatusCode.UNAUTHENTICATED and raised.value.events == 1
    assert time.monotonic() - started < 1.0  # a retry would have waited
    [(exc, events)] = failures
    assert isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.UNAUTHENTICATED
    assert [event["event"] for event in events] == ["E"]
    assert client.flush(timeout=30)  # raised once, then forgotten


def test_a_with_block_ends_with_delivery_failed_on_a_wrong_write_key(server: Any) -> None:
    with pytest.raises(DeliveryFailed) as raised, Client(server.target, "not-a-key") as client:
        client.identify("u", {"plan": "pro"})
    assert raised.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "write key" in str(raised.value) and "1 event(s) not stored" in str(raised.value)


@pytest.mark.parametrize("outage", ["kill", "stop"])
def test_sends_survive_a_server_restart_without_duplicates(
    server: Any, make_client: Any, stored_events: Any, user_id: str, outage: str
) -> None:
    failures, on_error = collector()
    client = make_client(on_error=on_error, batch_size=20, flush_interval=0.05)
    ids = [client.track(user_id, "Before", {"n": n}) for n in range(50)]
    assert client.flush(timeout=30)
    getattr(server, outage)()
    ids += [client.track(user_id, "During", {"n": n}) for n in range(50)]
    time.sleep(0.5)  # the sender is retrying against a dead port
    server.start()
    assert client.flush(timeout=60)
    assert failures == []
    stored = stored_events(user_id)
    assert sorted(e.message_id for e in stored) == sorted(ids)


def test_queue_full_is_backpressure_not_loss(server: Any, make_client: Any, stored_events: Any, user_id: str) -> None:
    server.stop()
    failures, on_error = collector()
    client = make_client(on_error=on_error, max_queue=10, batch_size=5, timeout=0.3, max_retries=1_000)
    accepted = []
    with pytest.raises(QueueFull):
        for n in range(100):
            accepted.append(client.track(user_id, "E", {"n": n}))
    server.start()
    assert client.flush(timeout=60)
    assert failures == []
    assert sorted(e.message_id for e in stored_events(user_id)) == sorted(accepted)


def test_many_threads_share_one_client(make_client: Any, stored_events: Any, user_id: str) -> None:
    client = make_client(batch_size=100, max_queue=500)
    ids: list[str] = []
    lock = threading.Lock()

    def worker(thread: int) -> None:
        mine = [client.track(user_id, "E", {"thread": thread, "n": n}) for n in range(250)]
        with lock:
            ids.extend(mine)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.flush(timeout=60)
    stored = stored_events(user_id)
    assert len(stored) == 2000 and sorted(e.message_id for e in stored) == sorted(ids)
    assert {json.loads(e.properties)["thread"] for e in stored} == set(range(8))


def test_closing_the_context_manager_delivers_the_queue(server: Any, stored_events: Any, user_id: str) -> None:
    with Client(server.target, server.write_key, flush_interval=10.0) as client:
        ids = [client.identify(user_id, {"n": n}) for n in range(5)]
    assert sorted(e.message_id for e in stored_events(user_id)) == sorted(ids)
