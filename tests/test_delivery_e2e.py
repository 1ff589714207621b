"""Delivery end to end: events ingested over gRPC and HTTP into a real server, destinations made
through AdminService, delivered to real receivers on loopback (fault-injecting HTTP sinks, the
private PostgreSQL of tests/postgres.py) while those fail, restart, hang or redirect.

What the unit tests of each kind cannot show: the worker, the engine's reads and settles, routing
and the kinds together, under ingest. The retry clock runs 3,600 times faster
(`delivery_time_scale`), so a backoff of minutes takes milliseconds. Randomness is seeded:
DELIVERY_SEED replays a run, and every assertion that depends on it names the seed.

1. Each profile's events arrive in order, each acknowledged once, through a seeded script of 503, 500, 429 and
   connection resets, ingested over gRPC and HTTP; an event's tries share one webhook-id; a batch re-sent after a
   crash keeps its webhook-id even when more events were logged meanwhile.
2. A warehouse through two PostgreSQL outages (one in the middle of a batch's transaction) with ingest going on:
   every event in its tables exactly once, `users` holding each user's newest traits.
3. Engage's entries, exits and trait identifies reach the destinations connected to their computation, with only
   that computation's traits, and never another destination, also when they are the first Engage ever writes.
4. Forty hanging destinations (more than the delivery threads) hold up neither ingest nor a healthy destination,
   and catch up, in the log's order, once released.
5. A redirect out of the allow-list dead-letters the batch at once, naming the refusal; its target gets nothing.
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from delivery_helpers import Destinations, delivered_events, wait_for
from http_client import post
from rpc import IDENTIFY, Rpc, track, ts
from test_audience_realtime import Audiences
from tributary._proto.cdp.v1 import event_pb2, ingest_pb2
from webhook_sink import Reply, WebhookSink

if TYPE_CHECKING:
    from postgres import PostgresDatabase, PostgresServer

pytest_plugins = ["sinks_conftest", "postgres"]

FAST = {"TRIBUTARY_DELIVERY_TIME_SCALE": "3600"}
SEED = int(os.environ.get("DELIVERY_SEED", "20240501"))
# Longer than any outage here even at 3,600x (a week: 168 s of real time): nothing may be dead-lettered.
LONG_WINDOW_SECS = 7 * 86_400
ORDER = "Order Completed"
VIEW = "Product Viewed"


@pytest.fixture
def fast_server(server_factory: Any) -> Any:
    return server_factory(env=FAST)


# -- sending ------------------------------------------------------------------------------------------------------


def send_grpc(rpc: Rpc, events: list[event_pb2.Event]) -> None:
    """One Send request; every event must be acknowledged as stored."""
    reply = rpc.send(events)
    statuses = {result.status for result in reply.results}
    assert len(reply.results) == len(events) and statuses == {ingest_pb2.EVENT_STATUS_ACCEPTED}, reply


def send_http(server: Any, events: list[event_pb2.Event]) -> None:
    """The same events as one Tracking API /v1/batch request; every one must be accepted."""
    batch = [
        {"type": "track", "messageId": e.message_id, "userId": e.user_id, "event": e.event, "properties": {"n": 1}}
        for e in events
    ]
    status, body, _ = post(server, "/v1/batch", {"batch": batch}, key=server.write_key)
    assert (status, body) == (200, {"success": True}), body


def identify(message_id: str, user_id: str, at_ms: int, **traits: Any) -> event_pb2.Event:
    return event_pb2.Event(
        type=IDENTIFY, message_id=message_id, user_id=user_id, timestamp=ts(at_ms), traits=json.dumps(traits).encode()
    )


def per_user(events: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """messageIds by userId, in the order given."""
    by_user: dict[str, list[str]] = defaultdict(list)
    for event in events:
        by_user[event["userId"]].append(event["messageId"])
    return dict(by_user)


def first_arrivals(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each event's first arrival, in arrival order."""
    seen: set[str] = set()
    first = []
    for event in events:
        if event["messageId"] not in seen:
            seen.add(event["messageId"])
            first.append(event)
    return first


