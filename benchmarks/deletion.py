"""Runs the privacy deletion benchmark: ``python -m benchmarks.deletion [--quick] [--profiles N] [--people K]``.

Issue 11: deleting one person among 1,000,000 profiles completes in ≤ 1 s of engine time.

**Data.** ``--profiles`` people, each an identify (userId ``u<n>``, anonymousId ``a<n>``, an email trait)
and 1 to 3 tracks (2 on average); every 50th person also joins one of 1,000 accounts (a group call): a
graph of N profiles and ~3N events. The K people deleted (``u123456``, ``u314159``, ... at 1M) have more:
a page seen anonymously before their identify, a second identify, a group call and two more tracks, so
each deletion removes events of every type through every identifier of theirs. It goes into a fresh
``cdp serve`` (durable defaults, loopback only) as JSON lines batches of 500 over the gRPC stream
(``StreamRequest.json``: the fastest path users have, no per-event Python object), sent by the ingest
benchmark's streaming client in its own process, and every event must be acknowledged as stored. Then
the server is left until it is idle (its index, snapshot and other background threads done) and the
disk is synced.

**Deletions.** One after the other, ``AdminService.CreateRegulation`` (``SUPPRESS_WITH_DELETE``,
``user_id:u<n>``), then ``GetRegulation`` every 20 ms until ``finished_at_ms``. The receipt's
``engine_seconds`` is the engine's own time over its stages (events, profiles, identifier index, rejected
events, violation examples, dead letters, identity snapshot), without the last stage, ``freed pages`` (the
scrub of LMDB's freed pages). The scrub is timed by the server itself, in its log line ``deletion N
finished (engine X s, scrub Y s)``: not from the polls, because a scrub holds each LMDB environment
exclusively while it scrubs it, so a poll made then waits for it (the longest poll of each deletion is
kept: it shows that wait). The wall time is the receipt's ``finished_at_ms - created_at_ms`` (the server's
clock, from the regulation's creation to the receipt closing), and the client's from the call to the poll
that saw it finished. The poll also notes when each stage was first seen settled (to its 20 ms). Each
deletion is checked: its events stage must have removed exactly that person's events, ``GetProfile`` must
answer NOT_FOUND for their userId, anonymousId and email, and other people must still resolve, with all
three identifiers on one profile.

**Baseline.** What a deletion without a targeted path would have to do: rebuild the identity graph from
the whole log. The server is stopped (SIGTERM), its identity snapshot removed, and it is started again on
the same data: it replays the log and logs ``re-resolved N events in X s`` (the engine's time, the figure
set beside ``engine_seconds``); the time to SERVING is kept too (health polled every 0.2 s). The rebuilt
server must still know none of the deleted people, and exactly the others' profiles.

Results go to ``benchmarks/results/deletion.json`` (``results/quick/`` with ``--quick``) and the results page.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from tributary._proto.cdp.v1 import (
    admin_pb2_grpc,
    governance_pb2,
    ingest_pb2,
    profile_pb2,
    profile_pb2_grpc,
)

from benchmarks import workload
from benchmarks.connections import ADMIN_TOKEN, cpu_seconds, tributary
from benchmarks.deletion_report import write_deletion_json
from benchmarks.results_page import finish
from benchmarks.run import QUICK_RESULTS_DIR, RESULTS_DIR, _settle_disk
from benchmarks.startup import disk_bytes
from benchmarks.systems import StreamSettings, VerificationFailed, drive

DEFAULT_PROFILES = 1_000_000
QUICK_PROFILES = 20_000
DEFAULT_PEOPLE = 5
QUICK_PEOPLE = 3
# Where the people deleted sit among the profiles (u123456, u314159, ... at 1M).
PEOPLE_AT = (0.123456, 0.314159, 0.577215, 0.707106, 0.906179, 0.271828, 0.618033, 0.414213, 0.732050)
ACCOUNTS = 1_000
GROUP_EVERY = 50
POLL_S = 0.02
DELETION_TIMEOUT_S = 300.0
# Idle: the server used under this share of a core over QUIET_S.
QUIET_S = 2.0
IDLE_CORES = 0.05
FINISHED = governance_pb2.REGULATION_STATUS_FINISHED
SETTLED = (FINISHED, governance_pb2.REGULATION_STATUS_FAILED)
BEFORE_SNAPSHOT = "dead letters"  # the stage the snapshot follows
REMOVED = re.compile(r"^(\d+) events removed")


def people_deleted(profiles: int, people: int) -> list[int]:
    """The profile numbers of the people deleted: distinct, spread over the profiles."""
    chosen = list(dict.fromkeys(int(profiles * share) for share in PEOPLE_AT))
    if people > len(chosen) or profiles < 10 * people:
        raise ValueError(f"--people: at most {len(chosen)}, and --profiles at least 10x as many")
    return chosen[:people]


def _person(n: int, deleted: bool) -> list[str]:
    """One person's events as JSON lines (their messageIds are unique across the data)."""
    user, anonymous = f"u{n}", f"a{n}"
    events = []
    if deleted:
        events.append(f'{{"type":"page","messageId":"p{n}","anonymousId":"{anonymous}","name":"Pricing"}}')
    events.append(
        f'{{"type":"identify","messageId":"i{n}","userId":"{user}","anonymousId":"{anonymous}",'
        f'"traits":{{"email":"{user}@example.com","name":"Person {n}"}}}}'
    )
    for k in range(n % 3 + 1 + (2 if deleted else 0)):
        events.append(
            f'{{"type":"track","messageId":"t{n}-{k}","userId":"{user}","event":"Product Viewed",'
            f'"properties":{{"sku":"sku-{(n + k) % 2000:04d}","price":{(n * 7 + k) % 100 + 0.99}}}}}'
        )
    if deleted or n % GROUP_EVERY == 0:
        events.append(
            f'{{"type":"group","messageId":"g{n}","userId":"{user}","groupId":"acct-{n % ACCOUNTS}",'
            f'"traits":{{"name":"Account {n % ACCOUNTS}"}}}}'
        )
    if deleted:
        events.append(f'{{"type":"identify","messageId":"i{n}-2","userId":"{user}","traits":{{"plan":"pro"}}}}')
    return events


