"""Delivery to webhooks end to end: a real server, real HTTP receivers on 127.0.0.1 that fail,
hang or reset on command, and the retry window run by a faster clock
(`delivery_time_scale`: one real second is an hour of retries)."""

from __future__ import annotations

import itertools
import json
import os
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
from delivery_helpers import Destinations, delivered_events, wait_for
from rpc import Rpc, track
from standardwebhooks import Webhook
from tributary._proto.cdp.v1 import destination_pb2
from webhook_sink import Reply, WebhookSink

from cdp_server.destinations.manager import DELIVERY_NICENESS

pytest_plugins = ["sinks_conftest"]

FAST = {"TRIBUTARY_DELIVERY_TIME_SCALE": "3600"}


@pytest.fixture
def fast_server(server_factory: Any) -> Any:
    return server_factory(env=FAST)


def send(server: Any, count: int, *, users: int = 3, prefix: str = "m") -> list[str]:
    rpc = Rpc(server)
    try:
        ids = [f"{prefix}{i}" for i in range(count)]
        for start in range(0, count, 500):
            rpc.send([track(i, user_id=f"u{int(i[len(prefix) :]) % users}") for i in ids[start : start + 500]])
        return ids
    finally:
        rpc.close()


def test_every_event_reaches_the_webhook_signed_in_log_order(server: Any, webhook_sink: WebhookSink) -> None:
    destinations = Destinations(server)
    created = destinations.webhook("hook", webhook_sink.url, batch_size=50)
    secret = json.loads(created.settings)["secrets"][0]
    ids = send(server, 230)
    stats = destinations.settled("hook")
    received = delivered_events(webhook_sink.requests)
    assert [e["messageId"] for e in received] == ids, "each event once, in log order"
    assert stats.delivered == 230 and stats.dead_letters == 0 and stats.state in ("idle", "delivering")
    for request in webhook_sink.requests:
        assert len(json.loads(request.body)) <= 50
        Webhook(secret).verify(request.body, request.headers)  # raises when the signature is wrong
    shown = destinations.call("GetDestination", destination_pb2.GetDestinationRequest(name="hook")).destination
    assert secret not in shown.settings.decode(), "secrets are never sent back"
    metrics = urllib.request.urlopen(server.http_url + "/metrics", timeout=5).read().decode()
    assert 'tributary_destination_events_delivered_total{destination="hook"} 230' in metrics
    assert 'tributary_destination_backlog_events{destination="hook"} 0' in metrics


@pytest.mark.parametrize(
    "failure",
    [500, 503, 408, Reply(429, headers={"Retry-After": "120"}), Reply.hang(), Reply.reset()],
    ids=["500", "503", "408", "429+retry-after", "timeout", "reset"],
)
def test_retryable_failures_are_retried_until_delivered(
    fast_server: Any, webhook_sink: WebhookSink, failure: Any
) -> None:
    destinations = Destinations(fast_server)
    webhook_sink.script([failure, failure, 200])
    destinations.webhook("hook", webhook_sink.url)
    ids = send(fast_server, 20)
    stats = destinations.settled("hook", timeout=30)
    requests = webhook_sink.requests
    assert len(requests) == 3, "two failures, then the delivery"
    assert len({r.headers["webhook-id"] for r in requests}) == 1, "the same delivery id on every try"
    assert [e["messageId"] for e in delivered_events(requests[-1:])] == ids
    assert (stats.delivered, stats.retried, stats.dead_letters) == (20, 40, 0)
    if isinstance(failure, Reply) and failure.status == 429:
        gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(requests)]
        assert min(gaps) >= 120 / 3600, "Retry-After is honoured (120 s at 3,600x)"


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_other_client_errors_dead_letter_at_once(fast_server: Any, webhook_sink: WebhookSink, status: int) -> None:
    destinations = Destinations(fast_server)
    webhook_sink.script([Reply(status, body=b"bad payload")])
    destinations.webhook("hook", webhook_sink.url, batch_size=10)
    ids = send(fast_server, 25)
    stats = destinations.settled("hook")
    letters = destinations.dead_letters("hook")
    assert [d.message_id for d in letters] == ids[:10], "the refused batch, nothing else"
    assert all(f"HTTP {status}" in d.reason and d.attempts == 1 for d in letters)
    assert json.loads(letters[0].event)["messageId"] == ids[0]
    assert stats.delivered + stats.dead_lettered == 25, "sent = delivered + dead-lettered"
    assert stats.last_error == letters[0].reason, "the refusal is the destination's last error"
    assert len(webhook_sink.requests) == 3


