"""Synthetic people with a known truth for the Predictions tests, sent into a real engine.

Each person has latent rates (events per day) that stay fixed over time: their events are Poisson
processes of those rates, so what they do in any horizon depends on the rates alone, never on the
realised past (which is only evidence about the rates). The true probability of an event in a horizon
of H days is then 1 - exp(-rate * H), and the best ranking anyone could make is by the rates (the
oracle). History is sent in time order, as the log's clock requires for it to count at its cutoffs.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tributary._proto.cdp.v1 import profile_pb2

from cdp_server import _core
from cdp_server.predictions.pipeline import Rows

DAY_MS = 86_400_000
START_MS = int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
BATCH = 1_000
LOOKUPS = 1_000  # BatchGetProfiles' limit


def day_end(days: int) -> int:
    """The last millisecond of day `days` after START (day 1 ends at START + 1 day - 1 ms)."""
    return START_MS + days * DAY_MS - 1


@dataclass(frozen=True)
class Event:
    ms: int
    person: int
    name: str
    revenue: float | None = None
    properties: tuple[tuple[str, Any], ...] = ()


def poisson(
    rng: np.random.Generator,
    name: str,
    rate: np.ndarray,
    start_ms: np.ndarray | int,
    end_ms: np.ndarray | int,
    *,
    revenue: np.ndarray | None = None,
) -> list[Event]:
    """Each person's events of `name` at `rate[i]` per day over (start, end]; with `revenue`, each
    carries a gamma(4) amount of mean revenue[i]."""
    people = rate.shape[0]
    start = np.broadcast_to(np.asarray(start_ms, dtype=np.int64), (people,))
    end = np.broadcast_to(np.asarray(end_ms, dtype=np.int64), (people,))
    span = np.maximum(end - start, 0)
    counts = rng.poisson(rate * span / DAY_MS)
    who = np.repeat(np.arange(people), counts)
    times = start[who] + 1 + (rng.random(who.shape[0]) * (span[who] - 1)).astype(np.int64)
    amounts = rng.gamma(4.0, revenue[who] / 4.0) if revenue is not None else None
    return [
        Event(int(t), int(i), name, None if amounts is None else round(float(amounts[k]), 2))
        for k, (t, i) in enumerate(zip(times, who, strict=True))
    ]


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds")


def user_id(person: int) -> str:
    return f"p{person}"


def send(engine: _core.Engine, events: Iterable[Event], *, prefix: str = "m") -> int:
    """Sends `events` in time order (ties in the order given) as track calls; returns how many."""
    ordered = sorted(events, key=lambda e: e.ms)
    for start in range(0, len(ordered), BATCH):
        batch = []
        for k, event in enumerate(ordered[start : start + BATCH], start):
            properties = dict(event.properties)
            if event.revenue is not None:
                properties["revenue"] = event.revenue
            batch.append(
                {
                    "type": "track",
                    "userId": user_id(event.person),
                    "event": event.name,
                    "messageId": f"{prefix}-{k}",
                    "timestamp": iso(event.ms),
                    "properties": properties,
                }
            )
        outcome = engine.send_json(1, json.dumps({"batch": batch}).encode())
        assert not outcome.rejections, outcome.rejections[:3]
    return len(ordered)


def identify(engine: _core.Engine, traits: dict[int, dict[str, Any]], ms: int) -> None:
    calls = [
        {"type": "identify", "userId": user_id(p), "traits": t, "messageId": f"identify-{p}", "timestamp": iso(ms)}
        for p, t in traits.items()
    ]
    for start in range(0, len(calls), BATCH):
        outcome = engine.send_json(1, json.dumps({"batch": calls[start : start + BATCH]}).encode())
        assert not outcome.rejections, outcome.rejections[:3]


def profiles(engine: _core.Engine, people: int) -> dict[int, profile_pb2.Profile]:
    """Person -> their profile (those who have one)."""
    found: dict[int, profile_pb2.Profile] = {}
    for start in range(0, people, LOOKUPS):
        request = profile_pb2.BatchGetProfilesRequest(
            identifiers=[f"user_id:{user_id(p)}" for p in range(start, min(people, start + LOOKUPS))]
        )
        reply = profile_pb2.BatchGetProfilesResponse.FromString(engine.batch_get_profiles(request.SerializeToString()))
        for result in reply.results:
            if result.profile.id:
                found[int(result.identifier.split(":p", 1)[1])] = result.profile
    return found


def person_of(engine: _core.Engine, people: int) -> dict[str, int]:
    """Profile id -> person."""
    return {profile.id: person for person, profile in profiles(engine, people).items()}


def traits_of(engine: _core.Engine, people: int) -> dict[int, dict[str, Any]]:
    return {person: json.loads(profile.traits or b"{}") for person, profile in profiles(engine, people).items()}


def rows_people(engine: _core.Engine, rows: Rows, owners: dict[str, int]) -> np.ndarray:
    """The person of each row."""
    return np.array([owners[p] for p in engine.profile_ids(rows.ids.tobytes())], dtype=np.int64)


def columns(rows: Rows, names: Sequence[str]) -> np.ndarray:
    """The columns `names` of `rows` (a model's features)."""
    index = {c: i for i, c in enumerate(rows.columns)}
    return rows.features[:, [index[c] for c in names]]


def counts_before(events: Sequence[Event], people: int, cutoff_ms: int, names: set[str]) -> np.ndarray:
    """Each person's events of `names` with time <= cutoff."""
    who = [e.person for e in events if e.ms <= cutoff_ms and e.name in names]
    return np.bincount(np.asarray(who, dtype=np.int64), minlength=people)


def counts_between(events: Sequence[Event], people: int, start_ms: int, end_ms: int, names: set[str]) -> np.ndarray:
    """Each person's events of `names` in (start, end]."""
    who = [e.person for e in events if start_ms < e.ms <= end_ms and e.name in names]
    return np.bincount(np.asarray(who, dtype=np.int64), minlength=people)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)