@dataclass(frozen=True)
class DeletionData:
    path: Path  # the batches, in the ingest workload's cache format
    events: int
    events_of: dict[int, int]  # each deleted person's events


def write_data(profiles: int, deleted: list[int], path: Path) -> DeletionData:
    """The data as encoded StreamRequests with JSON lines payloads of 500 events, saved where
    ``benchmarks.client`` reads them."""
    wanted = set(deleted)
    batches: list[bytes] = []
    lines: list[str] = []
    events = 0
    events_of: dict[int, int] = {}

    def flush() -> None:
        payload = ingest_pb2.JsonBatch(data="\n".join(lines).encode(), ignore_sent_at=True)
        batches.append(ingest_pb2.StreamRequest(sequence=len(batches) + 1, json=payload).SerializeToString())
        lines.clear()

    for n in range(profiles):
        person = _person(n, n in wanted)
        if n in wanted:
            events_of[n] = len(person)
        lines.extend(person)
        events += len(person)
        if len(lines) >= workload.BATCH_SIZE:
            flush()
    if lines:
        flush()
    workload.save(workload.Workload(events, 0, batches, [], []), path)
    return DeletionData(path, events, events_of)


def wait_idle(pid: int, *, timeout_s: float = 600.0) -> float:
    """Waits until the server has used under IDLE_CORES of a core over QUIET_S; returns the seconds waited."""
    started = time.monotonic()
    before = cpu_seconds(pid)
    while True:
        time.sleep(QUIET_S)
        now = cpu_seconds(pid)
        if (now - before) / QUIET_S < IDLE_CORES:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"the server was still busy {timeout_s:.0f} s after the load")
        before = now


