"""A seeded, identity-heavy workload of Segment-style events, and helpers to send it and read the graph back.

Events are dicts as in test_identity_model.py (type, userId, anonymousId, traits, context, messageId, timestamp in
Unix ms). The workload is made of stories (one person each: anonymous browsing on several devices, logins, emails,
trait updates) and of planted cases whose outcome Segment's rules fix whatever the order of arrival: a second user id
giving a known email, an anonymous id shared by two user ids, blocked values shared by everybody, more anonymous ids or
emails than a profile may hold, anonymous profiles chained together by emails before a login merges them all, and
two devices whose profiles merge apart (at interleaved times) before a login joins them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rpc import IDENTIFY, TRACK, Rpc, ts
from tributary._proto.cdp.v1 import event_pb2, profile_pb2

BASE_MS = 1_700_000_000_000
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
EVENT_TYPES = {
    "identify": IDENTIFY,
    "track": TRACK,
    "page": event_pb2.EVENT_TYPE_PAGE,
    "group": event_pb2.EVENT_TYPE_GROUP,
    "alias": event_pb2.EVENT_TYPE_ALIAS,
}
TYPE_NAMES = {v: k for k, v in EVENT_TYPES.items()}
# Segment's default blocked values (`^[0-]*$`, -1, null, anonymous, undefined), spelled in several ways.
BLOCKED_ANONS = ["null", "NULL", "0", "0000", "-1", "--", "undefined", "Anonymous", "0-0"]
BLOCKED_USERS = ["-1", "0", "undefined", "null", "00"]
BLOCKED_EMAILS = ["undefined", "null", "0", "-1", "ANONYMOUS"]

Identifier = tuple[str, str]  # (type, value)


@dataclass
class Workload:
    events: list[dict[str, Any]] = field(default_factory=list)
    # (first user, second user, value): the second user id arrived with an identifier the first already holds.
    shared_anons: list[tuple[str, str, str]] = field(default_factory=list)
    shared_emails: list[tuple[str, str, str]] = field(default_factory=list)
    # The blocked values the events carry (as identifiers).
    blocked: list[Identifier] = field(default_factory=list)

    def identifiers(self) -> list[Identifier]:
        """Every identifier any event carries (blocked ones too), normalised as the server does, in a stable order."""
        seen: dict[Identifier, None] = {}
        for event in self.events:
            for identifier in identifiers_of(event):
                seen.setdefault(identifier)
        return list(seen)


def identifiers_of(event: dict[str, Any]) -> list[Identifier]:
    found: list[Identifier] = []
    for kind, key in (("user_id", "userId"), ("anonymous_id", "anonymousId")):
        if event.get(key):
            found.append((kind, event[key]))
    for traits in (event.get("traits"), (event.get("context") or {}).get("traits")):
        email = traits.get("email") if isinstance(traits, dict) else None
        if isinstance(email, str) and email.strip():
            found.append(("email", email.strip().lower()))
    return found


def ident(identifier: Identifier) -> str:
    return f"{identifier[0]}:{identifier[1]}"


class _Builder:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.workload = Workload()
        self.count = 0

    def add(self, kind: str, at: int, **fields: Any) -> dict[str, Any]:
        self.count += 1
        # Random message ids: their order (the tie-break at equal timestamps) is unrelated to anything else.
        event: dict[str, Any] = {"type": kind, "messageId": f"{self.rng.getrandbits(32):08x}-{self.count}"}
        event["timestamp"] = at
        event.update({k: v for k, v in fields.items() if v is not None})
        if kind == "track":
            event.setdefault("event", self.rng.choice(["Product Viewed", "Added To Cart", "Order Completed"]))
            event.setdefault("properties", {"n": self.count})
        elif kind == "page":
            event.setdefault("name", self.rng.choice(["Home", "Pricing", "Docs"]))
        self.workload.events.append(event)
        return event

    def email_variant(self, address: str) -> str:
        """The same address as a client might send it: the server trims and lowercases emails."""
        return self.rng.choice([address, address, address.upper(), f"  {address.title()} "])

    def later(self, at: int, most: int = 6 * HOUR_MS) -> int:
        """A moment after `at` (sometimes the same millisecond: ties are broken by messageId)."""
        return at + (0 if self.rng.random() < 0.05 else self.rng.randrange(1, most))

    def start(self) -> int:
        return BASE_MS + self.rng.randrange(30 * DAY_MS)

    def browse(self, at: int, anon: str, email: str | None) -> int:
        """Anonymous activity on one device; sometimes a form gives the email in context.traits."""
        for _ in range(self.rng.randrange(1, 4)):
            at = self.later(at)
            context = None
            if email is not None and self.rng.random() < 0.25:
                context = {"traits": {"email": self.email_variant(email)}}
            self.add(self.rng.choice(["track", "page"]), at, anonymousId=anon, context=context)
        if self.rng.random() < 0.3:
            at = self.later(at)
            self.add("identify", at, anonymousId=anon, traits={"plan": "trial", "device": anon})
        return at

    def person(self, n: int, devices: int) -> None:
        """One user: devices browsed anonymously, logins (some giving the email), trait changes."""
        rng = self.rng
        user, email = f"user-{n}", f"person{n}@example.com"
        at = self.start()
        if rng.random() < 0.4:  # known before any login (e.g. created by a back office)
            self.add("identify", at, userId=user, traits={"name": f"Person {n}", "plan": "free"})
        for d in range(devices):
            anon = f"anon-{n}-{d}"
            at = self.browse(self.later(at, DAY_MS), anon, email)
            if rng.random() < 0.9:
                at = self.later(at)
                traits: dict[str, Any] = {"name": f"Person {n}"}
                if rng.random() < 0.5:
                    traits["email"] = self.email_variant(email)
                self.add("identify", at, userId=user, anonymousId=anon, traits=traits)
                for _ in range(rng.randrange(3)):
                    at = self.later(at)
                    self.add("track", at, userId=user, anonymousId=anon)
        if rng.random() < 0.4:  # a trait set, removed by a null, and an older value that must not come back
            first = self.later(at, DAY_MS)
            removal = self.later(first, DAY_MS)
            self.add("identify", first, userId=user, traits={"plan": "pro", "seats": 3})
            self.add("identify", removal, userId=user, traits={"plan": None})
            self.add("identify", rng.randrange(first - DAY_MS, removal), userId=user, traits={"plan": "free"})
        if rng.random() < 0.3:  # two identifies at one timestamp: the larger messageId wins
            tie = self.later(at, DAY_MS)
            self.add("identify", tie, userId=user, traits={"tier": "a", "color": "red"})
            self.add("identify", tie, userId=user, traits={"tier": "b"})

    def shared_email(self, n: int) -> None:
        """Segment's "new profile" case: a second user id arrives with an email the first one holds."""
        first, second, email = f"se-{n}-a", f"se-{n}-b", f"shared{n}@example.com"
        at = self.start()
        self.add("identify", at, userId=first, traits={"email": email, "name": "First"})
        at += self.rng.randrange(1, DAY_MS)  # strictly later: the first user keeps the email
        self.add("identify", at, userId=second, traits={"email": self.email_variant(email), "plan": "pro"})
        at = self.later(at, DAY_MS)
        self.add("track", at, anonymousId=f"se-{n}-device", context={"traits": {"email": email}})
        self.workload.shared_emails.append((first, second, email))

    def shared_anon(self, n: int) -> None:
        """A kiosk: two user ids log in on one anonymous id; they must never merge."""
        first, second, kiosk = f"sa-{n}-a", f"sa-{n}-b", f"kiosk-{n}"
        at = self.start()
        if self.rng.random() < 0.5:
            self.add("page", at, anonymousId=kiosk)
        at = self.later(at)
        self.add("track", at, userId=first, anonymousId=kiosk)
        at = self.later(at)
        self.add("track", at, userId=second, anonymousId=kiosk)
        at = self.later(at)
        self.add("identify", at, userId=second, anonymousId=kiosk, traits={"plan": "pro"})
        self.add("track", self.later(at), anonymousId=kiosk)
        self.workload.shared_anons.append((first, second, kiosk))

    def blocked(self, n: int) -> None:
        """Blocked values everybody shares: linking them would merge the whole workload."""
        rng = self.rng
        at = self.start()
        user, anon = f"bu-{n}", f"ba-{n}"
        self.add(
            "identify",
            at,
            userId=user,
            anonymousId=rng.choice(BLOCKED_ANONS),
            traits={"email": rng.choice(BLOCKED_EMAILS), "blocked_case": n},
        )
        self.add("track", self.later(at), anonymousId=rng.choice(BLOCKED_ANONS))  # no profile at all
        self.add("identify", self.later(at), userId=rng.choice(BLOCKED_USERS), anonymousId=anon, traits={"k": n})
        self.add(
            "track",
            self.later(at),
            anonymousId=rng.choice(BLOCKED_ANONS),
            context={"traits": {"email": rng.choice(BLOCKED_EMAILS)}},
        )

    def email_chain(self, n: int) -> None:
        """Several anonymous profiles joined by emails, then merged with a user by logins."""
        rng = self.rng
        anons = [f"chain-{n}-{d}" for d in range(4)]
        emails = [f"chain{n}.{k}@example.com" for k in range(2)]
        user = f"chain-user-{n}"
        at = self.start()
        for anon in anons:
            at = self.browse(self.later(at), anon, None)
        # Forms on two devices give the same email; a third device gives both.
        self.add("track", self.later(at), anonymousId=anons[0], context={"traits": {"email": emails[0]}})
        self.add("identify", self.later(at), anonymousId=anons[1], traits={"email": emails[0], "name": "Chain"})
        self.add("identify", self.later(at), anonymousId=anons[2], traits={"email": emails[1], "age": 40})
        at = self.later(at, DAY_MS)
        self.add("track", at, anonymousId=anons[2], context={"traits": {"email": emails[0]}})
        at = self.later(at)
        self.add("identify", at, userId=user, anonymousId=anons[3], traits={"name": "Chain User", "age": None})
        at = self.later(at)
        self.add("identify", at, userId=user, anonymousId=anons[rng.randrange(3)], traits={"email": emails[1]})

    def two_devices(self, n: int) -> None:
        """A user merged with a laptop while, at interleaved times, two anonymous profiles on a phone merge by an
        email; a later login joins the two: the merges of two clusters meet in one history."""
        rng = self.rng
        user, laptop, phones, email = (
            f"dual-{n}",
            f"dual-{n}-laptop",
            [f"dual-{n}-p{k}" for k in range(2)],
            f"dual{n}@x.io",
        )
        start = self.start()
        self.add("identify", start, userId=user, traits={"name": f"Dual {n}"})
        first = [start + rng.randrange(1, 12 * HOUR_MS) for _ in range(3)]
        self.add("page", first[0], anonymousId=laptop)
        self.add("track", first[1], anonymousId=phones[0], context={"traits": {"email": email}})
        self.add("page", first[2], anonymousId=phones[1])
        merges = [max(first) + rng.randrange(1, 12 * HOUR_MS) for _ in range(2)]
        self.add("identify", merges[0], userId=user, anonymousId=laptop, traits={"plan": "pro"})
        self.add("identify", merges[1], anonymousId=phones[1], traits={"email": email, "phone": True})
        join = max(merges) + rng.randrange(DAY_MS, 3 * DAY_MS)
        self.add("identify", join, userId=user, anonymousId=phones[rng.randrange(2)], traits={"joined": True})
        for _ in range(rng.randrange(3)):
            join += rng.randrange(DAY_MS, 2 * DAY_MS)
            self.add("track", join, userId=user, anonymousId=laptop)

    def over_limit(self, n: int) -> None:
        """More anonymous ids, and more emails, than a profile may hold (5 each): the later ones are refused."""
        user = f"many-{n}"
        at = self.start()
        for d in range(7):
            anon = f"many-{n}-dev{d}"
            if self.rng.random() < 0.5:
                at = self.browse(self.later(at), anon, None)
            at = self.later(at)
            self.add("identify", at, userId=user, anonymousId=anon, traits={"devices": d + 1})
        for k in range(7):
            at = self.later(at)
            self.add("identify", at, userId=user, traits={"email": f"many{n}.{k}@example.com", "latest_email": k})


