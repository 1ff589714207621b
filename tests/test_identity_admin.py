"""Identity administration and the newer profile reads over gRPC against a real server:
RemoveIdentifier, SplitProfile (dry runs too), ListSeparations and WithdrawSeparation,
Get/UpdateIdentityRules (dry run), ListIdentifiers, ListLinks, ListEvents over a whole profile with
filters, and the 6,000-traits cap; and the CLI's confirmation flow of `cdp profile split|remove`
and `cdp identity separations list|withdraw`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    assert code(caught) == grpc.StatusCode.PERMISSION_DENIED  # a write key only sends events


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
    assert rules_progress(rpc) == admin_pb2.IdentityRulesProgress(), "no rule change yet"
    looser = admin_pb2.IdentityRules(rules=[admin_pb2.IdentifierRule(type="user_id", limit=2)])
    dry = rpc.admin.UpdateIdentityRules(
        admin_pb2.UpdateIdentityRulesRequest(rules=looser, dry_run=True), metadata=server.admin_metadata
    )
    assert not dry.applied and (dry.profiles_before, dry.profiles_after, dry.merges, dry.splits) == (2, 1, 1, 0)
    (example,) = dry.examples
    assert example.kind == admin_pb2.RuleChange.KIND_MERGE and len(example.profiles_before) == 2
    assert set(example.identifiers) == {"user_id:u1", "user_id:u2", "email:shared@x.com"}
    assert profile(rpc, "user_id:u1").id != profile(rpc, "user_id:u2").id, "a dry run changes nothing"
    # Finished: the counts are the resolving phase's, both events resolved.
    assert rules_progress(rpc) == admin_pb2.IdentityRulesProgress(
        phase=admin_pb2.IdentityRulesProgress.PHASE_DONE, running=False, done=2, total=2
    )
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


def rules_progress(rpc: Rpc) -> admin_pb2.IdentityRulesProgress:
    return rpc.admin.GetIdentityRulesProgress(
        admin_pb2.GetIdentityRulesProgressRequest(), metadata=rpc.server.admin_metadata
    )


def test_cli_rules_set_reports_the_change_and_shows_the_rules(server: Any, tmp_path: Any) -> None:
    rpc = Rpc(server)
    rpc.send(
        [
            event(IDENTIFY, "c1", 1_000, user_id="u1", traits={"email": "shared@x.com"}),
            event(IDENTIFY, "c2", 2_000, user_id="u2", traits={"email": "shared@x.com"}),
        ]
    )
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"type": "user_id", "limit": 2}]}))
    dry = cdp(server, "identity", "rules", "set", str(rules), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run, nothing changed: 2 profiles before, 1 after; 1 would be built from several" in dry.stdout
    assert profile(rpc, "user_id:u1").id != profile(rpc, "user_id:u2").id
    applied = json.loads(cdp(server, "identity", "rules", "set", str(rules), "--json").stdout)
    assert applied["applied"] is True and applied["merges"] == "1"
    assert profile(rpc, "user_id:u1").id == profile(rpc, "user_id:u2").id
    shown = json.loads(cdp(server, "identity", "rules", "show", "--json").stdout)
    assert shown == {"rules": [{"type": "user_id", "limit": 2}]}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"rules": [{"type": "email", "blocked_patterns": ["("]}]}))
    refused = cdp(server, "identity", "rules", "set", str(broken))
    assert refused.returncode != 0 and "blocked pattern" in refused.stderr, refused.stderr


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


def shop(rpc: Rpc) -> None:
    """A customer as a new user's shop sends them: identify with an email, then orders."""
    rpc.send(
        [
            event(IDENTIFY, "s1", 1_000, user_id="u-001", anonymous_id="web-1", traits={"email": "u-001@shop.test"}),
            event(TRACK, "s2", 2_000, user_id="u-001", event="Order Completed"),
            event(IDENTIFY, "s3", 3_000, user_id="u-001", traits={"email": "u-001@shop.test", "plan": "pro"}),
        ]
    )


