"""The Engage benchmark's calls into the engine in-process: saving definitions, waiting for the
real-time worker, reading members back as user ids.

Saved USERS definitions are kept in real time by a worker thread of the engine
(``engage/realtime.rs``) that runs after the acknowledgements: an ingest is over for Engage only
once that worker is idle. There is no call that says so, so ``wait_drained`` watches the CPU time
of the engine's threads (``/proc/self/task``: the engine runs in this process; every thread but
Python's main one) and the log's last sequence, and takes the last moment either moved. All the
threads, not the worker's alone: the worker also waits, without CPU, for the writer, the
publisher and the snapshot thread (a snapshot of a million profiles takes seconds).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp
from tributary._proto.cdp.v1 import audience_pb2, profile_pb2

from benchmarks.unify_engine import LOOKUP_BATCH
from cdp_server import _core

# The worker's thread name ("tributary-engage"), as the kernel keeps it (15 characters).
WORKER_THREAD = "tributary-engag"
READY = audience_pb2.Audience.STATUS_READY


def at(now_s: int) -> Timestamp:
    return Timestamp(seconds=now_s)


def save(engine: _core.Engine, key: str, query: str, *, computed: bool = False) -> None:
    """Saves a USERS audience (or computed trait) under ``key``."""
    kind = audience_pb2.DEFINITION_TYPE_COMPUTED_TRAIT if computed else audience_pb2.DEFINITION_TYPE_AUDIENCE
    request = audience_pb2.CreateAudienceRequest(key=key, query=query, type=kind, kind=audience_pb2.ENTITY_KIND_USERS)
    engine.create_audience(request.SerializeToString())


def get(engine: _core.Engine, key: str) -> audience_pb2.Audience:
    """The saved definition with its status and live size."""
    raw = engine.get_audience(audience_pb2.GetAudienceRequest(key=key).SerializeToString())
    return audience_pb2.GetAudienceResponse.FromString(raw).audience


def wait_ready(engine: _core.Engine, keys: Iterable[str], *, timeout_s: float = 600.0) -> None:
    """Waits until every definition's first evaluation over all profiles is written (READY)."""
    deadline = time.monotonic() + timeout_s
    waiting = set(keys)
    while waiting:
        waiting = {key for key in waiting if get(engine, key).status != READY}
        if waiting and time.monotonic() > deadline:
            raise TimeoutError(f"definitions still computing after {timeout_s:g} s: {sorted(waiting)}")
        time.sleep(0.05 if waiting else 0)


def _threads_cpu_s(keep: Callable[[Path], bool]) -> float:
    ticks = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            if not keep(task):
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def worker_cpu_s() -> float:
    """CPU seconds the real-time worker thread of this process has used."""
    return _threads_cpu_s(lambda task: (task / "comm").read_text().startswith(WORKER_THREAD))


def engine_cpu_s() -> float:
    """CPU seconds every thread of this process but the main one (Python's) has used."""
    main = str(os.getpid())
    return _threads_cpu_s(lambda task: task.name != main)


def wait_drained(engine: _core.Engine, *, quiet_s: float = 2.0, timeout_s: float = 1_800.0) -> float:
    """Waits until the engine's threads have used no CPU and the log has not grown for
    ``quiet_s``; returns the ``time.perf_counter()`` of the last change seen (polled every 20 ms)."""
    state = (engine_cpu_s(), engine.last_seq())
    changed = time.perf_counter()
    deadline = changed + timeout_s
    while (now := time.perf_counter()) - changed < quiet_s:
        if now > deadline:
            raise TimeoutError(f"the real-time worker was still busy {timeout_s:g} s after the last ack")
        time.sleep(0.02)
        seen = (engine_cpu_s(), engine.last_seq())
        if seen != state:
            state, changed = seen, time.perf_counter()
    return changed


def members_as_user_numbers(engine: _core.Engine, key: str, now_s: int) -> tuple[set[int], int]:
    """A saved audience's members at ``now_s`` (``list_members``), as profile numbers (``u<N>``),
    through ``batch_get_profiles`` from their ``tp_...`` ids; and the count the pages give."""
    request = audience_pb2.ListMembersRequest(key=key, at=at(now_s)).SerializeToString()
    pages = [audience_pb2.ListMembersResponse.FromString(raw) for raw in engine.list_members(request)]
    ids = [member.id for page in pages for member in page.members]
    found: set[int] = set()
    for start in range(0, len(ids), LOOKUP_BATCH):
        lookup = profile_pb2.BatchGetProfilesRequest(identifiers=ids[start : start + LOOKUP_BATCH])
        answer = profile_pb2.BatchGetProfilesResponse.FromString(engine.batch_get_profiles(lookup.SerializeToString()))
        for result in answer.results:
            users = [i.value for i in result.profile.identifiers if i.type == "user_id"]
            if len(users) != 1:
                raise RuntimeError(f"member {result.identifier} has user_ids {users} ({result.error or 'no error'})")
            found.add(int(users[0][1:]))
    if len(found) != len(ids):
        raise RuntimeError(f"{len(ids):,} members listed, {len(found):,} distinct user_ids among them")
    return found, pages[0].count if pages else 0


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()