class Calls:
    """The RPCs the benchmark makes, with the admin token."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.admin = admin_pb2_grpc.AdminServiceStub(channel)
        self.profiles = profile_pb2_grpc.ProfileServiceStub(channel)
        self.metadata = (("authorization", f"Bearer {ADMIN_TOKEN}"),)

    def profile(self, identifier: str) -> profile_pb2.Profile | None:
        """The profile ``identifier`` resolves to; None when NOT_FOUND."""
        try:
            reply = self.profiles.GetProfile(
                profile_pb2.GetProfileRequest(identifier=identifier), metadata=self.metadata, timeout=30
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return reply.profile

    def delete(self, user_id: str) -> tuple[governance_pb2.Regulation, float, dict[str, float], float]:
        """A SUPPRESS_WITH_DELETE regulation of ``user_id``, polled until its receipt is finished;
        returns the receipt, the client's seconds from the call to the poll that saw it finished,
        when each stage was first seen settled (seconds since the call) and the longest poll."""
        started = time.perf_counter()
        request = governance_pb2.CreateRegulationRequest(
            type=governance_pb2.REGULATION_TYPE_SUPPRESS_WITH_DELETE, identifiers=[f"user_id:{user_id}"]
        )
        regulation = self.admin.CreateRegulation(request, metadata=self.metadata, timeout=30)
        seen: dict[str, float] = {}
        longest_poll = 0.0
        while regulation.finished_at_ms == 0:
            if time.perf_counter() - started > DELETION_TIMEOUT_S:
                raise TimeoutError(f"regulation {regulation.id} not finished after {DELETION_TIMEOUT_S:.0f} s")
            time.sleep(POLL_S)
            polled = time.perf_counter()
            regulation = self.admin.GetRegulation(
                governance_pb2.GetRegulationRequest(id=regulation.id), metadata=self.metadata, timeout=30
            )
            at = time.perf_counter()
            longest_poll = max(longest_poll, at - polled)
            for stage in regulation.stores:
                if stage.status in SETTLED:
                    seen.setdefault(stage.store, at - started)
        return regulation, time.perf_counter() - started, seen, longest_poll


def _identifiers(profile: profile_pb2.Profile) -> set[str]:
    return {f"{i.type}:{i.value}" for i in profile.identifiers}


def _person_ids(n: int) -> list[str]:
    return [f"user_id:u{n}", f"anonymous_id:a{n}", f"email:u{n}@example.com"]


def check_gone(calls: Calls, n: int) -> None:
    """None of the person's identifiers resolves any more."""
    found = [identifier for identifier in _person_ids(n) if calls.profile(identifier) is not None]
    if found:
        raise VerificationFailed(f"u{n} was deleted, yet {found} still resolve")


def check_kept(calls: Calls, n: int) -> None:
    """The person resolves, their three identifiers on one profile."""
    profile = calls.profile(f"user_id:u{n}")
    if profile is None or not set(_person_ids(n)) <= _identifiers(profile):
        have = sorted(_identifiers(profile)) if profile else "NOT_FOUND"
        raise VerificationFailed(f"u{n} was not deleted, yet its profile is {have}")


