"""Identity resolution and GetProfile through a real server, checked against the reference in identity_reference.py.

A hypothesis state machine sends identify / track / group events drawn from small value pools (so merges, limit
refusals and blocked values happen), resends duplicates, reuses message ids with other payloads, and reopens the server
(SIGKILL, then start: the graph must be rebuilt identically). After every step, every identifier the model knows must
resolve to the model's partition, traits, merge count and first-seen event; every other pool value must be NOT_FOUND;
profile ids must be stable (one id per model profile, survivors keep the older id, merged-away ids lead to the
survivor). Plain tests below cover Segment's documented cases one by one.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import grpc
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from identity_reference import Identifier, IdentityModel, Profile, extract, is_blocked
from rpc import IDENTIFY, TRACK, Rpc, ts

from cdp_server._proto.cdp.v1 import event_pb2, ingest_pb2, profile_pb2

BASE_MS = 1_700_000_000_000
PROFILE_ID = re.compile(r"tp_[0-9a-z]{26}")
EVENT_TYPES = {"identify": IDENTIFY, "track": TRACK, "group": event_pb2.EVENT_TYPE_GROUP}
ACCEPTED = ingest_pb2.EVENT_STATUS_ACCEPTED
DUPLICATE = ingest_pb2.EVENT_STATUS_DUPLICATE
CONFLICT = ingest_pb2.EVENT_STATUS_CONFLICT

_clock = itertools.count(1)  # times of events sent without an explicit one: strictly increasing in the module
_namespaces = itertools.count()


def to_proto(event: dict[str, Any]) -> event_pb2.Event:
    """A Segment-style event dict (timestamp in Unix ms) as the proto the server takes."""

    def json_bytes(key: str) -> bytes:
        return json.dumps(event[key]).encode() if key in event else b""

    return event_pb2.Event(
        type=EVENT_TYPES[event["type"]],
        message_id=event["messageId"],
        user_id=event.get("userId", ""),
        anonymous_id=event.get("anonymousId", ""),
        event=event.get("event", ""),
        group_id=event.get("groupId", ""),
        timestamp=ts(event["timestamp"]),
        properties=json_bytes("properties"),
        traits=json_bytes("traits"),
        context=json_bytes("context"),
    )


def canonical(value: Any) -> str:
    """JSON text that tells 1 from true (Python's == does not)."""
    return json.dumps(value, sort_keys=True)


def ident(identifier: Identifier) -> str:
    return f"{identifier[0]}:{identifier[1]}"


def partition(profile: profile_pb2.Profile | None) -> set[Identifier]:
    assert profile is not None
    return {(i.type, i.value) for i in profile.identifiers}


def traits(profile: profile_pb2.Profile | None) -> Any:
    assert profile is not None
    return json.loads(profile.traits or b"{}")


class Harness:
    """One server, a connection to it, and the reference model of what it must hold."""

    def __init__(self, server: Any, check_every_send: bool = False) -> None:
        self.server = server
        self.rpc = Rpc(server)
        self.check_every_send = check_every_send
        self.begin("")

    def begin(self, prefix: str) -> None:
        """Starts a fresh model; `prefix` keeps this run's message ids apart from earlier runs on the server."""
        self.prefix = prefix
        self.model = IdentityModel()
        self.sent: list[dict[str, Any]] = []
        self.real_ids: dict[int, str] = {}  # model profile key -> the server's id for it, as first seen
        self.resolved: Profile | None = None  # the profile of the last accepted event

    def send(
        self, kind: str, at: int | None = None, message_id: str | None = None, expect: int = ACCEPTED, **fields: Any
    ) -> dict[str, Any]:
        """Sends one event (unary Send) and applies it to the model when the server accepted it."""
        event: dict[str, Any] = {
            "type": kind,
            "messageId": message_id or f"{self.prefix}m{len(self.sent)}",
            "timestamp": BASE_MS + next(_clock) if at is None else at,
            **fields,
        }
        if kind == "track":
            event.setdefault("event", "Viewed")
        reply = self.rpc.send([to_proto(event)])
        assert [r.status for r in reply.results] == [expect], (event, reply)
        if expect == ACCEPTED:
            self.resolved = self.model.apply(event)
            self.sent.append(event)
        if self.check_every_send:
            self.check()
        return event

    def get(self, identifier: str) -> profile_pb2.Profile | None:
        """GetProfile; None on NOT_FOUND."""
        request = profile_pb2.GetProfileRequest(identifier=identifier)
        try:
            reply = self.rpc.profile.GetProfile(request, metadata=self.server.admin_metadata, timeout=10)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
                return None
            raise
        return reply.profile

    def reopen(self, crash: bool = True) -> None:
        self.rpc.close()
        try:
            if crash:
                self.server.kill()
            else:
                assert self.server.stop() == 0
            self.server.start()
        finally:
            self.rpc = Rpc(self.server)

    def expected(self, profile: Profile) -> dict[str, Any]:
        first = self.model.first_seen
        return {
            "identifiers": sorted((*i, *first[i]) for i in profile.identifiers),
            "traits": canonical(profile.traits),
            "merges": profile.merges,
        }

    @staticmethod
    def actual(profile: profile_pb2.Profile) -> dict[str, Any]:
        return {
            "identifiers": sorted(
                (i.type, i.value, i.first_seen.ToMilliseconds(), i.first_message_id) for i in profile.identifiers
            ),
            "traits": canonical(json.loads(profile.traits or b"{}")),
            "merges": profile.merges,
        }

    def check(self, absent: Iterable[Identifier] = ()) -> None:
        """The server holds the model's profiles, with stable ids; `absent` identifiers the model does not know are
        NOT_FOUND."""
        live: dict[int, str] = {}
        for profile in self.model.profiles():
            want = self.expected(profile)
            ids = set()
            for identifier in profile.identifiers:
                got = self.get(ident(identifier))
                assert got is not None, f"{ident(identifier)}: NOT_FOUND, the model has {want}"
                assert self.actual(got) == want, f"by {ident(identifier)}"
                ids.add(got.id)
            assert len(ids) == 1, f"one model profile, several server ids {ids}: {want}"
            real = ids.pop()
            assert PROFILE_ID.fullmatch(real), real
            assert self.real_ids.setdefault(profile.key, real) == real, f"the id of {want} changed"
            by_id = self.get(real)
            assert by_id is not None and by_id.id == real and self.actual(by_id) == want, f"by {real}"
            live[profile.key] = real
        assert len(set(live.values())) == len(live), f"two model profiles share a server id: {live}"
        for key, real in self.real_ids.items():
            if key not in live:  # merged away: its id leads to the survivor
                got = self.get(real)
                assert got is not None and got.id == live[self.model.current_key(key)], f"merged-away {real}"
        for identifier in absent:
            if identifier not in self.model.owner and identifier[1].strip():
                assert self.get(ident(identifier)) is None, f"{ident(identifier)} must be NOT_FOUND"


# The state machine. Pool picks starting with "=" are literal (blocked) values; the others get the example's
# namespace, so that the examples sharing one server never touch each other's identifiers.
USERS = ["u1", "u2", "u3"]
ANONS = [f"a{i}" for i in range(1, 8)]  # more than the limit of 5 per profile
EMAILS = ["ann", "bob", "cy", "dee", "eve", "fay", "gus"]
GROUPS = ["g1", "g2"]
BLOCKED_USERS = ["=-1", "= 0 ", "=Undefined"]
BLOCKED_ANONS = ["=null", "=NULL", "=0000", "=0-0", "= anonymous ", "=undefined", "=--"]
BLOCKED_EMAILS = ["=null", "=   ", "=0"]

# Flat lists with repeats weight the picks: mostly the first few pool values (so that events collide and profiles merge
# or hit a limit), sometimes the rest (more values of a type than its limit allows), absent or blocked.
user_picks = st.sampled_from([None, None, *USERS, *USERS[:2], *BLOCKED_USERS[:1]])
anon_picks = st.sampled_from([None, None, *ANONS[:3], *ANONS[:3], *ANONS[3:], *BLOCKED_ANONS[:2]])
blocked_picks = st.sampled_from([*BLOCKED_USERS, *BLOCKED_ANONS])
email_picks = st.one_of(
    st.none(),
    st.tuples(st.sampled_from([*EMAILS[:2], *EMAILS]), st.sampled_from(["plain", "upper", "padded"])),
    st.sampled_from([*BLOCKED_EMAILS, "#42"]),  # "#42": a number, which is not an email identifier
)
trait_values = st.sampled_from([None, "x", "y", "", 0, 1, True, {"city": "Oslo"}, ["a", "b"]])
extra_traits = st.dictionaries(st.sampled_from(["name", "plan", "age", "address"]), trait_values, max_size=3)


class IdentityMachine(RuleBasedStateMachine):
    def __init__(self, harness: Harness, outcomes: Counter[str]) -> None:
        super().__init__()
        self.h = harness
        self.outcomes = outcomes
        self.ns = f"x{next(_namespaces)}."
        harness.begin(self.ns)
        self.reopens = 0

    def value(self, pick: str | None) -> str | None:
        if pick is None:
            return None
        return pick[1:] if pick.startswith("=") else self.ns + pick

    def email(self, pick: tuple[str, str] | str) -> Any:
        if isinstance(pick, str):
            return 42 if pick == "#42" else pick[1:]
        name, style = pick
        address = f"{self.ns}{name}@example.com"
        return {"plain": address, "upper": address.upper(), "padded": f"  {address.title()} "}[style]

    def ids(self, user: str | None, anon: str | None) -> dict[str, str]:
        fields = {"userId": self.value(user), "anonymousId": self.value(anon)}
        if not fields["userId"] and not fields["anonymousId"]:
            fields["anonymousId"] = "null"  # the server needs one of them; a blocked one links nothing
        return {k: v for k, v in fields.items() if v is not None}

    def send(self, kind: str, **fields: Any) -> None:
        """Sends a new event; counts what it did to the model."""
        model = self.h.model
        profiles, merges = len(model.profiles()), sum(p.merges for p in model.profiles())
        event = self.h.send(kind, **fields)
        for identifier in extract(event):
            if is_blocked(identifier[1]):
                self.outcomes.update([f"blocked {identifier[0]}"])
            elif identifier not in model.owner:
                self.outcomes.update([f"refused {identifier[0]}: new value"])
            elif model.owner[identifier] is not self.h.resolved:
                self.outcomes.update([f"refused {identifier[0]}: another profile's"])
        if sum(p.merges for p in model.profiles()) > merges:
            self.outcomes.update(["merge"])
        elif len(model.profiles()) > profiles:
            self.outcomes.update(["new profile"])
        elif self.h.resolved is None:
            self.outcomes.update(["no profile"])

    @rule(user=user_picks, anon=anon_picks, email=email_picks, in_context=st.booleans(), more=extra_traits)
    def identify(self, user: str | None, anon: str | None, email: Any, in_context: bool, more: dict[str, Any]) -> None:
        fields: dict[str, Any] = self.ids(user, anon)
        event_traits = dict(more)
        if email is not None and in_context:
            fields["context"] = {"traits": {"email": self.email(email)}}
        elif email is not None:
            event_traits["email"] = self.email(email)
        self.send("identify", traits=event_traits, **fields)

    @rule(anon=st.sampled_from(ANONS[:4]), email=email_picks)
    def visit(self, anon: str, email: Any) -> None:
        """Anonymous activity on a device (a profile of its own until a login merges it)."""
        context = {} if email is None else {"context": {"traits": {"email": self.email(email)}}}
        self.send("track", anonymousId=self.value(anon), **context)

    @rule(user=st.sampled_from(USERS), anon=st.sampled_from([*ANONS[:3], *ANONS]), more=extra_traits)
    def login(self, user: str, anon: str, more: dict[str, Any]) -> None:
        """Segment's usual pair: the anonymous id of a device and the user id it logs in as."""
        self.send("identify", traits=more, **self.ids(user, anon))

    @rule(user=st.sampled_from(USERS), anons=st.lists(st.sampled_from(ANONS), min_size=5, max_size=7, unique=True))
    def logins(self, user: str, anons: list[str]) -> None:
        """One user on many devices: more anonymous ids than the limit of 5 allows."""
        for anon in anons:
            self.send("identify", traits={}, **self.ids(user, anon))

    @rule(user=st.sampled_from(USERS), emails=st.lists(st.sampled_from(EMAILS), min_size=5, max_size=7, unique=True))
    def addresses(self, user: str, emails: list[str]) -> None:
        """One user giving many addresses: more emails than the limit of 5 allows."""
        for email in emails:
            self.send("identify", userId=self.value(user), traits={"email": self.email((email, "plain"))})

    @rule(user=blocked_picks, anon=blocked_picks, email=st.sampled_from(BLOCKED_EMAILS))
    def blocked_only(self, user: str, anon: str, email: str) -> None:
        """Nothing linkable: the event belongs to no profile, its traits to nobody."""
        self.send("identify", traits={"email": self.email(email), "name": "nobody"}, **self.ids(user, anon))

    @rule(user=user_picks, anon=anon_picks, email=email_picks)
    def track(self, user: str | None, anon: str | None, email: Any) -> None:
        fields: dict[str, Any] = self.ids(user, anon)
        if email is not None:
            fields["context"] = {"traits": {"email": self.email(email), "plan": "ignored"}}
        self.send("track", properties={"revenue": 1}, **fields)

    @rule(user=user_picks, anon=anon_picks, group=st.sampled_from(GROUPS))
    def group(self, user: str | None, anon: str | None, group: str) -> None:
        self.send("group", groupId=self.value(group), **self.ids(user, anon))

    @precondition(lambda self: bool(self.h.sent))
    @rule(index=st.integers(min_value=0, max_value=1_000))
    def resend(self, index: int) -> None:
        """The same event again: a duplicate, applied once."""
        event = self.h.sent[index % len(self.h.sent)]
        fields = {k: v for k, v in event.items() if k not in ("type", "timestamp", "messageId")}
        self.h.send(event["type"], at=event["timestamp"], message_id=event["messageId"], expect=DUPLICATE, **fields)

    @precondition(lambda self: bool(self.h.sent))
    @rule(index=st.integers(min_value=0, max_value=1_000))
    def reuse_message_id(self, index: int) -> None:
        """Another payload under a stored message id: a conflict; the first event stays and nothing links."""
        event = self.h.sent[index % len(self.h.sent)]
        self.h.send(
            "identify", at=event["timestamp"], message_id=event["messageId"], expect=CONFLICT, userId=self.ns + "c"
        )

    @precondition(lambda self: self.reopens < 2)
    @rule()
    def reopen(self) -> None:
        self.reopens += 1
        self.h.reopen(crash=True)

    @invariant()
    def server_agrees_with_the_model(self) -> None:
        absent: list[Identifier] = [("user_id", self.ns + v) for v in [*USERS, "c"]]
        absent += [("anonymous_id", self.ns + v) for v in ANONS]
        absent += [("group_id", self.ns + v) for v in GROUPS]
        absent += [("email", f"{self.ns}{name}@example.com") for name in EMAILS]
        self.h.check(absent)

    def teardown(self) -> None:
        """Blocked values never became identifiers (checked once per example: they are the same in every one)."""
        blocked = [("user_id", v[1:]) for v in BLOCKED_USERS] + [("anonymous_id", v[1:]) for v in BLOCKED_ANONS]
        blocked += [("email", v[1:].strip().lower()) for v in BLOCKED_EMAILS]
        self.h.check(blocked)


@pytest.mark.timeout(480)  # passing: ~30 s; a failure can shrink for up to 5 min (hypothesis stops there)
def test_the_server_resolves_identities_like_the_reference_model(server_factory: Any) -> None:
    harness = Harness(server_factory())
    outcomes: Counter[str] = Counter()
    run_state_machine_as_test(
        lambda: IdentityMachine(harness, outcomes),  # type: ignore[arg-type]  # a factory works too
        settings=settings(max_examples=25, stateful_step_count=30, deadline=None),
    )
    # The pools are small enough that every kind of decision happens (a guard against a generator that drifts).
    expected = {"merge", "new profile", "no profile"} | {
        f"blocked {kind}" for kind in ("user_id", "anonymous_id", "email")
    }
    expected |= {
        f"refused {kind}: {why}" for kind in ("anonymous_id", "email") for why in ("new value", "another profile's")
    }
    assert expected <= set(outcomes), outcomes


# Segment's documented cases, one by one (a fresh server each; the model is checked after every event too).


@pytest.fixture
def h(server: Any) -> Harness:
    return Harness(server, check_every_send=True)


def test_a_second_user_id_with_a_shared_email_makes_a_new_profile(h: Harness) -> None:
    h.send("identify", userId="abc123", traits={"email": "jane@x.com"})
    h.send("identify", userId="abc456", traits={"email": "jane@x.com", "plan": "pro"})
    assert partition(h.get("user_id:abc123")) == {("user_id", "abc123"), ("email", "jane@x.com")}
    assert partition(h.get("user_id:abc456")) == {("user_id", "abc456")}
    assert traits(h.get("user_id:abc456")) == {"email": "jane@x.com", "plan": "pro"}
    assert traits(h.get("email:jane@x.com")) == {"email": "jane@x.com"}


def test_a_shared_anonymous_id_never_merges_two_user_ids(h: Harness) -> None:
    h.send("track", userId="u1", anonymousId="shared-device")
    h.send("track", userId="u2", anonymousId="shared-device")
    h.send("identify", userId="u2", anonymousId="shared-device", traits={"plan": "pro"})
    h.send("track", anonymousId="shared-device")
    u1, u2 = h.get("user_id:u1"), h.get("user_id:u2")
    assert partition(u1) == {("user_id", "u1"), ("anonymous_id", "shared-device")}
    assert partition(u2) == {("user_id", "u2")}
    assert (traits(u1), traits(u2)) == ({}, {"plan": "pro"})
    assert u1 is not None and u2 is not None and u1.id != u2.id and u1.merges == u2.merges == 0


def test_blocked_values_never_link(h: Harness) -> None:
    blocked = ["null", "NULL", " -1 ", "anonymous", "Undefined", "0", "0000", "0-0-", "--", " 00 "]
    for n, value in enumerate(blocked):
        h.send("identify", userId=f"u{n}a", anonymousId=value, traits={"email": value})
        h.send("track", userId=f"u{n}b", anonymousId=value, context={"traits": {"email": value}})
        h.send("track", anonymousId=value)  # nothing linkable: no profile
        assert partition(h.get(f"user_id:u{n}a")) == {("user_id", f"u{n}a")}
        assert partition(h.get(f"user_id:u{n}b")) == {("user_id", f"u{n}b")}
        assert h.get(f"anonymous_id:{value}") is None
        assert h.get(f"email:{value.strip().lower()}") is None
    h.send("identify", userId="-1", anonymousId="a-real-one", traits={"email": "   "})
    assert partition(h.get("anonymous_id:a-real-one")) == {("anonymous_id", "a-real-one")}
    assert h.get("user_id:-1") is None


def test_login_attaches_the_user_id_to_the_anonymous_profile(h: Harness) -> None:
    h.send("track", anonymousId="a1")
    before = h.get("anonymous_id:a1")
    h.send("identify", userId="u1", anonymousId="a1", traits={"name": "Ann"})
    after = h.get("user_id:u1")
    assert before is not None and after is not None and after.id == before.id and after.merges == 0
    assert partition(after) == {("user_id", "u1"), ("anonymous_id", "a1")}


@pytest.mark.parametrize("user_first", [True, False], ids=["user-older", "anonymous-older"])
def test_anonymous_activity_merges_into_the_user_on_login_and_the_older_id_survives(
    h: Harness, user_first: bool
) -> None:
    first, second = ("user_id:u1", "anonymous_id:a2") if user_first else ("anonymous_id:a2", "user_id:u1")
    for identifier in (first, second):
        kind, value = identifier.split(":")
        fields: dict[str, Any] = {"userId": value} if kind == "user_id" else {"anonymousId": value}
        h.send("identify", traits={"seen_as": kind}, **fields)
    older, newer = h.get(first), h.get(second)
    assert older is not None and newer is not None and older.id != newer.id
    h.send("identify", userId="u1", anonymousId="a2")  # login on the second device
    merged = h.get("user_id:u1")
    assert merged is not None and merged.id == older.id and merged.merges == 1
    assert partition(merged) == {("user_id", "u1"), ("anonymous_id", "a2")}
    assert traits(merged) == {"seen_as": second.split(":")[0]}  # the later identify wins
    by_old_id = h.get(newer.id)
    assert by_old_id is not None and by_old_id.id == older.id


def test_a_limit_refuses_the_lowest_priority_identifier_and_the_event_still_resolves(h: Harness) -> None:
    for n in range(5):
        h.send("track", userId="u1", anonymousId=f"a{n}")
    h.send("identify", userId="u1", anonymousId="a5", traits={"plan": "pro"})
    assert h.get("anonymous_id:a5") is None
    assert traits(h.get("user_id:u1")) == {"plan": "pro"}
    assert len(partition(h.get("user_id:u1"))) == 6
    h.send("track", anonymousId="a5")
    assert partition(h.get("anonymous_id:a5")) == {("anonymous_id", "a5")}


def test_traits_latest_timestamp_wins_and_an_older_identify_does_not_override(h: Harness) -> None:
    h.send("identify", at=BASE_MS + 2_000, userId="u1", traits={"plan": "pro"})
    h.send("identify", at=BASE_MS + 1_000, userId="u1", traits={"plan": "free", "name": "Ann"})
    assert traits(h.get("user_id:u1")) == {"plan": "pro", "name": "Ann"}
    h.send("identify", at=BASE_MS + 3_000, userId="u1", traits={"plan": "team"})
    assert traits(h.get("user_id:u1")) == {"plan": "team", "name": "Ann"}
    # Same timestamp: the larger message id wins, whatever the arrival order.
    h.send("identify", at=BASE_MS + 4_000, message_id="m-b", userId="u1", traits={"plan": "b"})
    h.send("identify", at=BASE_MS + 4_000, message_id="m-a", userId="u1", traits={"plan": "a"})
    assert traits(h.get("user_id:u1")) == {"plan": "b", "name": "Ann"}


def test_null_removes_a_trait_and_an_older_null_loses(h: Harness) -> None:
    h.send("identify", at=BASE_MS + 1_000, userId="u1", traits={"plan": "pro", "name": "Ann", "empty": ""})
    h.send("identify", at=BASE_MS + 2_000, userId="u1", traits={"plan": None})
    assert traits(h.get("user_id:u1")) == {"name": "Ann", "empty": ""}
    h.send("identify", at=BASE_MS + 1_500, userId="u1", traits={"plan": "free"})  # older than the removal
    h.send("identify", at=BASE_MS + 500, userId="u1", traits={"name": None})  # older than the value
    assert traits(h.get("user_id:u1")) == {"name": "Ann", "empty": ""}
    h.send("identify", at=BASE_MS + 3_000, userId="u1", traits={"plan": "team"})
    assert traits(h.get("user_id:u1")) == {"name": "Ann", "empty": "", "plan": "team"}


def test_traits_of_merged_profiles_combine_by_latest_timestamp(h: Harness) -> None:
    h.send("identify", at=BASE_MS + 1_000, userId="u1", traits={"name": "Old", "plan": "pro", "age": 30})
    h.send("identify", at=BASE_MS + 3_000, anonymousId="a1", traits={"name": "New"})
    h.send("identify", at=BASE_MS + 2_000, anonymousId="a1", traits={"plan": None, "age": 31})
    h.send("identify", at=BASE_MS + 500, anonymousId="a1", traits={"age": None})  # older than both ages
    h.send("track", at=BASE_MS + 4_000, userId="u1", anonymousId="a1")  # merges; sets no trait
    merged = h.get("anonymous_id:a1")
    assert merged is not None and merged.merges == 1
    assert traits(merged) == {"name": "New", "age": 31}


def test_track_context_traits_link_an_email_but_set_no_trait(h: Harness) -> None:
    h.send("track", userId="u1", context={"traits": {"email": " Ann@Example.COM ", "plan": "pro"}})
    profile = h.get("user_id:u1")
    assert partition(profile) == {("user_id", "u1"), ("email", "ann@example.com")}
    assert traits(profile) == {}
    by_email = h.get("email:ANN@example.com")  # lookups normalize the email too
    assert profile is not None and by_email is not None and by_email.id == profile.id


def test_group_id_is_not_a_profile_identifier(h: Harness) -> None:
    h.send("group", userId="u1", groupId="g1", traits={"plan": "enterprise"})
    h.send("group", userId="u2", groupId="g1")
    assert h.get("group_id:g1") is None
    assert partition(h.get("user_id:u1")) == {("user_id", "u1")}
    assert traits(h.get("user_id:u1")) == {}  # group traits are the account's, not the user's


def test_identifiers_record_their_first_event(h: Harness) -> None:
    first = h.send("track", anonymousId="a1")
    second = h.send("identify", userId="u1", anonymousId="a1", traits={"email": "ann@example.com"})
    profile = h.get("user_id:u1")
    assert profile is not None
    seen = {i.type: (i.first_seen.ToMilliseconds(), i.first_message_id) for i in profile.identifiers}
    assert seen == {
        "anonymous_id": (first["timestamp"], first["messageId"]),
        "user_id": (second["timestamp"], second["messageId"]),
        "email": (second["timestamp"], second["messageId"]),
    }


def test_a_reused_message_id_with_another_payload_links_nothing(h: Harness) -> None:
    first = h.send("identify", userId="u1", traits={"plan": "pro"})
    h.send(
        "identify",
        at=first["timestamp"],
        message_id=first["messageId"],
        userId="u1",
        traits={"plan": "pro"},
        expect=DUPLICATE,
    )
    h.send("identify", message_id=first["messageId"], userId="u2", anonymousId="a1", expect=CONFLICT)
    assert h.get("user_id:u2") is None and h.get("anonymous_id:a1") is None


def test_unknown_identifiers_and_ids_are_not_found(h: Harness) -> None:
    h.send("identify", userId="u1", traits={"email": "ann@example.com"})
    for identifier in ["user_id:nobody", "email:bob@example.com", "anonymous_id:u1", "tp_" + "0" * 26]:
        assert h.get(identifier) is None, identifier


def test_get_profile_requires_the_admin_token(h: Harness) -> None:
    h.send("identify", userId="u1")
    request = profile_pb2.GetProfileRequest(identifier="user_id:u1")
    for metadata in [(), h.server.ingest_metadata, (("authorization", "Bearer wrong"),)]:
        with pytest.raises(grpc.RpcError) as caught:
            h.rpc.profile.GetProfile(request, metadata=metadata, timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]


@pytest.mark.parametrize("crash", [True, False], ids=["kill", "stop"])
def test_profiles_ids_and_traits_survive_a_restart(h: Harness, crash: bool) -> None:
    h.send("identify", userId="u1", traits={"name": "Ann"})
    h.send("track", anonymousId="a1", context={"traits": {"email": "ann@example.com"}})
    h.send("identify", userId="u1", anonymousId="a1", traits={"plan": None, "age": 3})
    h.send("identify", userId="u2", anonymousId="a1")  # refused: a1 stays with u1
    ids = {i: h.get(i).id for i in ["user_id:u1", "user_id:u2"]}  # type: ignore[union-attr]
    h.reopen(crash=crash)
    h.check()
    assert {i: h.get(i).id for i in ids} == ids  # type: ignore[union-attr]
    h.send("identify", userId="u1", anonymousId="a9")  # the rebuilt graph keeps working