def was_accepted(request: Any) -> bool:
    """Whether the sink answered the request with a 2xx: a delivery a receiver acted on."""
    return bool(request.reply.behaviour == "answer" and 200 <= request.reply.status < 300)


# -- 1. order per profile under retries ---------------------------------------------------------------------------

# What the sink answers, drawn per request: the failures a worker must retry, and successes between them.
FAILURES: list[Reply] = [
    Reply(503, body=b"down for maintenance"),
    Reply(500),
    Reply(429, headers={"Retry-After": "30"}),
    Reply.reset(),
]


def test_each_profiles_events_arrive_in_order_once_through_retries_of_every_kind(
    fast_server: Any, webhook_sink: WebhookSink
) -> None:
    rng = random.Random(SEED)
    users = [f"user-{n}" for n in range(50)]
    # Half of the first 160 requests fail, each in one of the retryable ways; then every request succeeds.
    webhook_sink.script(rng.choice(FAILURES) if rng.random() < 0.5 else Reply(200) for _ in range(160))
    destinations = Destinations(fast_server)
    destinations.webhook("hook", webhook_sink.url, batch_size=20, retry_window_secs=LONG_WINDOW_SECS)
    # 1,200 events of 50 interleaved users, in 24 requests alternating gRPC and HTTP, sent while delivery
    # (and its failures) goes on: the log's order is the order sent.
    sent = [
        track(f"e{n}", user_id=rng.choice(users), name=rng.choice([ORDER, VIEW]), properties={"n": 1})
        for n in range(1200)
    ]
    rpc = Rpc(fast_server)
    try:
        for index, start in enumerate(range(0, len(sent), 50)):
            chunk = sent[start : start + 50]
            if index % 2 == 0:
                send_grpc(rpc, chunk)
            else:
                send_http(fast_server, chunk)
    finally:
        rpc.close()
    stats = destinations.settled("hook", timeout=60)

    requests = webhook_sink.requests
    ok = [r for r in requests if was_accepted(r)]
    failed = [r for r in requests if not was_accepted(r)]
    expected = per_user({"messageId": e.message_id, "userId": e.user_id} for e in sent)
    assert per_user(delivered_events(ok)) == expected, (
        f"seed {SEED}: each event acknowledged once, each user's in log order"
    )
    assert per_user(first_arrivals(delivered_events(requests))) == expected, (
        f"seed {SEED}: the first arrival of each event, failed tries included, is in its user's log order"
    )
    ids_of: dict[str, set[str]] = defaultdict(set)
    batch_of: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for request in requests:
        carried = tuple(e["messageId"] for e in json.loads(request.body))
        batch_of[request.headers["webhook-id"]].add(carried)
        for message_id in carried:
            ids_of[message_id].add(request.headers["webhook-id"])
    assert all(len(ids) == 1 for ids in ids_of.values()), f"seed {SEED}: an event's tries share one webhook-id"
    assert all(len(batches) == 1 for batches in batch_of.values()), f"seed {SEED}: a webhook-id means one batch"
    # The script did what it is there for: every kind of failure happened, to batches of events.
    assert {(r.reply.status, r.reply.behaviour) for r in failed} == {(f.status, f.behaviour) for f in FAILURES}, (
        f"seed {SEED}"
    )
    assert stats.delivered == len(sent) and stats.dead_lettered == 0 and stats.dead_letters == 0
    assert stats.retried == len(delivered_events(failed)), "every failed try counted, event by event"