def test_removing_the_identifier_that_names_the_profile_leaves_no_identifier_without_a_profile(server: Any) -> None:
    """`cdp profile remove user_id:u-001 user_id:u-001` left email:u-001@shop.test in no profile, with its events."""
    rpc = Rpc(server)
    shop(rpc)
    reply = rpc.admin.RemoveIdentifier(
        admin_pb2.RemoveIdentifierRequest(profile="user_id:u-001", identifier="user_id:u-001"),
        metadata=server.admin_metadata,
    )
    assert identifiers(rpc, "user_id:u-001") == {"user_id:u-001"}
    assert identifiers(rpc, "email:u-001@shop.test") == {"email:u-001@shop.test", "anonymous_id:web-1"}
    assert reply.removed_profile_id == profile(rpc, "user_id:u-001").id
    assert reply.profile_id == profile(rpc, "email:u-001@shop.test").id
    # The identify events resolve to what they were about besides the removed id: traits stay there.
    assert json.loads(profile(rpc, "email:u-001@shop.test").traits) == {"email": "u-001@shop.test", "plan": "pro"}
    for identifier in ("user_id:u-001", "email:u-001@shop.test", "anonymous_id:web-1"):
        assert rpc.events(profile(rpc, identifier).id, profile=True), f"{identifier}: no events"
    server.stop()
    server.start()
    assert identifiers(Rpc(server), "email:u-001@shop.test") == {"email:u-001@shop.test", "anonymous_id:web-1"}


def test_a_dry_run_of_split_or_remove_shows_the_change_and_changes_nothing(server: Any) -> None:
    rpc = Rpc(server)
    shop(rpc)
    whole = profile(rpc, "user_id:u-001")
    request = admin_pb2.RemoveIdentifierRequest(profile=whole.id, identifier="anonymous_id:web-1", dry_run=True)
    dry = rpc.admin.RemoveIdentifier(request, metadata=server.admin_metadata)
    assert not dry.applied and profile(rpc, "user_id:u-001") == whole
    assert [(p.profile_id, set(p.identifiers)) for p in dry.change.before] == [
        (whole.id, {"user_id:u-001", "email:u-001@shop.test", "anonymous_id:web-1"})
    ]
    assert sorted(sorted(p.identifiers) for p in dry.change.after) == [
        ["anonymous_id:web-1"],
        ["email:u-001@shop.test", "user_id:u-001"],
    ]
    split = admin_pb2.SplitProfileRequest(profile=whole.id, a="user_id:u-001", b="email:u-001@shop.test", dry_run=True)
    assert not rpc.admin.SplitProfile(split, metadata=server.admin_metadata).applied
    listed = rpc.admin.ListSeparations(admin_pb2.ListSeparationsRequest(), metadata=server.admin_metadata)
    assert list(listed.separations) == [] and profile(rpc, "user_id:u-001") == whole
    request.dry_run = False
    applied = rpc.admin.RemoveIdentifier(request, metadata=server.admin_metadata)
    assert applied.applied and (applied.profile_id, applied.removed_profile_id, applied.change) == (
        dry.profile_id,
        dry.removed_profile_id,
        dry.change,
    )


def test_separations_are_listed_and_withdrawing_one_re_resolves_the_profiles(server: Any) -> None:
    rpc = Rpc(server)
    shop(rpc)
    whole = profile(rpc, "user_id:u-001")
    meta = server.admin_metadata
    rpc.admin.RemoveIdentifier(
        admin_pb2.RemoveIdentifierRequest(profile=whole.id, identifier="anonymous_id:web-1"), metadata=meta
    )
    rpc.admin.SplitProfile(
        admin_pb2.SplitProfileRequest(profile=whole.id, a="user_id:u-001", b="email:u-001@shop.test"), metadata=meta
    )
    listed = rpc.admin.ListSeparations(admin_pb2.ListSeparationsRequest(), metadata=meta).separations
    assert [(s.a, s.b) for s in listed] == [("anonymous_id:web-1", ""), ("user_id:u-001", "email:u-001@shop.test")]
    assert listed[1].profile_a == profile(rpc, "user_id:u-001").id != listed[1].profile_b
    assert all(s.at.seconds > 0 for s in listed)
    # Either order names the split; withdrawing it joins the user id and the email again.
    withdrawn = rpc.admin.WithdrawSeparation(
        admin_pb2.WithdrawSeparationRequest(a="email:u-001@shop.test", b="user_id:u-001"), metadata=meta
    )
    assert withdrawn.applied and [sorted(p.identifiers) for p in withdrawn.change.after] == [
        ["email:u-001@shop.test", "user_id:u-001"]
    ]
    assert identifiers(rpc, "user_id:u-001") == {"user_id:u-001", "email:u-001@shop.test"}
    with pytest.raises(grpc.RpcError) as caught:
        rpc.admin.WithdrawSeparation(
            admin_pb2.WithdrawSeparationRequest(a="user_id:u-001", b="email:u-001@shop.test"), metadata=meta
        )
    assert code(caught) == grpc.StatusCode.NOT_FOUND
    # Withdrawn for good (a restart replays the stored decisions): then the last one.
    server.stop()
    server.start()
    rpc = Rpc(server)
    assert identifiers(rpc, "user_id:u-001") == {"user_id:u-001", "email:u-001@shop.test"}
    rpc.admin.WithdrawSeparation(admin_pb2.WithdrawSeparationRequest(a="anonymous_id:web-1"), metadata=meta)
    assert profile(rpc, "anonymous_id:web-1") == whole
    assert list(rpc.admin.ListSeparations(admin_pb2.ListSeparationsRequest(), metadata=meta).separations) == []
    with pytest.raises(grpc.RpcError) as caught:
        rpc.admin.ListSeparations(admin_pb2.ListSeparationsRequest(), metadata=server.ingest_metadata)
    assert code(caught) == grpc.StatusCode.PERMISSION_DENIED  # a write key only sends events


