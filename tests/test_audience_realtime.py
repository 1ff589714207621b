"""Real-time audiences and computed traits through a real server: each membership change writes
exactly one `Audience Entered` / `Audience Exited` (and the boolean trait), under concurrent
ingest, merges, splits, window expiry and a crash."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
from rpc import IDENTIFY, Rpc, track, ts
from tributary._proto.cdp.v1 import admin_pb2, audience_pb2, audience_pb2_grpc, event_pb2, profile_pb2

if TYPE_CHECKING:
    from conftest import ServerProcess

DAY_MS = 86_400_000
FAST_TICK = {"TRIBUTARY_ENGAGE_TICK_SECS": "0.3"}


def wait_until(check: Callable[[], Any], timeout: float = 20.0, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {found!r}")
        time.sleep(0.05)


class Audiences:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.rpc = Rpc(server)
        self.stub = audience_pb2_grpc.AudienceServiceStub(self.rpc.channel)

    def create(self, key: str, query: str, computed: bool = False) -> None:
        kind = audience_pb2.DEFINITION_TYPE_COMPUTED_TRAIT if computed else audience_pb2.DEFINITION_TYPE_AUDIENCE
        request = audience_pb2.CreateAudienceRequest(key=key, query=query, type=kind)
        self.stub.CreateAudience(request, metadata=self.server.admin_metadata, timeout=30)

    def get(self, key: str) -> audience_pb2.Audience:
        request = audience_pb2.GetAudienceRequest(key=key)
        return self.stub.GetAudience(request, metadata=self.server.admin_metadata, timeout=30).audience

    def ready(self, key: str) -> bool:
        return self.get(key).status == audience_pb2.Audience.STATUS_READY

    def derived(self, identifier: str) -> list[tuple[str, str]]:
        """The profile's Engage events, oldest first: ("Audience Entered", key) or ("identify", traits)."""
        out = []
        for event in self.rpc.events(identifier, profile=True, oldest_first=True):
            if not event.message_id.startswith("engage-"):
                continue
            if event.type == IDENTIFY:
                out.append(("identify", event.traits.decode()))
            else:
                out.append((event.event, json.loads(event.properties)["audience_key"]))
        return out

    def moves(self, identifier: str, key: str) -> list[str]:
        """ "Audience Entered" / "Audience Exited" of one audience for a profile, oldest first."""
        return [name for name, of in self.derived(identifier) if name.startswith("Audience") and of == key]

    def account_changes(self, carrier: str, key: str) -> list[Any]:
        """What Engage's group calls carried by a profile wrote to `key`, oldest first."""
        return [
            json.loads(event.traits)[key]
            for event in self.rpc.events(carrier, profile=True, oldest_first=True)
            if event.type == event_pb2.EVENT_TYPE_GROUP
            and event.message_id.startswith("engage-account-")
            and key in json.loads(event.traits)
        ]

    def holder_of_entry(self, user_id: str, anonymous_id: str, key: str) -> tuple[str, str]:
        """Of a profile's userId and anonymousId, the one Engage's entry into `key` carried (the
        root's: the profile it lands in after a split holds the trait), then the other."""
        known, anonymous = f"user_id:{user_id}", f"anonymous_id:{anonymous_id}"
        entered = [
            e
            for e in self.rpc.events(known, profile=True)
            if e.event == "Audience Entered" and json.loads(e.properties)["audience_key"] == key
        ]
        return (known, anonymous) if entered[0].user_id == user_id else (anonymous, known)

    def assert_exited_once(self, holder: str, other: str, key: str) -> None:
        """The holder entered then left `key`, once; the other profile never moved."""
        moved = ["Audience Entered", "Audience Exited"]
        wait_until(lambda: self.moves(holder, key) == moved, what="exited")
        time.sleep(0.5)
        assert self.moves(holder, key) == moved
        assert self.moves(other, key) == []
        assert (self.trait(holder, key), self.trait(other, key)) == (False, None)

    def trait(self, identifier: str, name: str) -> Any:
        request = profile_pb2.GetProfileRequest(identifier=identifier)
        try:
            reply = self.rpc.profile.GetProfile(request, metadata=self.server.admin_metadata, timeout=30)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
                return None
            raise
        return json.loads(reply.profile.traits or b"{}").get(name)

    def send(self, events: list[event_pb2.Event]) -> None:
        self.rpc.send(events)

    def close(self) -> None:
        self.rpc.close()