def _log_figure(log_path: Path, pattern: str, *, wait_s: float = 2.0) -> re.Match[str] | None:
    """The last match of ``pattern`` in the server's log, waited for up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        found = list(re.finditer(pattern, log_path.read_text(errors="replace")))
        if found or time.monotonic() > deadline:
            return found[-1] if found else None
        time.sleep(0.05)


def measure_deletion(calls: Calls, log_path: Path, n: int, events: int, others: list[int]) -> dict[str, Any]:
    """Deletes u<n> and checks it; returns the receipt's figures."""
    regulation, client_s, seen, longest_poll = calls.delete(f"u{n}")
    stages = {stage.store: stage for stage in regulation.stores}
    if regulation.status != FINISHED:
        details = {s.store: (governance_pb2.RegulationStatus.Name(s.status), s.detail) for s in regulation.stores}
        raise VerificationFailed(f"regulation {regulation.id} ended {regulation.status}: {details}")
    removed = REMOVED.match(stages["events and dedupe markers"].detail)
    if not removed or int(removed.group(1)) != events:
        raise VerificationFailed(f"u{n} had {events} events; the receipt says {stages['events and dedupe markers']}")
    check_gone(calls, n)
    for other in others:
        check_kept(calls, other)
    line = _log_figure(log_path, rf"deletion {regulation.id} finished \(engine ([0-9.]+) s, scrub ([0-9.]+) s\)")
    order = [stage.store for stage in regulation.stores]
    timeline = {store: round(seen[store], 4) for store in order if store in seen}
    return {
        "user_id": f"u{n}",
        "regulation": regulation.id,
        "events": events,
        "engine_s": regulation.engine_seconds,
        "wall_s": (regulation.finished_at_ms - regulation.created_at_ms) / 1000,
        "client_s": round(client_s, 4),
        "scrub_s": float(line.group(2)) if line else None,
        # Every stage before the snapshot was seen settled by then (seconds after the call).
        "before_snapshot_s": round(seen[BEFORE_SNAPSHOT], 4) if BEFORE_SNAPSHOT in seen else None,
        "longest_poll_s": round(longest_poll, 4),
        "seen_settled_s": timeline,
        "stages": [{"store": s.store, "detail": s.detail} for s in regulation.stores],
    }