def test_a_batch_delivered_again_after_a_crash_keeps_its_webhook_id_though_more_events_arrived(
    server_factory: Any, webhook_sink: WebhookSink
) -> None:
    """docs/connections.md: "a crash before that delivers it again with the same `webhook-id`", and a receiver
    deduplicates by that id. The batch in flight at the crash held 10 events; 10 more were logged while it hung."""
    server = server_factory()
    destinations = Destinations(server)
    destinations.webhook("hook", webhook_sink.url, batch_size=100)
    webhook_sink.script([Reply.hang()])
    rpc = Rpc(server)
    try:
        send_grpc(rpc, [track(f"a{n}") for n in range(10)])
        first = webhook_sink.wait_for_requests(1)[0]
        send_grpc(rpc, [track(f"b{n}") for n in range(10)])
    finally:
        rpc.close()
    server.kill()  # the batch was received, its cursor never settled
    webhook_sink.release()
    server.start()
    Destinations(server).settled("hook")
    first_ids = [e["messageId"] for e in json.loads(first.body)]
    redelivered = webhook_sink.requests[1:]
    assert first_ids == [f"a{n}" for n in range(10)]
    assert sorted(e["messageId"] for e in delivered_events(redelivered)) == sorted(
        [*first_ids, *(f"b{n}" for n in range(10))]
    ), "every event delivered after the restart"
    again = redelivered[0]
    assert again.headers["webhook-id"] == first.headers["webhook-id"], (
        "the batch in flight at the crash is delivered again under its id; it came back as "
        f"{[e['messageId'] for e in json.loads(again.body)]}"
    )


# -- 2. a warehouse through PostgreSQL outages ----------------------------------------------------------------------


class Workload:
    """Tracks of two names and identifies (plan, version) of 20 users, numbered across calls: the k-th event is
    `w<k>` at BASE_MS + k seconds, so each user's newest identify is the last one sent."""

    BASE_MS = 1_714_564_800_000  # 2024-05-01T12:00:00Z

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.users = [f"buyer-{n}" for n in range(20)]
        self.sent: list[event_pb2.Event] = []

    def next(self, count: int) -> list[event_pb2.Event]:
        events = []
        for _ in range(count):
            k = len(self.sent) + len(events)
            user, at_ms = self.rng.choice(self.users), self.BASE_MS + k * 1000
            if self.rng.random() < 0.2:
                events.append(identify(f"w{k}", user, at_ms, plan=self.rng.choice(["free", "team", "pro"]), version=k))
            else:
                name = self.rng.choice([ORDER, VIEW])
                events.append(track(f"w{k}", user_id=user, name=name, timestamp=ts(at_ms), properties={"k": k}))
        self.sent.extend(events)
        return events

    def ids(self, event_type: int = event_pb2.EVENT_TYPE_TRACK, name: str | None = None) -> list[str]:
        return sorted(e.message_id for e in self.sent if e.type == event_type and name in (None, e.event))

    def users_table(self) -> list[tuple[str, str, int]]:
        """What `users` must hold: each user's newest plan and version."""
        newest = {e.user_id: json.loads(e.traits) for e in self.sent if e.type == IDENTIFY}
        return sorted((user, traits["plan"], traits["version"]) for user, traits in newest.items())


def loader_waits_on_a_lock(database: PostgresDatabase, destination: str) -> bool:
    rows = database.query(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
        (f"tributary:{destination}",),
    )
    return bool(rows[0][0])


def test_a_warehouse_through_two_postgres_outages_holds_every_event_once(
    fast_server: Any, postgres: PostgresDatabase, postgres_server: PostgresServer
) -> None:
    destinations = Destinations(fast_server)
    settings = {"dsn": postgres.dsn, "allow": ["127.0.0.1"]}
    destinations.create("dw", "warehouse", settings, batch_size=40, retry_window_secs=LONG_WINDOW_SECS)
    workload = Workload(SEED)
    rpc = Rpc(fast_server)

    def retrying() -> bool:
        stats = destinations.stats("dw")
        return bool(stats.state == "retrying" and stats.last_error.startswith("warehouse"))

    try:
        send_grpc(rpc, workload.next(120))
        destinations.settled("dw")
        # Outage 1, in the middle of a batch: another session holds a lock on the event table, so the loader's
        # transaction has COPYed its `tracks` rows and waits on order_completed when the server stops.
        locker = psycopg.connect(postgres.dsn)
        try:
            locker.execute("LOCK TABLE tributary.order_completed IN ACCESS EXCLUSIVE MODE")
            send_grpc(rpc, workload.next(120))
            wait_for(lambda: loader_waits_on_a_lock(postgres, "dw"))
            postgres_server.stop("fast")
        finally:
            locker.close()
        send_grpc(rpc, workload.next(120))  # ingest goes on while the warehouse is down
        wait_for(retrying)
        postgres_server.start_again()
        # Outage 2, a crash of PostgreSQL wherever the loader is, with ingest before, during and after.
        send_grpc(rpc, workload.next(120))
        postgres_server.stop("immediate")
        send_grpc(rpc, workload.next(120))
        wait_for(retrying)
        postgres_server.start_again()
        send_grpc(rpc, workload.next(120))
    finally:
        rpc.close()
    stats = destinations.settled("dw", timeout=30)

    def column(table: str) -> list[str]:
        return sorted(row[0] for row in postgres.query(f'SELECT id FROM tributary."{table}"'))

    assert column("tracks") == workload.ids(), f"seed {SEED}: every track in tracks, once"
    assert column("order_completed") == workload.ids(name=ORDER), f"seed {SEED}"
    assert column("product_viewed") == workload.ids(name=VIEW), f"seed {SEED}"
    assert column("identifies") == workload.ids(IDENTIFY), f"seed {SEED}: every identify, once"
    assert postgres.query("SELECT id, plan, version FROM tributary.users ORDER BY id") == workload.users_table()
    assert stats.delivered == len(workload.sent) and stats.dead_letters == 0 and stats.retried > 0