def test_a_destination_down_past_the_retry_window_dead_letters_then_replays(
    fast_server: Any, webhook_sink: WebhookSink
) -> None:
    destinations = Destinations(fast_server)
    webhook_sink.respond(503)
    # A one-hour window: one real second at 3,600x.
    destinations.webhook("hook", webhook_sink.url, retry_window_secs=3600)
    ids = send(fast_server, 30)
    wait_for(lambda: len(destinations.dead_letters("hook")) == 30, timeout=30)
    letters = destinations.dead_letters("hook")
    assert "still failing after" in letters[0].reason and "HTTP 503" in letters[0].reason
    assert letters[0].attempts >= 5, "retried with backoff across the window"
    assert destinations.stats("hook").last_error.startswith("still failing after")
    failed = len(webhook_sink.requests)
    # Back up: the dead letters are delivered on request and leave the store.
    webhook_sink.respond(200)
    reply = destinations.call("ReplayDeadLetters", destination_pb2.DeadLettersRequest(name="hook"))
    assert reply.count == 30
    wait_for(lambda: not destinations.dead_letters("hook"))
    replayed = delivered_events(webhook_sink.requests[failed:])
    assert sorted(e["messageId"] for e in replayed) == sorted(ids)
    assert replayed[0]["integrations"] == {"All": False, "hook": True}


def test_a_batch_too_large_is_split(fast_server: Any, webhook_sink: WebhookSink) -> None:
    destinations = Destinations(fast_server)
    webhook_sink.script([413, 200, 413, 200, 200])
    destinations.webhook("hook", webhook_sink.url, batch_size=8)
    ids = send(fast_server, 8)
    stats = destinations.settled("hook")
    sizes = [len(json.loads(r.body)) for r in webhook_sink.requests]
    assert sizes == [8, 4, 4, 2, 2]
    accepted = [r for i, r in enumerate(webhook_sink.requests) if i in (1, 3, 4)]
    assert [e["messageId"] for e in delivered_events(accepted)] == ids, "in order, each once"
    assert stats.delivered == 8 and stats.dead_letters == 0


def test_a_crash_after_the_destination_took_a_batch_delivers_it_again_with_the_same_id(
    server_factory: Any, webhook_sink: WebhookSink
) -> None:
    server = server_factory()
    destinations = Destinations(server)
    destinations.webhook("hook", webhook_sink.url, batch_size=100)
    webhook_sink.script([Reply.hang()])
    ids = send(server, 100)
    first = webhook_sink.wait_for_requests(1)[0]
    server.kill()  # the batch was received; its cursor was never settled
    webhook_sink.release()
    server.start()
    destinations = Destinations(server)
    destinations.settled("hook")
    again = webhook_sink.requests[-1]
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    assert [e["messageId"] for e in json.loads(again.body)] == ids


def test_a_hanging_destination_does_not_hold_up_another(
    server: Any, webhook_sink: WebhookSink, webhook_sinks: Any
) -> None:
    stuck = webhook_sinks()
    stuck.respond(Reply.hang())
    destinations = Destinations(server)
    destinations.webhook("stuck", stuck.url)
    destinations.webhook("healthy", webhook_sink.url)
    ids = send(server, 600)
    destinations.settled("healthy")
    assert [e["messageId"] for e in delivered_events(webhook_sink.requests)] == ids
    assert destinations.stats("stuck").backlog > 0
    stuck.release()


def test_paused_destinations_wait_and_resume_where_they_stopped(server: Any, webhook_sink: WebhookSink) -> None:
    destinations = Destinations(server)
    destinations.webhook("hook", webhook_sink.url)
    first = send(server, 10, prefix="a")
    destinations.settled("hook")
    destinations.call("SetDestinationPaused", destination_pb2.SetDestinationPausedRequest(name="hook", paused=True))
    later = send(server, 10, prefix="b")
    assert destinations.stats("hook").state == "paused"
    assert destinations.stats("hook").backlog == 10
    destinations.call("SetDestinationPaused", destination_pb2.SetDestinationPausedRequest(name="hook", paused=False))
    destinations.settled("hook")
    assert [e["messageId"] for e in delivered_events(webhook_sink.requests)] == first + later


def test_a_destination_past_its_max_backlog_is_alerted_on_then_caught_up(
    fast_server: Any, webhook_sink: WebhookSink
) -> None:
    destinations = Destinations(fast_server)
    destinations.webhook("slow", webhook_sink.url, max_backlog=5)
    destinations.call("SetDestinationPaused", destination_pb2.SetDestinationPausedRequest(name="slow", paused=True))
    send(fast_server, 6)
    assert destinations.stats("slow").lagging
    # The watch runs every 10 s of the delivery clock (3 ms here): the warning is logged once.
    wait_for(lambda: "destination lagging" in fast_server.log_path.read_text())
    metrics = urllib.request.urlopen(fast_server.http_url + "/metrics", timeout=10).read().decode()
    assert 'destination_lagging{destination="slow"} 1' in metrics
    destinations.call("SetDestinationPaused", destination_pb2.SetDestinationPausedRequest(name="slow", paused=False))
    destinations.settled("slow")
    wait_for(lambda: "destination caught up" in fast_server.log_path.read_text())
    assert fast_server.log_path.read_text().count("destination lagging") == 1
    metrics = urllib.request.urlopen(fast_server.http_url + "/metrics", timeout=10).read().decode()
    assert 'destination_lagging{destination="slow"} 0' in metrics


