"""Audiences and computed traits evaluated by a real server (AudienceService), checked against the Python reference.

- Random worlds and definitions (audience_workload.py), some of them saved and read by the others through
  `trait('key')`: the server's Preview, ListMembers and CheckMembership must give the reference's members and values
  (audience_reference.py, whose docstring is the contract). How a world becomes events: audience_server.py.
- A fixed scenario whose members are worked out by hand, and by a DuckDB query over the same events.
- ListMembers' pages and Preview's sample on an audience of more than a thousand profiles.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from audience_duckdb import bench_audience_members
from audience_query import (
    And,
    AtLeast,
    Compare,
    Count,
    Definition,
    Duration,
    Equals,
    EventStream,
    Kind,
    LiteralValue,
    Not,
    Reduce,
    TraitRef,
    Within,
    render,
)
from audience_reference import Account, Event, Profile, World, computed_values, members, same_value
from audience_server import (
    ACCOUNTS,
    COMPUTED_TRAIT,
    PAGE,
    AudienceRpc,
    check_saved,
    expected_answer,
    explain,
    member_ids,
    member_values,
    same_answer,
    server_answer,
    status,
)
from audience_workload import EVENT_NAMES, NOW, definitions, render_styles, worlds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tributary._proto.cdp.v1 import admin_pb2, audience_pb2, event_pb2, profile_pb2

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)

# Each hypothesis example gets its own prefix for users, groups and keys: the server keeps every example's data.
_EXAMPLE_NUMBERS = itertools.count(1)


@pytest.fixture
def rpc(server: object) -> Iterator[AudienceRpc]:
    client = AudienceRpc(server)
    client.create_sources()
    yield client
    client.close()


class Servers:
    """The servers of a property test, one at a time: evaluation is over every profile on the server, and a sample
    holds at most a thousand, so a server that would hold more than `MOST_PROFILES` is replaced by a fresh one."""

    MOST_PROFILES = 900

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make
        self.rpc: AudienceRpc | None = None
        self.profiles = 0

    def for_world(self, world: World) -> AudienceRpc:
        if self.rpc is None or self.profiles + len(world.profiles) > self.MOST_PROFILES:
            if self.rpc is not None:
                self.rpc.close()
                self.rpc.server.kill()
            self.rpc = AudienceRpc(self.make())
            self.rpc.create_sources()
            self.profiles = 0
        self.profiles += len(world.profiles)
        return self.rpc


@pytest.fixture
def servers(server_factory: Callable[[], Any]) -> Iterator[Servers]:
    pool = Servers(server_factory)
    yield pool
    if pool.rpc is not None:
        pool.rpc.close()


# --------------------------------------------------------------------------------------------------------------------
# The harness: a loaded world is what the server holds (else a mismatch below could be the harness's).


def _plain(traits: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in traits.items() if v is not None}


def _same_traits(server: Mapping[str, Any], world: Mapping[str, Any]) -> bool:
    world = _plain(world)
    return server.keys() == world.keys() and all(same_value(server[k], world[k]) for k in world)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(world=worlds())
def test_a_loaded_world_is_what_the_server_holds(rpc: AudienceRpc, world: World) -> None:
    prefix = f"h{next(_EXAMPLE_NUMBERS)}_"
    loaded = rpc.load(world, prefix)
    metadata = rpc.admin_metadata
    sources = rpc.admin.ListSources(admin_pb2.ListSourcesRequest(), metadata=metadata).sources
    source_names = {s.id: s.name for s in sources}
    for pid, profile in world.profiles.items():
        server_id = loaded.profile_ids[pid]
        got = rpc.profile.GetProfile(profile_pb2.GetProfileRequest(identifier=server_id), metadata=metadata)
        assert _same_traits(json.loads(got.profile.traits), profile.traits), (pid, got.profile.traits)
        request = profile_pb2.ListEventsRequest(
            identifier=server_id, limit=1000, oldest_first=True, by_event_time=True, include_events=EVENT_NAMES
        )
        listed = rpc.profile.ListEvents(request, metadata=metadata)
        in_time_order = sorted(profile.events, key=lambda e: e.timestamp)  # stable: ties in list order
        assert [(e.message_id, source_names[s]) for e, s in zip(listed.events, listed.source_ids, strict=True)] == [
            (prefix + e.message_id, e.source_id) for e in in_time_order
        ]
    for aid, account_id in loaded.account_ids.items():
        account = world.accounts[aid]
        links = rpc.profile.ListLinks(profile_pb2.ListLinksRequest(identifier=account_id), metadata=metadata)
        assert {u.profile_id for u in links.users} == {loaded.profile_ids[p] for p in account.members}
        user = rpc.profile.ListLinks(
            profile_pb2.ListLinksRequest(identifier=loaded.user_identifier(min(account.members))), metadata=metadata
        )
        (link,) = [a for a in user.accounts if a.group_id == prefix + aid]
        assert _same_traits(json.loads(link.traits), account.traits), (aid, link.traits)
    assert set(loaded.account_ids) == {aid for aid, a in world.accounts.items() if a.members}


# --------------------------------------------------------------------------------------------------------------------
# Random worlds and definitions against the reference.


@st.composite
def _definitions(draw: st.DrawFn, accounts: bool, saved: Mapping[str, Definition]) -> Definition:
    """An audience or a computed trait, of users (or of accounts when the world has some), that may read the
    definitions saved so far (each at the level of its kind)."""
    kind: Kind = draw(st.sampled_from(("USERS", "USERS", "ACCOUNTS"))) if accounts else "USERS"
    computed = draw(st.sampled_from((False, False, True)))
    # Each key three times among the trait names, so that saved definitions are read often.
    user_keys = [key for key, d in saved.items() if d.kind == "USERS"] * 3
    account_keys = [key for key, d in saved.items() if d.kind == "ACCOUNTS"] * 3
    return draw(definitions(kind, computed, user_keys, account_keys))


# A mismatch is shrunk for up to 300 s (hypothesis' own limit) after the examples: past pytest's 300 s timeout.
@pytest.mark.timeout(600)
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(world=worlds(), data=st.data())
def test_random_definitions_select_what_the_reference_selects(servers: Servers, world: World, data: Any) -> None:
    rpc = servers.for_world(world)
    prefix = f"w{next(_EXAMPLE_NUMBERS)}_"
    loaded = rpc.load(world, prefix)
    has_accounts = bool(loaded.world.accounts)
    saved: dict[str, Definition] = {}
    for i in range(data.draw(st.sampled_from((0, 0, 1, 2)), label="saved definitions")):
        key = f"{prefix}k{i}"
        definition = data.draw(_definitions(has_accounts, saved), label=key)
        query = render(definition, data.draw(render_styles(), label=f"style of {key}"))
        expected = expected_answer(definition, loaded, saved, key)
        created = rpc.create_definition(key, definition, query)
        assert (created.key, created.query) == (key, query)
        saved[key] = definition
        check_saved(rpc, loaded, key, definition, query, expected)

    definition = data.draw(_definitions(has_accounts, saved), label="previewed")
    query = render(definition, data.draw(render_styles(), label="style"))
    expected = expected_answer(definition, loaded, saved, None)
    answer = rpc.preview_definition(definition, query)
    assert answer.count <= PAGE, "more entities than one sample: the test would not see them all"
    assert len(answer.sample) == answer.count
    server = server_answer(answer.sample, definition, loaded)
    assert same_answer(server, expected), "Preview" + explain(loaded, query, definition, server, expected)
    # The canonical form means the same.
    again = rpc.preview_definition(definition, answer.canonical_query)
    server = server_answer(again.sample, definition, loaded)
    canonical = f"Preview of the canonical form {answer.canonical_query!r}"
    assert again.count == answer.count and same_answer(server, expected), canonical + explain(
        loaded, query, definition, server, expected
    )


# --------------------------------------------------------------------------------------------------------------------
# A fixed scenario, by hand and by DuckDB.


def _event(name: str, ago: timedelta, source: str = "src_web", **properties: Any) -> Event:
    return Event(name, NOW - ago, properties, {}, source)


def _orders(*agos: timedelta) -> tuple[Event, ...]:
    return tuple(_event("Order Completed", ago) for ago in agos)


PRO = {"plan": "pro"}
SCENARIO = World(
    {
        "ann": Profile(PRO, _orders(DAY, 10 * DAY, 30 * DAY)),  # the window's far end is in
        "bob": Profile(PRO, _orders(DAY, 10 * DAY, 30 * DAY + SECOND)),  # just past it
        "cat": Profile({"plan": "free"}, _orders(DAY, 2 * DAY, 3 * DAY, 4 * DAY)),
        "dan": Profile(PRO, (*_orders(DAY, 2 * DAY, 3 * DAY), _event("Churned", 5 * DAY))),
        "eve": Profile(PRO, _orders(timedelta(0), 2 * DAY, 29 * DAY)),  # now itself is in
        "fay": Profile(PRO, _orders(DAY, 2 * DAY, -HOUR)),  # an order after now is not in the window
        "gus": Profile({}, _orders(DAY, 2 * DAY, 3 * DAY, 4 * DAY, 5 * DAY)),
        "hal": Profile({"plan": "Pro"}, _orders(DAY, 2 * DAY, 3 * DAY)),
        "ivy": Profile(PRO, (*_orders(DAY, 2 * DAY, 3 * DAY), _event("Churned", -HOUR))),  # churns after now: counted
        "jon": Profile(
            PRO,
            (
                _event("Order Completed", DAY, "src_ios"),
                _event("Page Viewed", DAY),
                _event("Order Completed", 2 * DAY, "src_server"),
                _event("Order Completed", 3 * DAY),
            ),
        ),
    },
    {"acme": Account(frozenset({"ann", "cat"}), {"tier": "gold"}), "zeta": Account(frozenset({"cat", "gus"}))},
)
SCENARIO_QUERY = (
    "event('Order Completed').within(30 days).count() >= 3 AND trait('plan') = 'pro'"
    " AND NOT (event('Churned').count() >= 1)"
)
ORDERS = Reduce(EventStream("Order Completed"), Count())
ORDERS_30_DAYS = Reduce(EventStream("Order Completed", (Within(Duration(30, "days")),)), Count())
SCENARIO_TREE = And(
    And(
        Compare(ORDERS_30_DAYS, AtLeast(LiteralValue(3))),
        Compare(TraitRef("plan"), Equals(LiteralValue("pro"))),
    ),
    Not(Compare(Reduce(EventStream("Churned"), Count()), AtLeast(LiteralValue(1)))),
)
SCENARIO_MEMBERS = {"ann", "eve", "jon"}  # worked out by hand: see the comments in SCENARIO
ORDERS_IN_30_DAYS = {"ann": 3, "bob": 2, "cat": 4, "dan": 3, "eve": 3, "fay": 2, "gus": 5, "hal": 3, "ivy": 3, "jon": 3}


def test_the_scenario_members_agree_by_hand_by_duckdb_by_the_reference_and_by_the_server(rpc: AudienceRpc) -> None:
    assert render(SCENARIO_TREE) == SCENARIO_QUERY
    assert bench_audience_members(SCENARIO, NOW) == SCENARIO_MEMBERS
    assert members(Definition("USERS", SCENARIO_TREE), SCENARIO, NOW) == SCENARIO_MEMBERS
    loaded = rpc.load(SCENARIO, "")
    ids = loaded.profile_ids
    expected = {ids[p] for p in SCENARIO_MEMBERS}

    answer = rpc.preview(SCENARIO_QUERY)
    assert answer.count == 3 and {m.id for m in answer.sample} == expected
    assert answer.canonical_query
    rpc.create("loyal_pro", SCENARIO_QUERY)
    (page,) = rpc.pages("loyal_pro")
    assert page.count == 3 and [m.id for m in page.members] == sorted(expected)
    assert all(not m.value for m in page.members)

    # CheckMembership by user id, by profile id, for a non-member, and for nobody.
    ann = rpc.check("loyal_pro", "user_id:ann")
    assert (ann.id, ann.member, ann.value) == (ids["ann"], True, b"")
    assert rpc.check("loyal_pro", ids["eve"]).member
    bob = rpc.check("loyal_pro", "user_id:bob")
    assert (bob.id, bob.member) == (ids["bob"], False)
    with pytest.raises(grpc.RpcError) as caught:
        rpc.check("loyal_pro", "user_id:nobody")
    assert status(caught.value) == grpc.StatusCode.NOT_FOUND

    # Without `at`, the server's clock: a year and more after NOW, no order is in the window.
    assert datetime.now(UTC) > NOW + 60 * DAY
    assert rpc.preview(SCENARIO_QUERY, at=None).count == 0
    assert rpc.pages("loyal_pro", at=None)[0].count == 0
    assert not rpc.check("loyal_pro", "user_id:ann", at=None).member


def test_a_computed_traits_values_are_listed_and_checked(rpc: AudienceRpc) -> None:
    loaded = rpc.load(SCENARIO, "")
    query = "event('Order Completed').within(30 days).count()"
    expected = {loaded.profile_ids[p]: n for p, n in ORDERS_IN_30_DAYS.items()}
    definition = Definition("USERS", ORDERS_30_DAYS)
    assert computed_values(definition, SCENARIO, NOW) == ORDERS_IN_30_DAYS
    preview = rpc.preview(query, COMPUTED_TRAIT)
    assert preview.count == len(expected) and member_values(preview.sample, set(expected)) == expected
    rpc.create("orders_30d", query, COMPUTED_TRAIT)
    (page,) = rpc.pages("orders_30d")
    assert page.count == len(expected) and {m.id: json.loads(m.value) for m in page.members} == expected
    gus = rpc.check("orders_30d", "user_id:gus")
    assert (gus.id, json.loads(gus.value)) == (loaded.profile_ids["gus"], 5)
    # A computed trait is readable by an audience through its key.
    assert member_ids(rpc.preview("trait('orders_30d') >= 4").sample, set(expected)) == {
        loaded.profile_ids["cat"],
        loaded.profile_ids["gus"],
    }


def test_traits_kept_in_real_time_agree_with_the_reference(rpc: AudienceRpc) -> None:
    """Saved USERS definitions are kept as traits named after their keys, evaluated on the server's clock: for
    definitions without time windows, those traits are the reference's members and values."""
    loaded = rpc.load(SCENARIO, "")
    audience = And(Compare(TraitRef("plan"), Equals(LiteralValue("pro"))), Compare(ORDERS, AtLeast(LiteralValue(3))))
    computed = ORDERS
    rpc.create("rt_loyal", render(audience))
    rpc.create("rt_orders", render(computed), COMPUTED_TRAIT)
    members_now = members(Definition("USERS", audience), loaded.world, NOW)
    values_now = computed_values(Definition("USERS", computed), loaded.world, NOW)
    ready = audience_pb2.Audience.STATUS_READY
    deadline = time.monotonic() + 30
    while not all(rpc.get(key).status == ready for key in ("rt_loyal", "rt_orders")):
        assert time.monotonic() < deadline, "the saved definitions are not READY after 30 s"
        time.sleep(0.05)
    assert (rpc.get("rt_loyal").size, rpc.get("rt_orders").size) == (len(members_now), len(values_now))
    for server_id in loaded.world.profiles:
        reply = rpc.profile.GetProfile(profile_pb2.GetProfileRequest(identifier=server_id), metadata=rpc.admin_metadata)
        traits = json.loads(reply.profile.traits)
        assert traits.get("rt_loyal") is (True if server_id in members_now else None), (server_id, traits)
        assert same_value(traits.get("rt_orders"), values_now.get(server_id)), (server_id, traits)


