"""A small, slow, obviously-correct reference of Tributary's identity resolution and profile traits.

Profiles are a function of the set of accepted events and the admin separations, not of arrival order: every query
replays all accepted events from an empty state in canonical order, by (timestamp, messageId) (messageId compared as a
string; equal keys, which unique message ids never give, keep arrival order). Each event's identifiers (user_id,
anonymous_id, email) minus blocked values are matched against the profiles that own them ("flat matching"); a
would-be profile that breaks a rule drops one of the event's identifiers and matches again: for a separation, the
lowest-priority identifier that takes part in a broken one (if any does), otherwise the event's lowest-priority
identifier. The rules, in the order they are checked: the system caps (at one, the event resolves to the profile of
its highest-priority known identifier and links nothing), the admin separations (two identifiers split apart by
SplitProfile may not share a profile; an identifier removed by RemoveIdentifier may not share one with any other
identifier), then each type's limit. The identifiers an event dropped that are in no profile are then matched the
same way, as if another event (at the same place in the order, without traits) had carried only them, and so on:
every identifier that has events is in a profile. When profiles merge, the one created first in canonical order
survives (of two that one event created, the event's own). An identifier's first seen is the earliest event (in
canonical order) that linked it. Traits come from identify events only: per key, the event with the latest
(timestamp, messageId) wins, and a winning null removes the key.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Identifier = tuple[str, str]  # (type, value)
Order = tuple[int, str]  # (timestamp ms, messageId): an event's place in the canonical order

BLOCKED_VALUES = frozenset({"-1", "null", "anonymous", "undefined", ""})
BLOCKED_PATTERN = re.compile(r"[0-]*")  # used with fullmatch: Rust's `^[0-]*$` (no trailing-newline match)
LIMITS = {"user_id": 1}
DEFAULT_LIMIT = 5
MAX_MERGES = 100
MAX_IDENTIFIERS = 1_000
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def is_blocked(value: str) -> bool:
    stripped = value.strip()
    return stripped.translate(_ASCII_LOWER) in BLOCKED_VALUES or BLOCKED_PATTERN.fullmatch(stripped) is not None


def priority(identifier: Identifier) -> tuple[int, str, str]:
    """Sort key, most important first: user_id, email, then the other types by name; then by value."""
    kind, value = identifier
    return {"user_id": 1, "email": 2}.get(kind, 2**32 - 1), kind, value


def extract(event: dict[str, Any]) -> list[Identifier]:
    """The event's identifiers: userId, anonymousId and string emails of traits / context.traits (a group call's
    traits describe the account, so they carry no user identifier)."""
    found: list[Identifier] = []
    for kind, key in (("user_id", "userId"), ("anonymous_id", "anonymousId")):
        if event.get(key):
            found.append((kind, event[key]))
    own_traits = event.get("traits") if event.get("type") != "group" else None
    for traits in (own_traits, (event.get("context") or {}).get("traits")):
        email = traits.get("email") if isinstance(traits, dict) else None
        if isinstance(email, str) and email:
            found.append(("email", email.strip().lower()))
    return found


def order_of(event: dict[str, Any]) -> Order:
    return int(event["timestamp"]), str(event["messageId"])


@dataclass
class Profile:
    key: int  # creation order in the canonical replay: the older profile survives a merge
    # The messageId of the event that created it and its first identifier: the server derives the profile's id from
    # both (one event creates two profiles when it carries an identifier it may not link to its own).
    created_by: tuple[str, Identifier]
    merges: int = 0
    identifiers: list[Identifier] = field(default_factory=list)  # in link order
    # trait name -> ((timestamp ms, messageId), value); value None is a removal that still competes on order.
    trait_entries: dict[str, tuple[Order, Any]] = field(default_factory=dict)

    def set_trait(self, name: str, order: Order, value: Any) -> None:
        if name not in self.trait_entries or self.trait_entries[name][0] < order:
            self.trait_entries[name] = (order, value)

    @property
    def traits(self) -> dict[str, Any]:
        return {name: value for name, (_, value) in self.trait_entries.items() if value is not None}


class _Replay:
    """Flat matching of events given in canonical order, from an empty state, under fixed separations."""

    def __init__(
        self, events: list[dict[str, Any]], separated: set[frozenset[Identifier]], isolated: set[Identifier]
    ) -> None:
        self.separated = separated
        self.isolated = isolated
        self.owner: dict[Identifier, Profile] = {}
        self.first_seen: dict[Identifier, Order] = {}
        self.absorbed_into: dict[int, int] = {}  # merged-away profile key -> the key it merged into
        self.by_key: dict[int, Profile] = {}  # every profile created, merged away or not
        self.resolved_to: dict[str, int] = {}  # messageId -> key of the profile the event resolved to
        self.refused: dict[str, list[tuple[Identifier, str]]] = {}  # messageId -> identifiers it did not link, why
        for event in events:
            self.apply(event)

    def apply(self, event: dict[str, Any]) -> None:
        order = order_of(event)
        candidates = sorted({i for i in extract(event) if not is_blocked(i[1])}, key=priority)
        refused = self.refused.setdefault(order[1], [])
        profile = self._resolve(candidates, order, refused)
        if profile is None:
            return
        self.resolved_to[order[1]] = profile.key
        if event.get("type") == "identify":
            for name, value in (event.get("traits") or {}).items():
                profile.set_trait(name, order, value)
        # What the event dropped and no profile holds is matched on its own, and so on.
        dropped = refused
        while aside := sorted({i for i, _ in dropped if i not in self.owner}, key=priority):
            dropped = []
            self._resolve(aside, order, dropped)

    def breaks(self, identifier: Identifier, together: set[Identifier]) -> bool:
        """Does `identifier` take part in a separation that one profile holding `together` would break?"""
        if len(together) > 1 and identifier in self.isolated:
            return True
        return any(identifier in pair and pair <= together for pair in self.separated)

    def allowed(self, together: set[Identifier]) -> bool:
        """May one profile hold all of these identifiers (the admin separations)?"""
        if len(together) > 1 and not self.isolated.isdisjoint(together):
            return False
        return not any(pair <= together for pair in self.separated)

    def _resolve(
        self, candidates: list[Identifier], order: Order, refused: list[tuple[Identifier, str]]
    ) -> Profile | None:
        while candidates:
            owners = sorted({p.key: p for p in map(self.owner.get, candidates) if p}.values(), key=lambda p: p.key)
            new = [i for i in candidates if i not in self.owner]
            merges = sum(p.merges for p in owners) + len(owners) - 1
            at_cap = (len(owners) > 1 and merges > MAX_MERGES) or (
                bool(new) and sum(len(p.identifiers) for p in owners) + len(new) > MAX_IDENTIFIERS
            )
            if at_cap and owners:  # resolve to the highest-priority known identifier's profile; link nothing
                home = next(self.owner[i] for i in candidates if i in self.owner)
                refused += [(i, "cap") for i in candidates if self.owner.get(i) is not home]
                return home
            together = {i for p in owners for i in p.identifiers} | set(new)
            kinds = [i[0] for i in together]
            if at_cap:
                reason = "cap"
            elif (len(owners) > 1 or new) and not self.allowed(together):
                reason = "separated"
            elif any(kinds.count(k) > LIMITS.get(k, DEFAULT_LIMIT) for k in set(kinds)):
                reason = "limit"
            else:
                return self._link(owners, new, order)
            # Refuse the lowest-priority identifier (of those a broken separation names, if any) and match again.
            named = [i for i, c in enumerate(candidates) if reason == "separated" and self.breaks(c, together)]
            refused.append((candidates.pop(named[-1] if named else -1), reason))
        return None

    def _link(self, owners: list[Profile], new: list[Identifier], order: Order) -> Profile:
        if not owners:
            owners = [Profile(len(self.by_key), created_by=(order[1], new[0]))]
            self.by_key[owners[0].key] = owners[0]
        survivor, *others = owners
        for other in others:
            survivor.merges += other.merges + 1
            survivor.identifiers += other.identifiers
            for name, (set_at, value) in other.trait_entries.items():
                survivor.set_trait(name, set_at, value)
            for identifier in other.identifiers:
                self.owner[identifier] = survivor
            self.absorbed_into[other.key] = survivor.key
        for identifier in new:
            survivor.identifiers.append(identifier)
            self.owner[identifier] = survivor
            self.first_seen[identifier] = order
        return survivor

    def current(self, key: int) -> Profile:
        """A profile as it is now: merged-away profiles lead to their survivor."""
        while key in self.absorbed_into:
            key = self.absorbed_into[key]
        return self.by_key[key]


class IdentityModel:
    """The accepted events and the admin separations; every query sees them replayed in canonical order."""

    def __init__(
        self,
        events: Iterable[dict[str, Any]] = (),
        separations: Iterable[tuple[Identifier, Identifier | None]] = (),
    ) -> None:
        self.events: list[dict[str, Any]] = []  # accepted (non-duplicate) events, in arrival order
        self.separated: set[frozenset[Identifier]] = set()  # SplitProfile(a, b): {a, b}
        self.isolated: set[Identifier] = set()  # RemoveIdentifier(x): x
        self._replay: _Replay | None = None
        for a, b in separations:
            if b is None:
                self.isolate(a)
            else:
                self.separate(a, b)
        for event in events:
            self.add(event)

    # Changes.

    def add(self, event: dict[str, Any]) -> None:
        """Stores one accepted (non-duplicate) event, whenever it happened."""
        self.events.append(event)
        self._replay = None

    def apply(self, event: dict[str, Any]) -> Profile | None:
        """Stores one accepted event; returns the profile it belongs to now (None when it has no linkable
        identifier)."""
        self.add(event)
        return self.resolution(str(event["messageId"]))

    def separate(self, a: Identifier, b: Identifier) -> None:
        """SplitProfile: `a` and `b` never share a profile (past and future events)."""
        assert a != b, "an identifier cannot be separated from itself"
        self.separated.add(frozenset((a, b)))
        self._replay = None

    def isolate(self, identifier: Identifier) -> None:
        """RemoveIdentifier: `identifier` is only ever in a profile with no other identifier."""
        self.isolated.add(identifier)
        self._replay = None

    # Queries.

    def separations(self) -> list[tuple[Identifier, Identifier | None]]:
        """The admin separations as resolve() takes them: (a, b) for a split, (x, None) for a removal."""
        isolated: list[tuple[Identifier, Identifier | None]] = [(x, None) for x in sorted(self.isolated)]
        return isolated + sorted((a, b) for a, b in map(sorted, self.separated))

    @property
    def state(self) -> _Replay:
        if self._replay is None:
            canonical = sorted(self.events, key=order_of)  # stable: equal keys keep arrival order
            self._replay = _Replay(canonical, self.separated, self.isolated)
        return self._replay

    @property
    def owner(self) -> dict[Identifier, Profile]:
        """Every linked identifier -> its profile."""
        return self.state.owner

    @property
    def first_seen(self) -> dict[Identifier, Order]:
        """Every linked identifier -> the earliest event (in canonical order) that linked it."""
        return self.state.first_seen

    def profiles(self) -> list[Profile]:
        return sorted({p.key: p for p in self.owner.values()}.values(), key=lambda p: p.key)

    def profile_of(self, identifier: Identifier) -> Profile | None:
        return self.owner.get(identifier)

    def resolution(self, message_id: str) -> Profile | None:
        """The profile (as it is now) that an accepted event resolved to; None when it had no linkable identifier."""
        key = self.state.resolved_to.get(message_id)
        return None if key is None else self.state.current(key)

    def refused(self, message_id: str) -> list[tuple[Identifier, str]]:
        """The linkable identifiers an accepted event did not link, each with why: "limit", "separated" or "cap"."""
        return list(self.state.refused.get(message_id, []))

    def survivor_of(self, created_by: tuple[str, Identifier]) -> Profile | None:
        """The profile (as it is now) that the profile created by an event (with that first identifier) ended in; None
        when that event creates no such profile in the canonical replay."""
        for key, profile in self.state.by_key.items():
            if profile.created_by == created_by:
                return self.state.current(key)
        return None


def resolve(
    events: list[dict[str, Any]], separations: Iterable[tuple[Identifier, Identifier | None]] = ()
) -> IdentityModel:
    """A model holding these accepted events (in any order) and admin separations: (a, b) keeps a and b apart
    (SplitProfile), (x, None) isolates x (RemoveIdentifier)."""
    return IdentityModel(events, separations)
