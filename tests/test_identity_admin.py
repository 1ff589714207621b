"""Identity administration and the newer profile reads over gRPC against a real server:
RemoveIdentifier, SplitProfile, Get/UpdateIdentityRules (dry run), ListIdentifiers, ListLinks,
ListEvents over a whole profile with filters, and the 6,000-traits cap."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from rpc import IDENTIFY, TRACK, Rpc, ts
from tributary._proto.cdp.v1 import admin_pb2, event_pb2, profile_pb2

GROUP = event_pb2.EVENT_TYPE_GROUP
PAGE = event_pb2.EVENT_TYPE_PAGE


def event(kind: int, message_id: str, ms: int, **fields: Any) -> event_pb2.Event:
    for name in ("traits", "properties"):
        if name in fields:
            fields[name] = json.dumps(fields[name]).encode()
    return event_pb2.Event(type=kind, message_id=message_id, timestamp=ts(ms), **fields)


def code(caught: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    return caught.value.code()  # type: ignore[attr-defined,no-any-return]


def details(caught: pytest.ExceptionInfo[grpc.RpcError]) -> str:
    return caught.value.details()  # type: ignore[attr-defined,no-any-return]


def profile(rpc: Rpc, identifier: str) -> profile_pb2.Profile:
    reply = rpc.profile.GetProfile(
        profile_pb2.GetProfileRequest(identifier=identifier), metadata=rpc.server.admin_metadata
    )
    return reply.profile


def identifiers(rpc: Rpc, identifier: str) -> set[str]:
    return {f"{i.type}:{i.value}" for i in profile(rpc, identifier).identifiers}


@pytest.fixture
def kiosk(server: Any) -> Rpc:
    """Ann and Bob both used one kiosk: its anonymous id joined them into one profile."""
    rpc = Rpc(server)
    rpc.send(
        [
            event(IDENTIFY, "k1", 1_000, user_id="ann", anonymous_id="kiosk", traits={"email": "ann@x.com"}),
            event(TRACK, "k2", 2_000, anonymous_id="kiosk", event="Viewed"),
            event(IDENTIFY, "k3", 3_000, anonymous_id="kiosk", traits={"email": "bob@x.com", "plan": "pro"}),
        ]
    )
    assert identifiers(rpc, "user_id:ann") == {
        "user_id:ann",
        "anonymous_id:kiosk",
        "email:ann@x.com",
        "email:bob@x.com",
    }
    return rpc


def test_remove_identifier_splits_the_people_a_shared_device_joined(kiosk: Rpc) -> None:
    rpc = kiosk
    before = profile(rpc, "user_id:ann").id
    reply = rpc.admin.RemoveIdentifier(
        admin_pb2.RemoveIdentifierRequest(profile=before, identifier="anonymous_id:kiosk"),
        metadata=rpc.server.admin_metadata,
    )
    assert reply.removed_profile_id == profile(rpc, "anonymous_id:kiosk").id
    assert reply.profile_id == profile(rpc, "user_id:ann").id != reply.removed_profile_id
    assert identifiers(rpc, "user_id:ann") == {"user_id:ann", "email:ann@x.com"}
    # Bob's email came only together with the kiosk id, which may share with nothing now: the
    # identify sets the removed id aside and resolves to the rest, so Bob gets a profile of his
    # own with his traits, and the kiosk's own profile is only the kiosk.
    assert identifiers(rpc, "email:bob@x.com") == {"email:bob@x.com"}
    assert json.loads(profile(rpc, "email:bob@x.com").traits) == {"email": "bob@x.com", "plan": "pro"}
    assert identifiers(rpc, "anonymous_id:kiosk") == {"anonymous_id:kiosk"}
    # The merged-away id still answers (it leads to a profile that exists now).
    assert profile(rpc, before).id in {reply.profile_id, reply.removed_profile_id}
    # The kiosk never links again.
    rpc.send([event(IDENTIFY, "k4", 4_000, user_id="carl", anonymous_id="kiosk", traits={"plan": "free"})])
    assert identifiers(rpc, "user_id:carl") == {"user_id:carl"}
    # A restart rebuilds the same graph from the log and the stored decision.
    rpc.server.stop()
    rpc.server.start()
    again = Rpc(rpc.server)
    assert identifiers(again, "user_id:ann") == {"user_id:ann", "email:ann@x.com"}
    assert profile(again, "anonymous_id:kiosk").id == reply.removed_profile_id


def test_remove_identifier_names_what_is_wrong(kiosk: Rpc) -> None:
    rpc = kiosk
    cases = [
        (admin_pb2.RemoveIdentifierRequest(profile="user_id:ghost", identifier="user_id:ann"), "NOT_FOUND", "ghost"),
        (admin_pb2.RemoveIdentifierRequest(profile="user_id:ann", identifier="ann"), "INVALID_ARGUMENT", "identifier"),
        (admin_pb2.RemoveIdentifierRequest(profile="tp_x", identifier="user_id:ann"), "INVALID_ARGUMENT", "profile"),
    ]
    for request, status, word in cases:
        with pytest.raises(grpc.RpcError) as caught:
            rpc.admin.RemoveIdentifier(request, metadata=rpc.server.admin_metadata)
        assert code(caught).name == status and word in details(caught), details(caught)
    rpc.send([event(TRACK, "solo", 5_000, user_id="solo", event="X")])
    with pytest.raises(grpc.RpcError) as caught:
        rpc.admin.RemoveIdentifier(
            admin_pb2.RemoveIdentifierRequest(profile="user_id:solo", identifier="user_id:solo"),
            metadata=rpc.server.admin_metadata,
        )
    assert code(caught) == grpc.StatusCode.INVALID_ARGUMENT and "only identifier" in details(caught)
    with pytest.raises(grpc.RpcError) as caught:
        rpc.admin.RemoveIdentifier(
            admin_pb2.RemoveIdentifierRequest(profile="user_id:ann", identifier="user_id:solo"),
            metadata=rpc.server.ingest_metadata,
        )
    assert code(caught) == grpc.StatusCode.UNAUTHENTICATED


def test_split_profile_keeps_two_identifiers_apart_and_explains_why(kiosk: Rpc) -> None:
    rpc = kiosk
    reply = rpc.admin.SplitProfile(
        admin_pb2.SplitProfileRequest(profile="user_id:ann", a="email:ann@x.com", b="email:bob@x.com"),
        metadata=rpc.server.admin_metadata,
    )
    assert reply.profile_a and reply.profile_b and reply.profile_a != reply.profile_b
    assert profile(rpc, "email:ann@x.com").id == reply.profile_a
    assert profile(rpc, "email:bob@x.com").id == reply.profile_b
    why = rpc.profile.ExplainLink(
        profile_pb2.ExplainLinkRequest(a="email:ann@x.com", b="email:bob@x.com"), metadata=rpc.server.admin_metadata
    )
    assert not why.linked
    assert any("admin" in step.reason for step in why.steps), why
    for request, word in [
        (admin_pb2.SplitProfileRequest(profile="user_id:ann", a="user_id:ann", b="user_id:ann"), "different"),
        (admin_pb2.SplitProfileRequest(profile="user_id:ann", a="user_id:ann", b="email:nobody@x.com"), "b:"),
    ]:
        with pytest.raises(grpc.RpcError) as caught:
            rpc.admin.SplitProfile(request, metadata=rpc.server.admin_metadata)
        assert code(caught) == grpc.StatusCode.INVALID_ARGUMENT and word in details(caught), details(caught)


def test_rules_dry_run_reports_without_changing_and_applying_re_resolves(server: Any) -> None:
    rpc = Rpc(server)
    # Two user ids share an email: by default the second user cannot join (limit 1).
    rpc.send(
        [
            event(IDENTIFY, "r1", 1_000, user_id="u1", traits={"email": "shared@x.com"}),
            event(IDENTIFY, "r2", 2_000, user_id="u2", traits={"email": "shared@x.com"}),
        ]
    )
    assert profile(rpc, "user_id:u1").id != profile(rpc, "user_id:u2").id
    looser = admin_pb2.IdentityRules(rules=[admin_pb2.IdentifierRule(type="user_id", limit=2)])
    dry = rpc.admin.UpdateIdentityRules(
        admin_pb2.UpdateIdentityRulesRequest(rules=looser, dry_run=True), metadata=server.admin_metadata
    )
    assert not dry.applied and (dry.profiles_before, dry.profiles_after, dry.merges, dry.splits) == (2, 1, 1, 0)
    (example,) = dry.examples
    assert example.kind == admin_pb2.RuleChange.KIND_MERGE and len(example.profiles_before) == 2
    assert set(example.identifiers) == {"user_id:u1", "user_id:u2", "email:shared@x.com"}
    assert profile(rpc, "user_id:u1").id != profile(rpc, "user_id:u2").id, "a dry run changes nothing"
    assert rpc.admin.GetIdentityRules(admin_pb2.GetIdentityRulesRequest(), metadata=server.admin_metadata) == (
        admin_pb2.IdentityRules()
    )
    applied = rpc.admin.UpdateIdentityRules(
        admin_pb2.UpdateIdentityRulesRequest(rules=looser), metadata=server.admin_metadata
    )
    assert applied.applied and applied.merges == 1 and applied.rules == looser
    assert profile(rpc, "user_id:u1").id == profile(rpc, "user_id:u2").id
    # Events after the change resolve under the new rules; the rules survive a restart.
    rpc.send([event(IDENTIFY, "r3", 3_000, user_id="u3", traits={"email": "shared@x.com"})])
    assert profile(rpc, "user_id:u3").id != profile(rpc, "user_id:u1").id, "still at most 2 user ids"
    server.stop()
    server.start()
    again = Rpc(server)
    assert again.admin.GetIdentityRules(admin_pb2.GetIdentityRulesRequest(), metadata=server.admin_metadata) == looser
    assert profile(again, "user_id:u1").id == profile(again, "user_id:u2").id


def test_bad_rules_are_refused_naming_the_rule(server: Any) -> None:
    rpc = Rpc(server)
    for rule, word in [
        (admin_pb2.IdentifierRule(type="email", blocked_patterns=["("]), "blocked pattern"),
        (admin_pb2.IdentifierRule(type=""), "rules[0].type"),
        (admin_pb2.IdentifierRule(type="email", window=9), "rules[0].window"),
    ]:
        with pytest.raises(grpc.RpcError) as caught:
            rpc.admin.UpdateIdentityRules(
                admin_pb2.UpdateIdentityRulesRequest(rules=admin_pb2.IdentityRules(rules=[rule])),
                metadata=server.admin_metadata,
            )
        assert code(caught) == grpc.StatusCode.INVALID_ARGUMENT and word in details(caught), details(caught)


def test_list_identifiers_gives_the_first_event_of_each(kiosk: Rpc) -> None:
    reply = kiosk.profile.ListIdentifiers(
        profile_pb2.ListIdentifiersRequest(identifier="email:bob@x.com"), metadata=kiosk.server.admin_metadata
    )
    assert reply.profile_id == profile(kiosk, "user_id:ann").id
    first = {f"{i.type}:{i.value}": (i.first_message_id, i.first_seen.ToMilliseconds()) for i in reply.identifiers}
    assert first == {
        "user_id:ann": ("k1", 1_000),
        "anonymous_id:kiosk": ("k1", 1_000),
        "email:ann@x.com": ("k1", 1_000),
        "email:bob@x.com": ("k3", 3_000),
    }


def test_group_calls_link_users_and_accounts(server: Any) -> None:
    rpc = Rpc(server)
    rpc.send(
        [
            event(IDENTIFY, "g0", 500, user_id="u1", anonymous_id="a1"),
            event(GROUP, "g1", 1_000, user_id="u1", group_id="acme", traits={"name": "Acme", "plan": "team"}),
            event(GROUP, "g2", 2_000, anonymous_id="a2", group_id="acme", traits={"plan": "enterprise"}),
            event(GROUP, "g3", 3_000, anonymous_id="a1", group_id="initech", traits={"name": "Initech"}),
        ]
    )
    links = rpc.profile.ListLinks(profile_pb2.ListLinksRequest(identifier="user_id:u1"), metadata=server.admin_metadata)
    assert links.profile_id == profile(rpc, "user_id:u1").id
    accounts = {a.group_id: (json.loads(a.traits), a.first_message_id) for a in links.accounts}
    assert accounts == {
        "acme": ({"name": "Acme", "plan": "enterprise"}, "g1"),
        "initech": ({"name": "Initech"}, "g3"),
    }
    users = rpc.profile.ListLinks(
        profile_pb2.ListLinksRequest(identifier="group_id:acme"), metadata=server.admin_metadata
    )
    assert [u.profile_id for u in users.users] == [profile(rpc, "user_id:u1").id, profile(rpc, "anonymous_id:a2").id]
    with pytest.raises(grpc.RpcError) as caught:
        rpc.profile.ListLinks(profile_pb2.ListLinksRequest(identifier="group_id:nope"), metadata=server.admin_metadata)
    assert code(caught) == grpc.StatusCode.NOT_FOUND


def test_list_events_of_a_whole_profile_with_filters_and_paging(server: Any) -> None:
    rpc = Rpc(server)
    day = 86_400_000
    events = [event(TRACK, "p0", 0, anonymous_id="a1", event="Viewed")]
    # Old history (no age limit): a year of events, before and after login.
    events += [
        event(TRACK, f"p{i}", i * day, anonymous_id="a1" if i % 2 else "a2", user_id="u1", event="Viewed")
        for i in range(1, 300)
    ]
    events += [event(PAGE, "page", 400 * day, user_id="u1", name="Home")]
    events += [event(TRACK, "buy", 401 * day, anonymous_id="a2", event="Bought")]
    rpc.send(events)
    pid = profile(rpc, "user_id:u1").id
    every = rpc.events(pid, limit=7)
    assert [e.message_id for e in every][:3] == ["buy", "page", "p299"] and len(every) == 302
    assert [e.message_id for e in rpc.events("anonymous_id:a2", limit=1000)][:2] == ["buy", "p298"]
    oldest = rpc.events("user_id:u1", limit=50, profile=True, oldest_first=True)
    assert [e.message_id for e in oldest][:2] == ["p0", "p1"] and len(oldest) == 302
    only = rpc.events(pid, limit=3, include_events=["Bought", "Home"])
    assert [e.message_id for e in only] == ["buy", "page"]
    without = rpc.events(pid, limit=100, exclude_events=["Viewed"])
    assert [e.message_id for e in without] == ["buy", "page"]
    window = rpc.events(pid, limit=4, start=ts(10 * day), end=ts(20 * day), oldest_first=True)
    assert [e.message_id for e in window] == [f"p{i}" for i in range(10, 20)]
    with pytest.raises(grpc.RpcError) as caught:
        rpc.profile.ListEvents(
            profile_pb2.ListEventsRequest(identifier=pid, start=ts(5), end=ts(5)), metadata=server.admin_metadata
        )
    assert code(caught) == grpc.StatusCode.INVALID_ARGUMENT and "start" in details(caught)


def test_a_profile_keeps_at_most_6000_traits(server: Any) -> None:
    rpc = Rpc(server)
    per_event = 299  # an identify with 300 or more traits is refused
    batches = [
        [
            event(
                IDENTIFY,
                f"t{n}",
                1_000 + n,
                user_id="wide",
                traits={f"t{n:02d}_{i:03d}": i for i in range(per_event)},
            )
        ]
        for n in range(21)
    ]
    for events in batches:
        rpc.send(events)
    wide = profile(rpc, "user_id:wide")
    traits = json.loads(wide.traits)
    assert len(traits) == 6_000 and wide.traits_dropped == 21 * per_event - 6_000
    assert "t00_000" in traits and "t20_298" not in traits, "the earliest set are kept"


def test_custom_identifier_types_read_from_a_trait_or_a_property(server: Any) -> None:
    rpc = Rpc(server)
    rpc.send(
        [
            event(IDENTIFY, "c1", 1_000, anonymous_id="web", traits={"phone": "+31 6 1"}),
            event(TRACK, "c2", 2_000, anonymous_id="app", event="Called", properties={"caller": "+31 6 1"}),
        ]
    )
    assert profile(rpc, "anonymous_id:web").id != profile(rpc, "anonymous_id:app").id
    phone = admin_pb2.IdentityRules(
        rules=[admin_pb2.IdentifierRule(type="Phone", traits=["phone"], properties=["caller"], priority=3)]
    )
    rpc.admin.UpdateIdentityRules(admin_pb2.UpdateIdentityRulesRequest(rules=phone), metadata=server.admin_metadata)
    assert identifiers(rpc, "phone:+31 6 1") == {"anonymous_id:web", "anonymous_id:app", "phone:+31 6 1"}
    # New events are read with the new type too (and it survives a restart).
    rpc.send([event(IDENTIFY, "c3", 3_000, user_id="u9", traits={"phone": "+31 6 1"})])
    assert profile(rpc, "user_id:u9").id == profile(rpc, "anonymous_id:web").id
    server.stop()
    server.start()
    assert identifiers(Rpc(server), "user_id:u9") == {
        "anonymous_id:web",
        "anonymous_id:app",
        "phone:+31 6 1",
        "user_id:u9",
    }
    with pytest.raises(grpc.RpcError) as caught:
        rpc.admin.UpdateIdentityRules(
            admin_pb2.UpdateIdentityRulesRequest(
                rules=admin_pb2.IdentityRules(rules=[admin_pb2.IdentifierRule(type="phone", traits=[" "])])
            ),
            metadata=server.admin_metadata,
        )
    assert code(caught) == grpc.StatusCode.INVALID_ARGUMENT and "rules[0].traits" in details(caught)


def test_alias_links_its_own_ids_but_not_previous_id_as_segment_unify_does(server: Any) -> None:
    """Segment's Unify ignores alias for merging (its previousId is for tools like Mixpanel)."""
    rpc = Rpc(server)
    rpc.send(
        [
            event(TRACK, "a0", 500, user_id="old-id", event="Signed Up"),
            event(event_pb2.EVENT_TYPE_ALIAS, "a1", 1_000, user_id="new-id", anonymous_id="a-1", previous_id="old-id"),
        ]
    )
    assert identifiers(rpc, "user_id:new-id") == {"user_id:new-id", "anonymous_id:a-1"}
    assert identifiers(rpc, "user_id:old-id") == {"user_id:old-id"}