def test_account_audiences_quantify_over_the_accounts_users(rpc: AudienceRpc) -> None:
    rpc.load(SCENARIO, "")
    query = "ANY (trait('plan') = 'pro') AND trait('tier') = 'gold'"
    answer = rpc.preview(query, kind=ACCOUNTS)
    assert [m.id for m in answer.sample] == ["group_id:acme"]
    assert [m.id for m in rpc.preview("ALL (NOT (trait('plan') = 'pro'))", kind=ACCOUNTS).sample] == ["group_id:zeta"]
    rpc.create("gold_with_pro", query, kind=ACCOUNTS)
    acme = rpc.check("gold_with_pro", "group_id:acme")
    assert (acme.id, acme.member) == ("group_id:acme", True)
    assert not rpc.check("gold_with_pro", "group_id:zeta").member
    with pytest.raises(grpc.RpcError) as caught:
        rpc.check("gold_with_pro", "group_id:nowhere")
    assert status(caught.value) == grpc.StatusCode.NOT_FOUND


# --------------------------------------------------------------------------------------------------------------------
# Pages and samples.

BULK_MEMBERS = 1203
BULK_OTHERS = 47


def test_members_come_in_pages_of_a_thousand_and_previews_sample_ten_to_a_thousand(rpc: AudienceRpc) -> None:
    identifies = [
        event_pb2.Event(
            type=event_pb2.EVENT_TYPE_IDENTIFY,
            message_id=f"bulk-{i}",
            user_id=f"bulk{i}",
            traits=json.dumps({"plan": "bulk" if i < BULK_MEMBERS else "other"}).encode(),
        )
        for i in range(BULK_MEMBERS + BULK_OTHERS)
    ]
    for start in range(0, len(identifies), 500):
        rpc.send(identifies[start : start + 500])
    expected = sorted(rpc.profile_ids([f"user_id:bulk{i}" for i in range(BULK_MEMBERS)]))
    query = "trait('plan') = 'bulk'"

    rpc.create("bulk", query)
    pages = rpc.pages("bulk")
    assert [len(page.members) for page in pages] == [PAGE, BULK_MEMBERS - PAGE]
    assert all(page.count == BULK_MEMBERS for page in pages)
    assert [m.id for page in pages for m in page.members] == expected

    # A sample is the first members found (not the first by id): distinct members, as many as asked, up to 1,000.
    for asked, given_back in [(0, 10), (1, 1), (10, 10), (PAGE, PAGE), (5000, PAGE)]:
        answer = rpc.preview(query, sample_size=asked)
        sample = [m.id for m in answer.sample]
        assert answer.count == BULK_MEMBERS and len(set(sample)) == len(sample) == given_back, f"sample_size={asked}"
        assert set(sample) <= set(expected), f"sample_size={asked}"
