"""A small, slow, obviously-correct reference of Tributary's identity resolution and profile traits.

Events are applied in arrival order. Each event's identifiers (user_id, anonymous_id, email) minus blocked values
are matched against the profiles that own them ("flat matching"); a would-be profile that breaks a limit drops the
event's lowest-priority identifier and matches again; at a system cap the event resolves to the profile of its
highest-priority known identifier and links nothing. Traits come from identify events only: per key, the event with
the latest (timestamp, messageId) wins, and a winning null removes the key.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any

Identifier = tuple[str, str]  # (type, value)

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


@dataclass
class Profile:
    key: int  # the model's own id: creation order
    created_ms: int
    merges: int = 0
    identifiers: list[Identifier] = field(default_factory=list)  # in link order
    # trait name -> ((timestamp ms, messageId), value); value None is a removal that still competes on order.
    trait_entries: dict[str, tuple[tuple[int, str], Any]] = field(default_factory=dict)

    def set_trait(self, name: str, order: tuple[int, str], value: Any) -> None:
        if name not in self.trait_entries or self.trait_entries[name][0] < order:
            self.trait_entries[name] = (order, value)

    @property
    def traits(self) -> dict[str, Any]:
        return {name: value for name, (_, value) in self.trait_entries.items() if value is not None}


class IdentityModel:
    def __init__(self) -> None:
        self.owner: dict[Identifier, Profile] = {}
        self.first_seen: dict[Identifier, tuple[int, str]] = {}  # identifier -> (timestamp ms, messageId)
        self.absorbed_into: dict[int, int] = {}  # merged-away profile key -> the key it merged into
        self.next_key = 0

    def apply(self, event: dict[str, Any]) -> Profile | None:
        """Resolves one accepted (non-duplicate) event; returns the profile it belongs to, if any."""
        order = (int(event["timestamp"]), str(event["messageId"]))
        candidates = sorted({i for i in extract(event) if not is_blocked(i[1])}, key=priority)
        profile = self._resolve(candidates, order)
        if profile is not None and event.get("type") == "identify":
            for name, value in (event.get("traits") or {}).items():
                profile.set_trait(name, order, value)
        return profile

    def _resolve(self, candidates: list[Identifier], order: tuple[int, str]) -> Profile | None:
        while candidates:
            owners = sorted({id(p): p for p in map(self.owner.get, candidates) if p}.values(), key=_age)
            new = [i for i in candidates if i not in self.owner]
            merges = sum(p.merges for p in owners) + len(owners) - 1
            at_cap = (len(owners) > 1 and merges > MAX_MERGES) or (
                bool(new) and sum(len(p.identifiers) for p in owners) + len(new) > MAX_IDENTIFIERS
            )
            if at_cap and owners:  # resolve to the highest-priority known identifier's profile; link nothing
                return next(self.owner[i] for i in candidates if i in self.owner)
            kinds = [i[0] for p in owners for i in p.identifiers] + [i[0] for i in new]
            if at_cap or any(kinds.count(k) > LIMITS.get(k, DEFAULT_LIMIT) for k in set(kinds)):
                candidates.pop()  # refuse the lowest-priority identifier and match again
                continue
            return self._link(owners, new, order)
        return None

    def _link(self, owners: list[Profile], new: list[Identifier], order: tuple[int, str]) -> Profile:
        if not owners:
            owners = [Profile(self.next_key, created_ms=order[0])]
            self.next_key += 1
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

    # Queries.

    def profiles(self) -> list[Profile]:
        return sorted({id(p): p for p in self.owner.values()}.values(), key=lambda p: p.key)

    def profile_of(self, identifier: Identifier) -> Profile | None:
        return self.owner.get(identifier)

    def current_key(self, key: int) -> int:
        """A profile key as it is now: merged-away keys lead to their survivor."""
        while key in self.absorbed_into:
            key = self.absorbed_into[key]
        return key


def _age(profile: Profile) -> int:
    """Oldest first. The engine breaks ties (two profiles created at one timestamp) by its id hash, which this model
    cannot predict: tests must not create two profiles at the same timestamp and then merge them."""
    return profile.created_ms
