"""The oracle check of bulk resolution: a profile must hold exactly its identifier's component."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Mismatch:
    """One sampled identifier whose profile is not its component."""

    identifier: str
    profile_id: str  # "" when the engine has no profile for it
    missing: frozenset[str]  # in the component, not in the profile
    extra: frozenset[str]  # in the profile, not in the component

    def describe(self) -> str:
        if not self.profile_id:
            return f"{self.identifier}: no profile"
        return (
            f"{self.identifier} ({self.profile_id}): missing {sorted(self.missing)[:5]}, extra {sorted(self.extra)[:5]}"
        )


def mismatches(
    sample: Sequence[str],
    profiles: Mapping[str, tuple[str, frozenset[str]]],
    component_of: Mapping[str, frozenset[str]],
) -> list[Mismatch]:
    """Compares, for each sampled identifier, the identifiers of its profile (profile id and
    identifiers, as ``unify_engine.profiles_of`` returns them) with its component.

    Also checks that the sample's identifiers of one component share one profile id and those
    of different components do not, which equal sets alone would not catch when two profiles
    hold the same identifiers.
    """
    out: list[Mismatch] = []
    owner: dict[frozenset[str], str] = {}
    ids_seen: dict[str, frozenset[str]] = {}
    for identifier in sample:
        component = component_of[identifier]
        profile_id, ids = profiles.get(identifier, ("", frozenset()))
        if not profile_id or ids != component:
            out.append(Mismatch(identifier, profile_id, component - ids, ids - component))
            continue
        expected_id = owner.setdefault(component, profile_id)
        other = ids_seen.setdefault(profile_id, component)
        if expected_id != profile_id or other != component:
            out.append(Mismatch(identifier, profile_id, frozenset(), frozenset({f"(profile id {expected_id})"})))
    return out