def build_workload(rng: random.Random, people: int = 150, cases: int = 15, devices: Sequence[int] = ()) -> Workload:
    """`people` stories (with `devices` to pick a device count from) and `cases` of each planted case."""
    builder = _Builder(rng)
    choices = list(devices) or [1, 1, 2, 2, 3, 3, 4, 6]
    for n in range(people):
        builder.person(n, rng.choice(choices))
    for n in range(cases):
        builder.shared_email(n)
        builder.shared_anon(n)
        builder.blocked(n)
        builder.email_chain(n)
        builder.over_limit(n)
        builder.two_devices(n)
        builder.two_devices(n + cases)
    workload = builder.workload
    blocked = {("user_id", v) for v in BLOCKED_USERS} | {("anonymous_id", v) for v in BLOCKED_ANONS}
    blocked |= {("email", v.lower()) for v in BLOCKED_EMAILS}
    workload.blocked = [i for i in workload.identifiers() if i in blocked]
    return workload


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
        name=event.get("name", ""),
        group_id=event.get("groupId", ""),
        previous_id=event.get("previousId", ""),
        timestamp=ts(event["timestamp"]),
        properties=json_bytes("properties"),
        traits=json_bytes("traits"),
        context=json_bytes("context"),
    )


def from_proto(event: event_pb2.Event) -> dict[str, Any]:
    """A stored event back as a Segment-style dict (the fields the workload sets)."""
    out: dict[str, Any] = {
        "type": TYPE_NAMES[event.type],
        "messageId": event.message_id,
        "timestamp": event.timestamp.ToMilliseconds(),
    }
    for key, value in (("userId", event.user_id), ("anonymousId", event.anonymous_id)):
        if value:
            out[key] = value
    if event.event:
        out["event"] = event.event
    if event.name:
        out["name"] = event.name
    for key, raw in (("properties", event.properties), ("traits", event.traits), ("context", event.context)):
        if raw:
            out[key] = json.loads(raw)
    return out


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def canonical(value: Any) -> str:
    """JSON text that tells 1 from true."""
    return json.dumps(value, sort_keys=True)