def cdp(server: Any, *args: str, answer: str | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI against `server`, with `answer` on its standard input (none: end of input at once)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIBUTARY_")}
    return subprocess.run(
        [sys.executable, "-m", "cdp_server", *args, "--target", server.target, "--token", server.admin_token],
        env={**env, "COLUMNS": "200", "NO_COLOR": "1"},
        input=answer or "",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_split_and_remove_show_the_change_and_ask_first(server: Any) -> None:
    rpc = Rpc(server)
    shop(rpc)
    whole = profile(rpc, "user_id:u-001")
    shown = cdp(server, "profile", "remove", "user_id:u-001", "user_id:u-001", "--dry-run")
    assert shown.returncode == 0, shown.stderr
    assert "would change: 1 profile(s) before, 2 after" in shown.stdout and "dry run: nothing changed" in shown.stdout
    assert whole.id in shown.stdout and "user_id:u-001 would be in tp_" in shown.stdout
    for answer in ("n\n", None):  # no, and no answer at all (a script without --yes)
        refused = cdp(server, "profile", "remove", "user_id:u-001", "user_id:u-001", answer=answer)
        assert refused.returncode == 1 and "Take user_id:u-001 out of its profile? [y/N]" in refused.stderr
        assert "nothing changed" in refused.stderr and profile(rpc, "user_id:u-001") == whole
    agreed = cdp(server, "profile", "remove", "user_id:u-001", "user_id:u-001", answer="y\n")
    assert agreed.returncode == 0 and "the rest is in tp_" in agreed.stdout, agreed.stderr
    assert identifiers(rpc, "email:u-001@shop.test") == {"email:u-001@shop.test", "anonymous_id:web-1"}
    split = cdp(server, "profile", "split", "email:u-001@shop.test", "email:u-001@shop.test", "anonymous_id:web-1")
    assert split.returncode == 1 and "Keep email:u-001@shop.test and anonymous_id:web-1 apart?" in split.stderr
    done = json.loads(
        cdp(
            server,
            "profile",
            "split",
            "email:u-001@shop.test",
            "email:u-001@shop.test",
            "anonymous_id:web-1",
            "--yes",
            "--json",
        ).stdout
    )
    assert done["applied"] is True and done["profile_a"] != done["profile_b"]
    assert [sorted(p["identifiers"]) for p in done["change"]["after"]] == [
        ["anonymous_id:web-1"],
        ["email:u-001@shop.test"],
    ]

    listed = json.loads(cdp(server, "identity", "separations", "list", "--json").stdout)
    assert [(s["a"], s["b"]) for s in listed] == [
        ("user_id:u-001", ""),
        ("email:u-001@shop.test", "anonymous_id:web-1"),
    ]
    table = cdp(server, "identity", "separations", "list")
    assert "removal" in table.stdout and "split" in table.stdout and "user_id:u-001" in table.stdout
    for a, b in [("anonymous_id:web-1", "email:u-001@shop.test"), ("user_id:u-001", "")]:
        withdrawn = cdp(server, "identity", "separations", "withdraw", a, *([b] if b else []), "--yes")
        assert withdrawn.returncode == 0 and "withdrawn:" in withdrawn.stdout, withdrawn.stderr
    assert profile(rpc, "email:u-001@shop.test") == whole
    assert "no separations" in cdp(server, "identity", "separations", "list").stdout
    missing = cdp(server, "identity", "separations", "withdraw", "user_id:u-001", "--yes")
    assert missing.returncode == 1 and "no removal of user_id:u-001" in missing.stderr
