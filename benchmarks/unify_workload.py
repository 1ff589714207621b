"""The identity graph of the Unify benchmark: people, their identifiers and the events that link them.

N people each own 1 to 4 identifiers; ~10 % of them are chained into groups of two or three by
an identifier they share (an email or an external id), so their profiles must merge. The
graph is built so that no identity limit can ever be hit — at most one ``user_id`` per group
(only its first member may have one) and at most one value of any other type per person, in
groups of at most three — hence the engine's profiles must be exactly the connected
components of the identifier graph, which is what lets plain graph algorithms be the
baselines and the oracle.

Every event carries its person's anchor (``user_id`` or ``anonymous_id``: the Segment Spec
requires one of the two), so each event's identifiers are connected through it. A person with
two or more identifiers sends them in two events (track/identify), and all events are shuffled,
so profiles are also merged, not only attached to. Encoding a million people's events takes
about a minute in Python, so the encoded batches and the edge list are cached under
``benchmarks/.cache/`` like ``workload.py`` does.
"""

from __future__ import annotations

import array
import itertools
import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tributary._proto.cdp.v1 import event_pb2, ingest_pb2

from benchmarks.workload import _BASE_TIME_MS, _LIBRARY, CACHE_DIR, _read_sections, _timestamp, _write_section

FORMAT_VERSION = 1
DEFAULT_PROFILES = 1_000_000
QUICK_PROFILES = 100_000
DEFAULT_SEED = 20_240_602
BATCH_SIZE = 500
SHARED_FRACTION = 0.10
# Of the people who share an identifier, the share that sits in a chain of three (the rest in pairs).
TRIPLE_SHARE = 0.25
USER_ID_SHARE = 0.5
MAX_IDENTIFIERS = 4
# Segment's default limits: these are what the generator must never reach.
LIMITS = {"user_id": 1}
DEFAULT_LIMIT = 5
MAX_MERGES = 100

ANCHOR_TYPES = ("user_id", "anonymous_id")
EXTERNAL_TYPES = ("crm", "loyalty")
# Shared identifiers link two people; user_id never does, and anonymous_id stays an anchor.
SHARED_TYPES = ("email", *EXTERNAL_TYPES)
_EVENT_SPACING_MS = 1


@dataclass(frozen=True)
class IdentityGraph:
    """The generated people and events, as identifier strings ("type:value").

    Attributes:
        n_profiles: Number of people (the profiles before sharing merges them).
        seed: Seed the graph was generated from.
        people: Each person's identifiers, anchor first.
        groups: The people (indices) chained by shared identifiers, each of two or three.
        events: The identifiers each event carries, anchor first, in stream order.
    """

    n_profiles: int
    seed: int
    people: list[tuple[str, ...]]
    groups: list[tuple[int, ...]]
    events: list[tuple[str, ...]]


@dataclass(frozen=True)
class EdgeList:
    """The identifier graph the baselines get: every identifier, and one edge from each event's
    anchor to each other identifier on it (an isolated node is a one-identifier person)."""

    nodes: list[str]
    edges: list[tuple[int, int]]

    def string_edges(self) -> list[tuple[str, str]]:
        return [(self.nodes[a], self.nodes[b]) for a, b in self.edges]


@dataclass(frozen=True)
class UnifyWorkload:
    """What a run feeds to the engine (batches) and to the baselines (the edge list)."""

    n_profiles: int
    seed: int
    n_events: int
    batches: list[bytes]
    graph: EdgeList


def split(identifier: str) -> tuple[str, str]:
    kind, _, value = identifier.partition(":")
    return kind, value


def _value(rng: random.Random, kind: str, person: int) -> str:
    """A fresh value of ``kind``; the person number keeps values unique without a lookup."""
    if kind == "user_id":
        return f"user_id:u{person:08d}"
    if kind == "anonymous_id":
        return f"anonymous_id:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
    if kind == "email":
        return f"email:p{person}.{rng.getrandbits(24):06x}@example.com"
    return f"{kind}:{kind[0].upper()}{person:08d}{rng.getrandbits(16):04x}"


def _make_groups(rng: random.Random, n_profiles: int) -> list[tuple[int, ...]]:
    """Random people, ~SHARED_FRACTION of them, cut into chains of two or three."""
    wanted = round(n_profiles * SHARED_FRACTION)
    members = rng.sample(range(n_profiles), wanted)
    # A group is a triple with probability q so that triples hold TRIPLE_SHARE of the members:
    # 3q / (3q + 2(1 - q)) = TRIPLE_SHARE.
    triple = 2 * TRIPLE_SHARE / (3 - TRIPLE_SHARE)
    groups: list[tuple[int, ...]] = []
    at = 0
    while wanted - at >= 2:
        size = 3 if wanted - at >= 3 and rng.random() < triple else 2
        groups.append(tuple(members[at : at + size]))
        at += size
    return groups