# -- 3. Engage events go only where their computation is connected -------------------------------------------------


def engage_calls(sink: WebhookSink) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(type, event name, userId, properties or traits) of the Engage events a sink received, in order."""
    return [
        (e["type"], e.get("event", ""), e["userId"], e.get("properties") or e.get("traits") or {})
        for e in delivered_events(sink.requests)
        if e["messageId"].startswith("engage-")
    ]


def own_calls(sink: WebhookSink) -> list[str]:
    """The messageIds of the customer's own (not Engage's) events a sink received, in order."""
    return [e["messageId"] for e in delivered_events(sink.requests) if not e["messageId"].startswith("engage-")]


def test_audience_and_trait_events_reach_only_the_destinations_connected_to_them(
    server: Any, webhook_sinks: Callable[..., WebhookSink]
) -> None:
    crm, analytics, plain = webhook_sinks(), webhook_sinks(), webhook_sinks()
    destinations = Destinations(server)
    engage = Audiences(server)
    try:
        engage.create("pros", "trait('plan') = 'pro'")
        engage.create("orders", "event('Order Completed').count()", computed=True)
        # Engage has written before the destinations exist (its source is made then): see the next test.
        engage.send([identify("eve-pro", "eve", 1_000, plan="pro")])
        wait_for(lambda: engage.trait("user_id:eve", "pros") is True)
        destinations.webhook("crm", crm.url, computations=["pros"])
        destinations.webhook("analytics", analytics.url, computations=["orders"])
        destinations.webhook("plain", plain.url)
        # ada enters `pros`, then leaves it; bob never does, but his order count is computed.
        engage.send([identify("ada-pro", "ada", 1_000, plan="pro"), track("bob-order", user_id="bob", name=ORDER)])
        wait_for(lambda: engage.moves("user_id:ada", "pros") == ["Audience Entered"])
        wait_for(lambda: engage.trait("user_id:bob", "orders") == 1)
        engage.send([identify("ada-free", "ada", 2_000, plan="free")])
        wait_for(lambda: engage.moves("user_id:ada", "pros") == ["Audience Entered", "Audience Exited"])
        wait_for(lambda: engage.trait("user_id:ada", "pros") is False)  # the exit's identify is in the log too
    finally:
        engage.close()
    stats = {name: destinations.settled(name) for name in ("crm", "analytics", "plain")}

    assert engage_calls(crm) == [
        ("track", "Audience Entered", "ada", {"audience_key": "pros", "pros": True}),
        ("identify", "", "ada", {"pros": True}),
        ("track", "Audience Exited", "ada", {"audience_key": "pros", "pros": False}),
        ("identify", "", "ada", {"pros": False}),
    ], "the audience's moves and traits, in order, and no other computation's trait"
    assert own_calls(crm) == ["ada-pro", "bob-order", "ada-free"]
    # Entry and exit come after the calls that caused them.
    crm_order = [e["messageId"] for e in delivered_events(crm.requests)]
    entered = next(i for i, e in enumerate(delivered_events(crm.requests)) if e.get("event") == "Audience Entered")
    exited = next(i for i, e in enumerate(delivered_events(crm.requests)) if e.get("event") == "Audience Exited")
    assert crm_order.index("ada-pro") < entered < crm_order.index("ada-free") < exited
    assert stats["crm"].filtered >= 1, "bob's order count is filtered out as not connected"

    # Connected to the computed trait only: its identify calls, never an audience's moves or trait.
    assert ("identify", "", "bob", {"orders": 1}) in engage_calls(analytics)
    assert all(kind == "identify" and set(traits) <= {"orders"} for kind, _, _, traits in engage_calls(analytics))
    assert own_calls(analytics) == ["ada-pro", "bob-order", "ada-free"]

    # Connected to nothing: the customer's events, and no Engage event at all.
    assert engage_calls(plain) == []
    assert own_calls(plain) == ["ada-pro", "bob-order", "ada-free"]
    assert stats["plain"].filtered >= 5


# -- 4. hanging destinations hold up neither ingest nor another destination -------------------------------------------

# More hanging destinations than the delivery manager has threads (32): a stuck delivery must not hold one.
HANGING = 40


def test_many_hanging_destinations_hold_up_neither_ingest_nor_a_healthy_one(
    fast_server: Any, webhook_sink: WebhookSink, webhook_sinks: Callable[..., WebhookSink]
) -> None:
    stuck = webhook_sinks()
    stuck.respond(Reply.hang())
    destinations = Destinations(fast_server)
    for n in range(HANGING):
        url = f"http://{stuck.address}/stuck-{n}"
        settings = {"url": url, "allow": ["127.0.0.1"], "timeout_secs": 120}  # hangs past the test's end
        destinations.create(f"stuck-{n}", "webhook", settings, batch_size=500, retry_window_secs=LONG_WINDOW_SECS)
    destinations.webhook("healthy", webhook_sink.url, batch_size=100)
    webhook_sink.script([503, 503])  # the healthy one retries too, meanwhile

    # Three clients at once, each request acknowledged in full: gRPC Send, a gRPC stream, and HTTP /v1/batch.
    def grpc_sends() -> None:
        rpc = Rpc(fast_server)
        try:
            for r in range(20):
                send_grpc(rpc, [track(f"send-{r}-{i}", user_id=f"s{i % 7}") for i in range(50)])
        finally:
            rpc.close()

    def grpc_stream() -> None:
        rpc = Rpc(fast_server)
        try:
            acks = rpc.stream([track(f"stream-{r}-{i}", user_id=f"t{i % 7}") for i in range(50)] for r in range(20))
        finally:
            rpc.close()
        assert [(a.sequence, a.accepted, len(a.rejections)) for a in acks] == [(r, 50, 0) for r in range(1, 21)]

    def http_batches() -> None:
        for r in range(20):
            send_http(fast_server, [track(f"http-{r}-{i}", user_id=f"h{i % 7}") for i in range(50)])

    failures: list[BaseException] = []

    def run(client: Callable[[], None]) -> None:
        try:
            client()
        except BaseException as error:  # reported below, with the others
            failures.append(error)

    clients = [threading.Thread(target=run, args=(c,)) for c in (grpc_sends, grpc_stream, http_batches)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=120)
    assert not any(client.is_alive() for client in clients), "ingest completed"
    assert not failures, failures
    sent = 3 * 20 * 50
    assert fast_server.serving()

    healthy = destinations.settled("healthy", timeout=30)
    log_order = [e["messageId"] for e in delivered_events(r for r in webhook_sink.requests if was_accepted(r))]
    assert len(log_order) == len(set(log_order)) == sent and healthy.delivered == sent
    for prefix in ("send-", "stream-", "http-"):  # each client's events in the order it sent them
        own = [m for m in log_order if m.startswith(prefix)]
        assert own == sorted(own, key=lambda m: tuple(int(x) for x in m.removeprefix(prefix).split("-")))
    # The stuck ones took their first batch and never answered: nothing delivered, nothing lost.
    wait_for(lambda: {r.path for r in stuck.requests} == {f"/stuck-{n}" for n in range(HANGING)})
    assert len(stuck.requests) == HANGING, "one hanging request each, no second one beside it"
    for n in range(HANGING):
        stats = destinations.stats(f"stuck-{n}")
        assert (stats.delivered, stats.dead_letters, stats.backlog) == (0, 0, sent), stats

    # Released (their connections closed unanswered), they retry and catch up, each in the log's order.
    stuck.respond(200)
    stuck.release()
    for n in range(HANGING):
        assert destinations.settled(f"stuck-{n}", timeout=30).delivered == sent
    for n in range(HANGING):
        got = [r for r in stuck.requests if r.path == f"/stuck-{n}" and was_accepted(r)]
        assert [e["messageId"] for e in delivered_events(got)] == log_order


# -- 5. SSRF at delivery: a redirect out of the allow-list ------------------------------------------------------------


@pytest.mark.parametrize(
    ("target_host", "location_host", "why"),
    [
        ("127.0.0.2", "127.0.0.2", "127.0.0.2 is loopback"),
        ("127.0.0.1", "localhost", "localhost is a localhost name (always the loopback)"),
    ],
    ids=["another-loopback-address", "localhost-name"],
)
def test_a_redirect_out_of_the_allow_list_dead_letters_and_reaches_nothing(
    fast_server: Any, webhook_sinks: Callable[..., WebhookSink], target_host: str, location_host: str, why: str
) -> None:
    # The destination may reach 127.0.0.1 (its receiver); the receiver redirects to a loopback target that the
    # allow-list does not name, where another receiver listens.
    allowed, forbidden = webhook_sinks(), webhook_sinks(host=target_host)
    location = f"http://{location_host}:{forbidden.port}/internal"
    allowed.respond(Reply.redirect(location))
    destinations = Destinations(fast_server)
    destinations.webhook("hook", allowed.url, batch_size=10)
    rpc = Rpc(fast_server)
    try:
        send_grpc(rpc, [track(f"m{n}") for n in range(25)])
    finally:
        rpc.close()
    stats = destinations.settled("hook")

    letters = destinations.dead_letters("hook")
    assert [d.message_id for d in letters] == [f"m{n}" for n in range(25)]
    reason = f"HTTP 302 from 127.0.0.1:{allowed.port}: redirect to {location} refused: {why}"
    assert {(d.reason, d.attempts) for d in letters} == {(reason, 1)}, "a permanent error: no retry"
    assert (stats.delivered, stats.dead_lettered, stats.retried) == (0, 25, 0)
    assert stats.last_error == reason
    assert len(allowed.requests) == 3, "one request per batch of 10, 10 and 5"
    assert forbidden.requests == [], "the redirect's target was never reached"


def test_the_first_engage_events_ever_written_go_only_where_connected(
    server: Any, webhook_sinks: Callable[..., WebhookSink]
) -> None:
    """Engage's source is made when Engage first writes. Destinations waiting for new events then (idle, here)
    must still tell its events from the customer's."""
    crm, plain = webhook_sinks(), webhook_sinks()
    destinations = Destinations(server)
    destinations.webhook("crm", crm.url, computations=["pros"])
    destinations.webhook("plain", plain.url)
    engage = Audiences(server)
    try:
        engage.send([identify("ada-pro", "ada", 1_000, plan="pro", company="Initech")])
        destinations.settled("crm")
        destinations.settled("plain")
        # A new audience over existing profiles: its first computation writes ada's entry, while both
        # destinations wait for events.
        engage.create("pros", "trait('plan') = 'pro'")
        wait_for(lambda: engage.trait("user_id:ada", "pros") is True)
    finally:
        engage.close()
    destinations.settled("crm")
    destinations.settled("plain")
    assert engage_calls(plain) == [], "Engage's events reached a destination connected to nothing"
    assert engage_calls(crm) == [
        ("track", "Audience Entered", "ada", {"audience_key": "pros", "pros": True}),
        ("identify", "", "ada", {"pros": True}),
    ]