def _thread_niceness(pid: int) -> list[int]:
    """The niceness of each of a process's threads (field 19 of /proc/PID/task/TID/stat)."""
    found = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        fields = stat.read_text().rsplit(")", 1)[1].split()
        found.append(int(fields[16]))
    return found


def test_delivery_threads_run_below_ingest(server: Any, webhook_sink: WebhookSink) -> None:
    destinations = Destinations(server)
    destinations.webhook("hook", webhook_sink.url)
    send(server, 5)
    destinations.settled("hook")
    assert server.process is not None
    main_niceness = os.getpriority(os.PRIO_PROCESS, server.process.pid)
    niceness = _thread_niceness(server.process.pid)
    # The delivery loop and its pool's threads (a read, a settle: at least one) are lowered; the
    # rest (gRPC, the HTTP port, the engine's ingest) are not.
    assert niceness.count(min(main_niceness + DELIVERY_NICENESS, 19)) >= 2, niceness
    assert niceness.count(main_niceness) > len(niceness) // 2, niceness


def test_replay_a_message_id_to_one_destination(server: Any, webhook_sink: WebhookSink) -> None:
    destinations = Destinations(server)
    destinations.webhook("hook", webhook_sink.url)
    ids = send(server, 5)
    destinations.settled("hook")
    before = len(webhook_sink.requests)
    reply = destinations.call("Replay", destination_pb2.ReplayRequest(name="hook", message_ids=[ids[2]]))
    assert reply.queued == 1
    wait_for(lambda: len(webhook_sink.requests) > before)
    assert [e["messageId"] for e in delivered_events(webhook_sink.requests[before:])] == [ids[2]]


def test_a_replay_queued_while_paused_survives_a_restart_and_runs_once(server: Any, webhook_sink: WebhookSink) -> None:
    destinations = Destinations(server)
    destinations.webhook("hook", webhook_sink.url)
    ids = send(server, 6)
    destinations.settled("hook")
    destinations.call("SetDestinationPaused", destination_pb2.SetDestinationPausedRequest(name="hook", paused=True))
    before = len(webhook_sink.requests)
    reply = destinations.call("Replay", destination_pb2.ReplayRequest(name="hook", message_ids=ids[1:4]))
    assert reply.queued == 3
    assert destinations.stats("hook").state == "paused"
    assert server.stop() == 0
    server.start()
    destinations = Destinations(server)
    assert len(webhook_sink.requests) == before, "paused: nothing sent"
    destinations.call("SetDestinationPaused", destination_pb2.SetDestinationPausedRequest(name="hook", paused=False))
    wait_for(lambda: len(delivered_events(webhook_sink.requests[before:])) >= 3)
    wait_for(lambda: destinations.stats("hook").replays == 0)
    assert [e["messageId"] for e in delivered_events(webhook_sink.requests[before:])] == ids[1:4]
    # Done, it is forgotten: another restart replays nothing.
    assert server.stop() == 0
    server.start()
    Destinations(server).settled("hook")
    assert [e["messageId"] for e in delivered_events(webhook_sink.requests[before:])] == ids[1:4]


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest",
        "http://[::1]:9/",
        "file:///etc/passwd",
        "http://0x7f000001/",
    ],
)
def test_private_targets_are_refused_when_saved(server: Any, url: str) -> None:
    destinations = Destinations(server)
    with pytest.raises(grpc.RpcError) as refused:
        destinations.create("hook", "webhook", {"url": url})
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "destination.settings.url" in (refused.value.details() or "")


def test_routing_honours_integrations_and_consent(server: Any, webhook_sink: WebhookSink) -> None:
    destinations = Destinations(server)
    destinations.webhook("hook", webhook_sink.url, consent_categories=["Analytics"])
    rpc = Rpc(server)
    try:
        rpc.send(
            [
                track("plain"),
                track("off", integrations=b'{"All": false}'),
                track("on", integrations=b'{"All": false, "hook": true}'),
                track("denied", context=b'{"consent": {"categoryPreferences": {"Analytics": false}}}'),
                track("granted", context=b'{"consent": {"categoryPreferences": {"Analytics": true}}}'),
            ]
        )
    finally:
        rpc.close()
    stats = destinations.settled("hook")
    assert [e["messageId"] for e in delivered_events(webhook_sink.requests)] == ["plain", "on", "granted"]
    assert stats.filtered == 2
