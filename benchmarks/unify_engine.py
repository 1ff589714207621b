"""The engine in-process: ingesting the Unify workload, and timing lookups from Python.

Everything here goes through ``cdp_server._core.Engine`` with pre-encoded requests, so the
figures are the engine's plus one Python call each, with no gRPC.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tributary._proto.cdp.v1 import admin_pb2, ingest_pb2, profile_pb2

from benchmarks.measurement import percentile
from cdp_server import _core

WINDOW = 16
LOOKUP_BATCH = 1_000


@contextmanager
def open_engine(data_dir: Path, *, source: str = "unify-bench", **settings: Any) -> Iterator[tuple[_core.Engine, int]]:
    """A fresh engine on ``data_dir`` (``settings``: ``Engine``'s keyword arguments) with one
    source; closed however the block ends."""
    engine = _core.Engine(data_dir, **settings)
    try:
        digest = hashlib.sha256(source.encode()).digest()
        source_record = admin_pb2.Source.FromString(engine.create_source(source, digest))
        yield engine, source_record.id
    finally:
        engine.close()


@dataclass(frozen=True)
class IngestRun:
    seconds: float
    events: int
    accepted: int
    refused: int
    stats: dict[str, int]

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def ingest(engine: _core.Engine, source_id: int, batches: Sequence[bytes], *, window: int = WINDOW) -> IngestRun:
    """Submits every batch with at most ``window`` unacknowledged; the clock stops at the last
    ack, when every event is durable and its identity resolved (the engine resolves before acking)."""
    pending: deque[_core.StreamAck] = deque()
    accepted = refused = 0

    def settle(ack: _core.StreamAck) -> None:
        nonlocal accepted, refused
        response = ingest_pb2.StreamResponse.FromString(ack.wait())
        accepted += response.accepted
        refused += response.duplicates + response.conflicts + len(response.rejections)

    started = time.perf_counter()
    for batch in batches:
        if len(pending) >= window:
            settle(pending.popleft())
        pending.append(engine.submit_stream(source_id, batch))
    while pending:
        settle(pending.popleft())
    seconds = time.perf_counter() - started
    # Every event is in its ack as accepted, a duplicate, a conflict or a rejection.
    events = accepted + refused
    return IngestRun(seconds=seconds, events=events, accepted=accepted, refused=refused, stats=engine.stats())


def reresolve(engine: _core.Engine) -> tuple[float, int]:
    """Times a re-resolution of the whole stored log (a dry-run rule change to the rules in force:
    decode, canonical order, resolution, comparison with the live graph). Returns the seconds and
    how many profiles it would change (0: incremental and bulk resolution agree)."""
    rules = admin_pb2.IdentityRules.FromString(engine.get_identity_rules(b""))
    request = admin_pb2.UpdateIdentityRulesRequest(rules=rules, dry_run=True).SerializeToString()
    started = time.perf_counter()
    response = admin_pb2.UpdateIdentityRulesResponse.FromString(engine.update_identity_rules(request))
    seconds = time.perf_counter() - started
    return seconds, response.merges + response.splits


def profiles_of(engine: _core.Engine, identifiers: Sequence[str]) -> dict[str, tuple[str, frozenset[str]]]:
    """Each identifier's profile, as (profile id, its identifiers as "type:value"), via
    ``batch_get_profiles`` in batches of 1000; identifiers without a profile are left out."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for start in range(0, len(identifiers), LOOKUP_BATCH):
        chunk = list(identifiers[start : start + LOOKUP_BATCH])
        raw = engine.batch_get_profiles(profile_pb2.BatchGetProfilesRequest(identifiers=chunk).SerializeToString())
        for result in profile_pb2.BatchGetProfilesResponse.FromString(raw).results:
            if result.HasField("profile"):
                ids = frozenset(f"{i.type}:{i.value}" for i in result.profile.identifiers)
                found[result.identifier] = (result.profile.id, ids)
    return found


@dataclass(frozen=True)
class Latency:
    """Per-call times, microseconds, and the calls per second of the whole loop."""

    calls: int
    p50_us: float
    p99_us: float
    mean_us: float
    calls_per_s: float


def time_get_profile(engine: _core.Engine, identifiers: Sequence[str], *, calls: int, seed: int) -> Latency:
    """``get_profile`` on random identifiers, each call timed alone; requests are encoded first.
    The figure includes the Python call, the GIL release and the bytes object returned."""
    rng = random.Random(seed)
    requests = [
        profile_pb2.GetProfileRequest(identifier=rng.choice(identifiers)).SerializeToString() for _ in range(calls)
    ]
    get_profile, clock = engine.get_profile, time.perf_counter_ns
    for request in requests[: min(1_000, calls)]:  # warm the pages and the caches
        get_profile(request)
    times: list[int] = []
    record = times.append
    started = clock()
    for request in requests:
        before = clock()
        get_profile(request)
        record(clock() - before)
    total_s = (clock() - started) / 1e9
    us = sorted(t / 1_000 for t in times)
    return Latency(
        calls=calls,
        p50_us=percentile(us, 50),
        p99_us=percentile(us, 99),
        mean_us=sum(us) / len(us),
        calls_per_s=calls / total_s,
    )


@dataclass(frozen=True)
class BatchRun:
    batches: int
    profiles: int
    seconds: float

    @property
    def profiles_per_s(self) -> float:
        return self.profiles / self.seconds if self.seconds > 0 else 0.0


def batch_requests(identifiers: Sequence[str], *, batches: int, seed: int) -> list[bytes]:
    """Encoded BatchGetProfilesRequests of LOOKUP_BATCH random identifiers each."""
    rng = random.Random(seed)
    return [
        profile_pb2.BatchGetProfilesRequest(identifiers=rng.choices(identifiers, k=LOOKUP_BATCH)).SerializeToString()
        for _ in range(batches)
    ]


def time_batch_get(engine: _core.Engine, requests: Sequence[bytes]) -> BatchRun:
    """``batch_get_profiles`` over the requests; profiles found are counted after the clock."""
    call = engine.batch_get_profiles
    call(requests[0])  # warm-up
    started = time.perf_counter()
    replies = [call(request) for request in requests]
    seconds = time.perf_counter() - started
    found = sum(
        1
        for raw in replies
        for result in profile_pb2.BatchGetProfilesResponse.FromString(raw).results
        if result.HasField("profile")
    )
    return BatchRun(batches=len(requests), profiles=found, seconds=seconds)