def generate(n_profiles: int, seed: int = DEFAULT_SEED) -> IdentityGraph:
    """The people, their groups and their shuffled events (slow for millions: see ``load_or_generate``)."""
    rng = random.Random(seed)
    groups = _make_groups(rng, n_profiles)
    anchor_user = [rng.random() < USER_ID_SHARE for _ in range(n_profiles)]
    forced: dict[int, dict[str, str]] = {}
    for group in groups:
        for member in group[1:]:
            anchor_user[member] = False  # one user_id per group at most: only the first may have it
        for left, right in itertools.pairwise(group):
            taken = forced.setdefault(left, {}).keys() | forced.setdefault(right, {}).keys()
            kind = rng.choice([k for k in SHARED_TYPES if k not in taken])
            forced[left][kind] = forced[right][kind] = _value(rng, kind, left)

    people: list[tuple[str, ...]] = []
    for person in range(n_profiles):
        anchor = "user_id" if anchor_user[person] else "anonymous_id"
        mine = forced.get(person, {})
        pool = [k for k in ("anonymous_id", *SHARED_TYPES) if k != anchor and k not in mine]
        extra = max(0, rng.randint(1, MAX_IDENTIFIERS) - 1 - len(mine))
        kinds = list(mine) + rng.sample(pool, extra)
        rng.shuffle(kinds)
        people.append((_value(rng, anchor, person), *(mine.get(k) or _value(rng, k, person) for k in kinds)))

    events: list[tuple[str, ...]] = []
    for ids in people:
        anchor, others = ids[0], ids[1:]
        if not others:
            events.append((anchor,))
            continue
        cut = rng.randint(1, len(others))  # the second event may carry the anchor alone (a later track)
        events += [(anchor, *others[:cut]), (anchor, *others[cut:])]
    rng.shuffle(events)
    return IdentityGraph(n_profiles=n_profiles, seed=seed, people=people, groups=groups, events=events)


def encode_event(rng: random.Random, identifiers: Sequence[str], time_ms: int) -> event_pb2.Event:
    """An identify when the event carries an email (in traits, as Segment's clients send it),
    else a track; external ids go in ``context.externalIds``."""
    ev = event_pb2.Event(
        message_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        original_timestamp=_timestamp(time_ms),
    )
    context: dict[str, object] = {"library": _LIBRARY}
    external: list[dict[str, str]] = []
    email = ""
    for identifier in identifiers:
        kind, value = split(identifier)
        if kind == "user_id":
            ev.user_id = value
        elif kind == "anonymous_id":
            ev.anonymous_id = value
        elif kind == "email":
            email = value
        else:
            external.append({"id": value, "type": kind, "collection": "users", "encoding": "none"})
    if external:
        context["externalIds"] = external
    if email:
        ev.type = event_pb2.EVENT_TYPE_IDENTIFY
        ev.traits = json.dumps({"email": email, "plan": rng.choice(("free", "team"))}, separators=(",", ":")).encode()
    else:
        ev.type = event_pb2.EVENT_TYPE_TRACK
        ev.event = rng.choice(("Signed In", "Product Viewed"))
        ev.properties = b'{"source":"unify-bench"}'
    ev.context = json.dumps(context, separators=(",", ":")).encode()
    return ev


def encode_batches(events: Sequence[Sequence[str]], seed: int) -> list[bytes]:
    """StreamRequests of BATCH_SIZE events, sequences 1, 2, ...; timestamps increase with the
    stream, so no event is late and resolution is in stream order."""
    rng = random.Random(seed ^ 0x5EED)
    batches: list[bytes] = []
    for start in range(0, len(events), BATCH_SIZE):
        chunk = events[start : start + BATCH_SIZE]
        protos = [
            encode_event(rng, ids, _BASE_TIME_MS + (start + i) * _EVENT_SPACING_MS) for i, ids in enumerate(chunk)
        ]
        sent_ms = _BASE_TIME_MS + (start + len(chunk)) * _EVENT_SPACING_MS + 40
        request = ingest_pb2.StreamRequest(
            sequence=len(batches) + 1, batch=event_pb2.Batch(events=protos, sent_at=_timestamp(sent_ms))
        )
        batches.append(request.SerializeToString())
    return batches


def edge_list(events: Sequence[Sequence[str]]) -> EdgeList:
    """Nodes in order of first appearance; edges anchor → each other identifier of an event."""
    index: dict[str, int] = {}
    edges: list[tuple[int, int]] = []
    for ids in events:
        numbers = [index.setdefault(identifier, len(index)) for identifier in ids]
        edges += [(numbers[0], other) for other in numbers[1:]]
    return EdgeList(nodes=list(index), edges=edges)


def cache_path(n_profiles: int, seed: int) -> Path:
    return CACHE_DIR / f"unify-v{FORMAT_VERSION}-n{n_profiles}-s{seed}.bin"


def save(work: UnifyWorkload, path: Path) -> None:
    """Sections: batches, nodes, then one record of the edges as uint32 pairs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = array.array("I", [n for edge in work.graph.edges for n in edge])
    partial = path.with_suffix(".partial")
    with partial.open("wb") as out:
        _write_section(out, work.batches)
        _write_section(out, [node.encode() for node in work.graph.nodes])
        _write_section(out, [flat.tobytes()])
    partial.replace(path)  # atomic: an interrupted run never leaves a truncated cache


def load(path: Path, n_profiles: int, seed: int) -> UnifyWorkload:
    batches, raw_nodes, (raw_edges,) = _read_sections(path, 3)
    flat = array.array("I")
    flat.frombytes(raw_edges)
    edges = list(zip(flat[0::2], flat[1::2], strict=True))
    graph = EdgeList(nodes=[node.decode() for node in raw_nodes], edges=edges)
    n_events = sum(len(ingest_pb2.StreamRequest.FromString(batch).batch.events) for batch in batches[-1:])
    n_events += BATCH_SIZE * (len(batches) - 1)
    return UnifyWorkload(n_profiles, seed, n_events, batches, graph)


def load_or_generate(n_profiles: int, seed: int = DEFAULT_SEED) -> tuple[UnifyWorkload, Path]:
    """The cached workload, generating and caching it first if needed."""
    path = cache_path(n_profiles, seed)
    if path.exists():
        return load(path, n_profiles, seed), path
    graph = generate(n_profiles, seed)
    work = UnifyWorkload(
        n_profiles, seed, len(graph.events), encode_batches(graph.events, seed), edge_list(graph.events)
    )
    save(work, path)
    return work, path