def measure_rebuild(
    cdp: Path, tmp: Path, deleted: list[int], others: list[int], profiles: int, events: int
) -> dict[str, Any]:
    """The baseline: start-up on the same data without its identity snapshot (the whole log, ``events``
    events, replayed). Returns the size of the snapshot the server wrote when it stopped, too."""
    snapshot_bytes = sum(path.stat().st_size for path in (tmp / "data" / "snapshots").glob("*.snap"))
    shutil.rmtree(tmp / "data" / "snapshots", ignore_errors=True)
    _settle_disk()
    started = time.perf_counter()
    with tributary(cdp, tmp) as server, grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        serving_s = time.perf_counter() - started
        log_path = tmp / "server.log"
        replay = _log_figure(log_path, r"re-resolved (\d+) events in ([0-9.]+) s")
        rebuilt = _log_figure(log_path, r"identity graph rebuilt from (\d+) events: (\d+) profiles")
        if replay is None or rebuilt is None:
            raise VerificationFailed("the server did not rebuild its graph from the log (no snapshot was removed?)")
        calls = Calls(channel)
        for n in deleted:
            check_gone(calls, n)
        for n in others:
            check_kept(calls, n)
    kept = int(rebuilt.group(2))
    # Every person left is a profile of their own, and the accounts are not profiles.
    if kept != profiles - len(deleted):
        raise VerificationFailed(f"the rebuilt graph has {kept:,} profiles, not {profiles - len(deleted):,}")
    return {
        "events": events,
        "through_seq": int(replay.group(1)),  # the engine counts seqs, the deleted events' among them
        "engine_s": float(replay.group(2)),
        "serving_s": round(serving_s, 3),
        "profiles": kept,
        "snapshot_bytes": snapshot_bytes,
    }


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    deleted = people_deleted(args.profiles, args.people)
    started = time.perf_counter()
    data = write_data(args.profiles, deleted, tmp / "deletion-data.bin")
    print(
        f"  {data.events:,} events of {args.profiles:,} profiles in {time.perf_counter() - started:.1f} s", flush=True
    )
    rng = random.Random(args.seed)
    others = [n for n in rng.sample(range(args.profiles), 2 * args.people + 10) if n not in deleted][:20]
    settings = StreamSettings(
        workload_path=data.path,
        events=data.events,
        window=16,
        timeout_s=120 + data.events / 10_000,
        tmp_root=args.tmp_dir,
        cdp=args.cdp,
    )
    deletions = []
    with tributary(args.cdp, tmp) as server, grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        load = drive("load", "JSON lines over the gRPC stream", server.port, settings, write_key=server.write_key,
                     counts=True)  # fmt: skip
        print(f"  loaded: {load.events_per_s:,.0f} events/s ({load.seconds:.1f} s)", flush=True)
        idle_s = wait_idle(server.pid)
        data_bytes = disk_bytes(tmp / "data")
        print(f"  server idle {idle_s:.1f} s after the last ack; {data_bytes / 2**20:,.0f} MiB on disk", flush=True)
        calls = Calls(channel)
        for n in others[:3]:
            check_kept(calls, n)
        for i, n in enumerate(deleted):
            _settle_disk()
            figures = measure_deletion(calls, tmp / "server.log", n, data.events_of[n], others[i :: len(deleted)])
            scrub = f"{figures['scrub_s']:.3f} s" if figures["scrub_s"] is not None else "not logged"
            print(
                f"  u{n}: engine {figures['engine_s']:.3f} s, to FINISHED {figures['wall_s']:.3f} s "
                f"(client {figures['client_s']:.3f} s), scrub {scrub}",
                flush=True,
            )
            deletions.append(figures)
    print("  rebuilding the graph from the whole log (start-up without the snapshot) ...", flush=True)
    stored = data.events - sum(data.events_of.values())
    rebuild = measure_rebuild(args.cdp, tmp, deleted, others, args.profiles, stored)
    print(
        f"  rebuilt {rebuild['events']:,} events in {rebuild['engine_s']:.2f} s "
        f"({rebuild['serving_s']:.1f} s to SERVING)",
        flush=True,
    )
    engine = [d["engine_s"] for d in deletions]
    return {
        "profiles": args.profiles,
        "events": data.events,
        "load": {"events_per_s": round(load.events_per_s, 1), "seconds": round(load.seconds, 3)},
        "idle_after_load_s": round(idle_s, 1),
        "data_bytes": data_bytes,
        "snapshot_bytes": rebuild["snapshot_bytes"],
        "deletions": deletions,
        "engine_median_s": statistics.median(engine),
        "engine_max_s": max(engine),
        "wall_median_s": statistics.median(d["wall_s"] for d in deletions),
        "rebuild": rebuild,
    }


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.deletion", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_PROFILES:,} profiles, {QUICK_PEOPLE} deletions")
    parser.add_argument("--profiles", type=int, default=None, help=f"profiles loaded (default {DEFAULT_PROFILES:,})")
    parser.add_argument(
        "--people", type=int, default=None, help=f"people deleted, one by one (default {DEFAULT_PEOPLE})"
    )
    parser.add_argument("--seed", type=int, default=20_261_211, help="which other people are checked")
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where the data directory is made")
    parser.add_argument("--results-dir", type=Path, default=None, help="where deletion.json goes")
    parser.add_argument("--cdp", type=Path, default=Path(sys.executable).with_name("cdp"), help="the cdp executable")
    args = parser.parse_args(argv)
    args.profiles = args.profiles or (QUICK_PROFILES if args.quick else DEFAULT_PROFILES)
    args.people = args.people or (QUICK_PEOPLE if args.quick else DEFAULT_PEOPLE)
    if args.results_dir is None:
        args.results_dir = QUICK_RESULTS_DIR if args.quick else RESULTS_DIR
    try:
        people_deleted(args.profiles, args.people)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    started = time.perf_counter()
    runs: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    print(f"deletion: {args.people} people among {args.profiles:,} profiles ...", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-deletion-", dir=args.tmp_dir) as tmp:
            runs["deletion"] = measure(args, Path(tmp))
    except Exception as exc:  # reported in the document and the page, like every benchmark's failures
        errors["deletion"] = f"{type(exc).__name__}: {exc}"
    document = write_deletion_json(
        args.results_dir,
        runs=runs,
        errors=errors,
        settings={"profiles": args.profiles, "people": args.people, "quick": args.quick, "seed": args.seed},
    )
    table = "\n".join(f"{t['target']}: {t['measured']} — {t['verdict']}" for t in document["targets"])
    return finish(args.results_dir, "deletion.json", table, errors, started)


if __name__ == "__main__":
    sys.exit(main())
