"""kill -9 during a merge storm: after the crashes the graph is the reference's graph of exactly the stored events.

A seeded, merge-heavy workload (identity_workload.py with many devices per person: small anonymous profiles that
logins and shared emails merge, plus the planted cases) is streamed in numbered batches, mostly in time order with
events delivered late by up to a day and a tenth of them by up to ten days. The server is killed with SIGKILL at
seeded points of the stream (after a random number of acks, while later batches are in flight), restarted on the same
data directory, and the client resends every unacknowledged batch with the same messageIds. Once every batch is
acknowledged, the events stored under every identifier of the workload must be exactly the sent events that carry
it; the reference (identity_reference.resolve over those stored events) must then give the server's partition of
identifiers into profiles, with the same traits, merge counts and first-seen events. A last restart, with nothing
sent, must leave the graph identical (profile ids, merge histories and identifier lists included). Set CRASH_SEED to
replay a failure.
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from identity_reference import resolve
from identity_workload import (
    DAY_MS,
    Identifier,
    build_workload,
    canonical,
    chunks,
    from_proto,
    ident,
    identifiers_of,
    listed_identifiers,
    merge_history,
    read_profiles,
    to_proto,
)
from rpc import Rpc
from tributary._proto.cdp.v1 import event_pb2, ingest_pb2

BATCH = 25
KILLS = 4
UNACKED_AFTER_KILL = 60


def delivery_order(events: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """Mostly in time order; every event late by up to a day, one in ten by up to ten days."""
    delivered = {
        e["messageId"]: e["timestamp"] + rng.randrange(10 * DAY_MS if rng.random() < 0.1 else DAY_MS) for e in events
    }
    return sorted(events, key=lambda e: delivered[e["messageId"]])


class Client:
    """Streams the batches not yet acknowledged, records their acks and, when told to, SIGKILLs the server at a chosen
    ack: the requests are consumed by gRPC's own thread, so later batches are on the wire or being stored and
    resolved at that moment."""

    def __init__(self, server: Any, batches: dict[int, list[event_pb2.Event]]) -> None:
        self.server = server
        self.batches = batches
        self.acked: set[int] = set()
        self.duplicates = 0  # events the server already held when they were resent: stored, but unacked at a kill

    def stream(self, kill_at: int | None = None, delay: float = 0.0) -> bool:
        """Streams until every batch is acked, or until the kill (after `kill_at` acks and `delay` seconds) ends the
        stream. Returns whether it killed the server."""
        rpc = Rpc(self.server)

        def requests() -> Iterator[ingest_pb2.StreamRequest]:
            for sequence in sorted(set(self.batches) - self.acked):
                yield ingest_pb2.StreamRequest(sequence=sequence, batch=event_pb2.Batch(events=self.batches[sequence]))

        killed = False
        try:
            for ack in rpc.ingest.Stream(requests(), metadata=self.server.ingest_metadata, timeout=120):
                assert not ack.rejections and not ack.conflicts, ack
                assert ack.accepted + ack.duplicates == len(self.batches[ack.sequence]), ack
                self.acked.add(ack.sequence)
                self.duplicates += ack.duplicates
                if kill_at is not None and len(self.acked) >= kill_at and not killed:
                    threading.Event().wait(delay)  # the server goes on with the batches in flight meanwhile
                    self.server.kill()
                    killed = True
        except grpc.RpcError as exc:
            lost = exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)  # type: ignore[attr-defined]
            if not (killed and lost):
                raise
        finally:
            rpc.close()
        return killed


def stored_events(rpc: Rpc, identifiers: list[Identifier], sent: dict[str, dict[str, Any]], seed: int) -> list[Any]:
    """Every event stored under the workload's identifiers, checked against what was sent: each identifier lists
    exactly the sent events that carry it, each once, with the payload that was sent."""
    carrying: dict[Identifier, set[str]] = {}
    for event in sent.values():
        for identifier in identifiers_of(event):
            carrying.setdefault(identifier, set()).add(event["messageId"])
    stored: dict[str, dict[str, Any]] = {}
    for identifier in identifiers:
        listed = [from_proto(e) for e in rpc.events(ident(identifier))]
        counts = Counter(e["messageId"] for e in listed)
        twice = [m for m, n in counts.items() if n > 1]
        assert not twice, f"seed {seed}: stored twice under {ident(identifier)}: {twice[:5]}"
        missing, unknown = carrying[identifier] - set(counts), set(counts) - carrying[identifier]
        assert not missing, f"seed {seed}: acknowledged events missing under {ident(identifier)}: {sorted(missing)[:5]}"
        assert not unknown, f"seed {seed}: {ident(identifier)} lists events that do not carry it: {sorted(unknown)[:5]}"
        for event in listed:
            assert event == sent[event["messageId"]], f"seed {seed}: stored {event}, sent {sent[event['messageId']]}"
            stored[event["messageId"]] = event
    assert set(stored) == set(sent), f"seed {seed}: {len(set(sent) - set(stored))} sent events not found"
    return list(stored.values())


def graph_snapshot(rpc: Rpc, identifiers: list[Identifier]) -> dict[str, Any]:
    profiles = read_profiles(rpc, identifiers)
    ids = sorted({r[0] for r in profiles.values() if r is not None})
    return {
        "profiles": profiles,
        "histories": {pid: merge_history(rpc, pid) for pid in ids},
        "identifiers": {pid: listed_identifiers(rpc, pid) for pid in ids},
    }


# Without periodic snapshots (each start replays the whole log), and with one every 60 events: kills then land
# while snapshots are being encoded or written, and each start loads the last whole one and replays the log after it.
@pytest.mark.parametrize("snapshot_every", [None, 60], ids=["full-replays", "snapshots"])
def test_a_merge_storm_survives_kill_9_and_matches_the_reference(
    server_factory: Any, snapshot_every: int | None
) -> None:
    env = {} if snapshot_every is None else {"TRIBUTARY_SNAPSHOT_EVERY_EVENTS": str(snapshot_every)}
    server = server_factory(env)
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    workload = build_workload(rng, people=120, cases=15, devices=[2, 3, 4, 5, 6, 7])
    sent = {e["messageId"]: e for e in workload.events}
    order = delivery_order(workload.events, rng)
    batches = {n + 1: [to_proto(e) for e in chunk] for n, chunk in enumerate(chunks(order, BATCH))}
    client = Client(server, batches)
    for number in range(KILLS):
        # Kill at a random ack of the stream's next stretch, leaving batches unacknowledged.
        # Leave a stretch after the last kill point: during the delay before a kill the server acks a few more
        # batches (more, the faster it is), and the kill must still find some unacknowledged.
        room = (len(batches) - len(client.acked) - UNACKED_AFTER_KILL) // (KILLS - number)
        kill_at = len(client.acked) + rng.randrange(2, max(3, room))
        assert client.stream(kill_at, delay=rng.uniform(0, 0.004)), f"seed {seed}: kill {number + 1} did not happen"
        assert len(client.acked) < len(batches), f"seed {seed}: every batch was acked before kill {number + 1}"
        server.start()
    assert not client.stream(), f"seed {seed}"
    assert client.duplicates > 0, f"seed {seed}: no kill came between a commit and its ack: the test proved little"
    assert client.acked == set(batches), f"seed {seed}: unacked batches {sorted(set(batches) - client.acked)[:5]}"

    identifiers = [i for i in workload.identifiers() if i[1].strip()]
    rpc = Rpc(server)
    model = resolve(stored_events(rpc, identifiers, sent, seed))
    before = graph_snapshot(rpc, identifiers)
    graph = before["profiles"]

    # The server's partition of identifiers into profiles is the reference's, with the same traits and merges.
    for identifier in identifiers:
        found, expected = graph[identifier], model.profile_of(identifier)
        assert (found is None) == (expected is None), (
            f"seed {seed}: {ident(identifier)}: server {found}, reference {expected}"
        )
    # identifiers -> (traits, merges, identifiers with their first event)
    server_profiles = {frozenset(i[:2] for i in r[1]): (r[2], r[3], r[1]) for r in graph.values() if r is not None}
    first_seen = model.first_seen
    reference_profiles = {
        frozenset(p.identifiers): (
            canonical(p.traits),
            p.merges,
            frozenset((*i, *first_seen[i]) for i in p.identifiers),
        )
        for p in model.profiles()
    }
    only_server = set(server_profiles) - set(reference_profiles)
    only_reference = set(reference_profiles) - set(server_profiles)
    assert not only_server and not only_reference, (
        f"seed {seed}: partitions differ: {len(only_server)} profiles only on the server, e.g. "
        f"{sorted(next(iter(only_server), []))}; {len(only_reference)} only in the reference, e.g. "
        f"{sorted(next(iter(only_reference), []))}"
    )
    for members, (traits, merges, seen) in reference_profiles.items():
        got = server_profiles[members]
        assert got[0] == traits, f"seed {seed}: traits of {sorted(members)}: server {got[0]}, reference {traits}"
        assert got[1] == merges, f"seed {seed}: merges of {sorted(members)}: server {got[1]}, reference {merges}"
        assert got[2] == seen, f"seed {seed}: first seen in {sorted(members)}: server {got[2]}, reference {seen}"

    # The storm was one: many merges, big profiles.
    assert sum(p.merges for p in model.profiles()) >= 200, f"seed {seed}: too few merges"
    assert sum(1 for p in model.profiles() if len(p.identifiers) >= 5) >= 50, f"seed {seed}: too few big profiles"

    # A restart with nothing sent rebuilds the same graph: ids, histories and identifier lists included.
    rpc.close()
    server.kill()
    server.start()
    rpc = Rpc(server)
    after = graph_snapshot(rpc, identifiers)
    for part in ("profiles", "histories", "identifiers"):
        differ = [k for k in before[part] if before[part][k] != after[part].get(k)]
        assert not differ and set(after[part]) == set(before[part]), (
            f"seed {seed}: {part} changed across a restart with nothing sent ({len(differ)}); first {differ[:1]}:\n"
            f"  before: {before[part][differ[0]] if differ else None}\n"
            f"  after:  {after[part].get(differ[0]) if differ else None}"
        )
    if snapshot_every is not None:
        # The starts did use snapshots (each replaying only the log after one), and a graceful stop writes one that
        # the next start loads with nothing after it.
        log = server.log_path.read_text()
        assert log.count("loaded from its snapshot") >= 2, f"seed {seed}: snapshots were not used:\n{log[-3000:]}"
        rpc.close()
        assert server.stop() == 0
        server.start()
        rpc = Rpc(server)
        assert graph_snapshot(rpc, identifiers) == before, f"seed {seed}: the graph changed across a graceful restart"
        assert "then 0 later events replayed" in server.log_path.read_text().rsplit("loaded from its snapshot", 1)[1]
    rpc.close()