def order(message_id: str, user_id: str, at_ms: int | None = None, **fields: Any) -> event_pb2.Event:
    return track(message_id, user_id=user_id, timestamp=ts(at_ms or int(time.time() * 1000)), **fields)


def test_concurrent_ingest_enters_each_member_exactly_once(server: ServerProcess) -> None:
    api = Audiences(server)
    api.create("repeat_buyers", "event('Order Completed').count() >= 3")
    api.create("orders", "event('Order Completed').count()", computed=True)
    users = [f"u{n}" for n in range(12)]

    def shop(worker: int) -> None:
        rpc = Rpc(server)
        try:
            # User n orders n times, spread over 3 threads and many small requests.
            for n, user in enumerate(users):
                for k in range(n):
                    if (n + k) % 3 == worker:
                        rpc.send([order(f"o-{user}-{k}", user)])
        finally:
            rpc.close()

    threads = [threading.Thread(target=shop, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_until(lambda: api.get("repeat_buyers").size == 9, what="9 members (u3..u11)")
    wait_until(lambda: api.trait("user_id:u11", "orders") == 11, what="the computed trait")
    time.sleep(0.5)  # anything late would show now
    for n, user in enumerate(users):
        expected = ["Audience Entered"] if n >= 3 else []
        assert api.moves(f"user_id:{user}", "repeat_buyers") == expected, user
        assert api.trait(f"user_id:{user}", "repeat_buyers") is (True if n >= 3 else None)
    assert api.get("repeat_buyers").status == audience_pb2.Audience.STATUS_READY
    api.close()


def test_a_merge_enters_and_a_split_exits_exactly_once(server: ServerProcess) -> None:
    api = Audiences(server)
    api.create("two_orders", "event('Order Completed').count() >= 2")
    api.send([order("anon-1", "", anonymous_id="a1"), order("known-1", "alice")])
    time.sleep(0.5)
    assert api.moves("user_id:alice", "two_orders") == []
    # Alice logs in on the device: one profile with two orders.
    api.send([event_pb2.Event(type=IDENTIFY, message_id="login", user_id="alice", anonymous_id="a1")])
    wait_until(lambda: api.moves("user_id:alice", "two_orders") == ["Audience Entered"], what="entered")
    # An admin splits them again. Engage's events carried one identifier, the profile root's: the
    # profile that identifier lands in holds the trait and, with one order left, exits, once; the
    # other profile changes nothing.
    holder, other = api.holder_of_entry("alice", "a1", "two_orders")
    admin = admin_pb2.SplitProfileRequest(profile="user_id:alice", a="user_id:alice", b="anonymous_id:a1")
    api.rpc.admin.SplitProfile(admin, metadata=server.admin_metadata, timeout=30)
    api.assert_exited_once(holder, other, "two_orders")
    api.close()


def test_removing_an_identifier_exits_once(server: ServerProcess) -> None:
    """An admin takes an identifier (and its events) out of a profile: both profiles are rebuilt
    from what is left. Engage's events carried the profile root's identifier; the profile that
    identifier lands in holds the trait and, with one order left, exits, once; the other one,
    never entered, changes nothing."""
    api = Audiences(server)
    api.create("two_orders", "event('Order Completed').count() >= 2")
    api.send([order("rm-anon", "", anonymous_id="a9"), order("rm-known", "fay", anonymous_id="a9")])
    wait_until(lambda: api.moves("user_id:fay", "two_orders") == ["Audience Entered"], what="entered")
    holder, other = api.holder_of_entry("fay", "a9", "two_orders")
    request = admin_pb2.RemoveIdentifierRequest(profile="user_id:fay", identifier="anonymous_id:a9")
    api.rpc.admin.RemoveIdentifier(request, metadata=server.admin_metadata, timeout=30)
    api.assert_exited_once(holder, other, "two_orders")
    api.close()


def test_a_track_event_that_merges_re_decides_audiences_reading_other_events(server: ServerProcess) -> None:
    """A merge can change any audience of the merged profile, not only those reading the event
    that merged: here a purchase carrying both ids joins two profiles' page views."""
    api = Audiences(server)
    api.create("two_views", "event('Product Viewed').count() >= 2")
    views = [
        track("view-anon", user_id="", name="Product Viewed", anonymous_id="a7"),
        track("view-known", user_id="erin", name="Product Viewed"),
    ]
    api.send(views)
    time.sleep(0.5)
    assert api.moves("user_id:erin", "two_views") == []
    api.send([order("buy", "erin", anonymous_id="a7")])
    wait_until(lambda: api.moves("user_id:erin", "two_views") == ["Audience Entered"], what="entered on the merge")
    api.close()


def group(message_id: str, user_id: str, group_id: str, **traits: Any) -> event_pb2.Event:
    return event_pb2.Event(
        type=event_pb2.EVENT_TYPE_GROUP,
        message_id=message_id,
        user_id=user_id,
        group_id=group_id,
        traits=json.dumps(traits).encode(),
    )


def test_account_audiences_and_traits_are_kept_in_real_time(server: ServerProcess) -> None:
    """ACCOUNTS definitions change with their users' events and traits and with group calls;
    each change is one group call (as Segment writes account audiences), carried by the
    account's first linked user."""
    api = Audiences(server)
    api.send([group("g-alice", "alice", "acme", name="Acme"), group("g-bob", "bob", "acme")])
    api.send([group("g-zed", "zed", "zeta")])
    for key, query, computed in (
        ("any_buyer", "ANY(event('Order Completed').count() >= 1)", False),
        ("all_pro", "ALL(trait('plan') = 'pro')", False),
        ("orders", "event('Order Completed').count()", True),
    ):
        kind = audience_pb2.DEFINITION_TYPE_COMPUTED_TRAIT if computed else audience_pb2.DEFINITION_TYPE_AUDIENCE
        request = audience_pb2.CreateAudienceRequest(
            key=key, query=query, type=kind, kind=audience_pb2.ENTITY_KIND_ACCOUNTS
        )
        api.stub.CreateAudience(request, metadata=api.server.admin_metadata, timeout=30)
    wait_until(lambda: all(api.ready(key) for key in ("any_buyer", "all_pro", "orders")), what="READY")
    assert api.get("any_buyer").size == 0
    # The first evaluation wrote each account's count (0). Alice buys: acme enters any_buyer
    # and counts one order; zeta does not move.
    api.send([order("buy-1", "alice")])
    wait_until(lambda: api.get("any_buyer").size == 1, what="acme in any_buyer")
    wait_until(lambda: api.account_changes("user_id:alice", "orders") == [0, 1], what="orders = 1")
    assert api.account_changes("user_id:alice", "any_buyer") == [True]
    assert api.account_changes("user_id:zed", "any_buyer") == []
    # Both users pro: acme enters all_pro through their identify calls.
    pro = json.dumps({"plan": "pro"}).encode()
    api.send([event_pb2.Event(type=IDENTIFY, message_id=f"pro-{u}", user_id=u, traits=pro) for u in ("alice", "bob")])
    wait_until(lambda: api.account_changes("user_id:alice", "all_pro") == [True], what="acme in all_pro")
    # Carol joins acme without a plan: acme leaves all_pro, once.
    api.send([group("g-carol", "carol", "acme")])
    wait_until(lambda: api.account_changes("user_id:alice", "all_pro") == [True, False], what="acme out of all_pro")
    # Bob's order counts for the account too.
    api.send([order("buy-2", "bob")])
    wait_until(lambda: api.account_changes("user_id:alice", "orders") == [0, 1, 2], what="orders = 2")
    time.sleep(1.0)  # anything repeated would show now
    assert api.account_changes("user_id:alice", "any_buyer") == [True]
    assert api.account_changes("user_id:alice", "all_pro") == [True, False]
    assert api.account_changes("user_id:alice", "orders") == [0, 1, 2]
    assert api.account_changes("user_id:zed", "orders") == [0]
    # Sizes: accounts in the audience, accounts with a value.
    assert (api.get("any_buyer").size, api.get("all_pro").size, api.get("orders").size) == (1, 0, 2)
    # WatchMembership replays the account's entry and exit from the start of the log.
    watch = audience_pb2.WatchMembershipRequest(key="all_pro", after_seq=1)
    stream = api.stub.WatchMembership(watch, metadata=api.server.admin_metadata, timeout=5)
    seen = []
    try:
        for change in stream:
            seen.append((change.event, change.identifier))
            if len(seen) == 2:
                break
    finally:
        stream.cancel()
    assert seen == [("Audience Entered", "group_id:acme"), ("Audience Exited", "group_id:acme")]
    explain = audience_pb2.ExplainMembershipRequest(key="all_pro", identifier="group_id:acme")
    explained = api.stub.ExplainMembership(explain, metadata=api.server.admin_metadata, timeout=30)
    assert not explained.member
    assert [(c.event, c.identifier) for c in explained.history] == seen
    # A kill and restart reconciles every definition with the accounts' traits: nothing repeats.
    api.close()
    server.kill()
    server.start()
    api = Audiences(server)
    wait_until(lambda: api.ready("orders"), what="READY after the restart")
    time.sleep(1.0)
    assert api.account_changes("user_id:alice", "any_buyer") == [True]
    assert api.account_changes("user_id:alice", "orders") == [0, 1, 2]
    api.close()


def test_real_time_excludes_sources_by_name_as_preview_does(server: ServerProcess) -> None:
    """The worker knows the sources' names: `sources(exclude: 'development')` (the test server's
    source) leaves out every order sent here, in real time as in Preview."""
    api = Audiences(server)
    api.create("elsewhere", "event('Order Completed').sources(exclude: 'development').count() >= 1")
    api.create("anywhere", "event('Order Completed').count() >= 1")
    api.send([order("o-src", "sam")])
    wait_until(lambda: api.moves("user_id:sam", "anywhere") == ["Audience Entered"], what="anywhere")
    time.sleep(0.5)
    assert api.moves("user_id:sam", "elsewhere") == []
    assert api.get("elsewhere").size == 0
    api.close()


def test_a_time_window_expires_on_the_tick(server_factory: Any) -> None:
    server = server_factory(env=FAST_TICK)
    api = Audiences(server)
    api.create("recent", "event('Order Completed').within(30 days).count() >= 1")
    now = int(time.time() * 1000)
    api.send([order("late", "bob", at_ms=now - 30 * DAY_MS + 2_500)])
    wait_until(lambda: api.moves("user_id:bob", "recent") == ["Audience Entered"], what="entered")
    wait_until(
        lambda: api.moves("user_id:bob", "recent") == ["Audience Entered", "Audience Exited"],
        what="exited once the order is 30 days old",
    )
    assert api.trait("user_id:bob", "recent") is False
    time.sleep(1.0)
    assert api.moves("user_id:bob", "recent") == ["Audience Entered", "Audience Exited"]
    api.close()


def test_a_new_audience_computes_over_existing_profiles_then_is_ready(server: ServerProcess) -> None:
    api = Audiences(server)
    for start in range(0, 6000, 1000):
        api.send([order(f"old-{n}", f"p{n}") for n in range(start, start + 1000)])
    api.create("buyers", "event('Order Completed').count() >= 1")
    # 12,000 events to write (an entry and an identify each), in batches of 2,000: the
    # percentage climbs while COMPUTING and is 100 once READY.
    seen = []
    while (found := api.get("buyers")).status == audience_pb2.Audience.STATUS_COMPUTING:
        seen.append(found.progress_percent)
        time.sleep(0.01)
    assert seen == sorted(seen) and all(0 <= percent < 100 for percent in seen), seen
    assert (found.status, found.progress_percent, found.size) == (audience_pb2.Audience.STATUS_READY, 100, 6000)
    moves = Counter(tuple(api.moves(f"user_id:p{n}", "buyers")) for n in range(0, 6000, 97))
    assert moves == {("Audience Entered",): len(range(0, 6000, 97))}
    api.close()


def test_a_crash_and_restart_neither_loses_nor_repeats_an_entry(server: ServerProcess) -> None:
    api = Audiences(server)
    api.create("active", "event('Order Completed').count() >= 1")
    api.send([order(f"first-{n}", f"c{n}") for n in range(10)])
    wait_until(lambda: api.get("active").size == 10, what="10 members")
    # More orders, and a kill -9 right after they are acknowledged: some entries may not be
    # written yet. After the restart each of the 20 people has entered exactly once.
    api.send([order(f"second-{n}", f"c{n + 10}") for n in range(10)])
    api.close()
    server.kill()
    server.start()
    api = Audiences(server)
    wait_until(lambda: api.get("active").size == 20, what="20 members after the restart")
    server.stop()
    server.start()  # and a clean restart changes nothing
    api = Audiences(server)
    time.sleep(1.0)
    for n in range(20):
        assert api.moves(f"user_id:c{n}", "active") == ["Audience Entered"], n
    api.close()


def test_definitions_reading_engage_events_catch_up_on_the_tick(server_factory: Any) -> None:
    server = server_factory(env=FAST_TICK)
    api = Audiences(server)
    api.create("vip", "trait('plan') = 'pro'")
    api.create("was_vip", "event('Audience Entered').where(property('audience_key') = 'vip').count() >= 1")
    traits = json.dumps({"plan": "pro"}).encode()
    api.send([event_pb2.Event(type=IDENTIFY, message_id="pro", user_id="dana", traits=traits)])
    wait_until(lambda: api.moves("user_id:dana", "vip") == ["Audience Entered"], what="vip")
    # was_vip reads Engage's own events, which never wake the worker: the tick brings it up.
    wait_until(lambda: api.moves("user_id:dana", "was_vip") == ["Audience Entered"], what="was_vip")
    # Leaving vip does not leave was_vip.
    traits = json.dumps({"plan": "free"}).encode()
    api.send([event_pb2.Event(type=IDENTIFY, message_id="free", user_id="dana", traits=traits)])
    wait_until(lambda: api.moves("user_id:dana", "vip") == ["Audience Entered", "Audience Exited"], what="exit")
    time.sleep(1.0)
    assert api.moves("user_id:dana", "was_vip") == ["Audience Entered"]
    api.close()


def test_an_audience_another_reads_cannot_be_deleted(server: ServerProcess) -> None:
    api = Audiences(server)
    api.create("vip", "trait('plan') = 'pro'")
    api.create("later", "trait('vip') = true")
    try:
        api.stub.DeleteAudience(
            audience_pb2.DeleteAudienceRequest(key="vip"), metadata=server.admin_metadata, timeout=30
        )
        raise AssertionError("deleting an audience another reads must fail")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]
        assert "later" in exc.details()  # type: ignore[attr-defined]
    api.close()