def profile_record(profile: profile_pb2.Profile) -> tuple[Any, ...]:
    """What must agree about a profile: id, identifiers with their first event, traits and merge count."""
    identifiers = frozenset(
        (i.type, i.value, i.first_seen.ToMilliseconds(), i.first_message_id) for i in profile.identifiers
    )
    return profile.id, identifiers, canonical(json.loads(profile.traits or b"{}")), profile.merges


def read_profiles(rpc: Rpc, identifiers: Iterable[Identifier]) -> dict[Identifier, tuple[Any, ...] | None]:
    """Every identifier's profile (None when NOT_FOUND), through BatchGetProfiles in chunks of 1000."""
    wanted = [i for i in identifiers if i[1].strip()]
    out: dict[Identifier, tuple[Any, ...] | None] = {}
    for chunk in chunks(wanted, 1000):
        request = profile_pb2.BatchGetProfilesRequest(identifiers=[ident(i) for i in chunk])
        reply = rpc.profile.BatchGetProfiles(request, metadata=rpc.server.admin_metadata, timeout=60)
        assert len(reply.results) == len(chunk)
        for identifier, result in zip(chunk, reply.results, strict=True):
            assert result.identifier == ident(identifier) and not result.error, (identifier, result.error)
            out[identifier] = profile_record(result.profile) if result.HasField("profile") else None
    return out


def merge_history(rpc: Rpc, lookup: str) -> tuple[str, list[tuple[str, str, str, int]]]:
    """GetMergeHistory: the profile id and its merges (survivor, merged, messageId, timestamp ms), as listed."""
    reply = rpc.profile.GetMergeHistory(
        profile_pb2.GetMergeHistoryRequest(identifier=lookup), metadata=rpc.server.admin_metadata, timeout=30
    )
    return reply.profile_id, [
        (m.survivor_id, m.merged_id, m.message_id, m.timestamp.ToMilliseconds()) for m in reply.merges
    ]


def listed_identifiers(rpc: Rpc, lookup: str) -> tuple[str, list[tuple[str, str, int, str]]]:
    """ListIdentifiers: the profile id and its identifiers with their first event, as listed."""
    reply = rpc.profile.ListIdentifiers(
        profile_pb2.ListIdentifiersRequest(identifier=lookup), metadata=rpc.server.admin_metadata, timeout=30
    )
    return reply.profile_id, [
        (i.type, i.value, i.first_seen.ToMilliseconds(), i.first_message_id) for i in reply.identifiers
    ]
