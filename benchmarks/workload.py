"""Deterministic Segment-like ingest workload, pre-encoded and cached on disk.

Generating a million protobuf events in Python takes tens of seconds, far longer than
ingesting them, so the encoded bytes are cached under ``benchmarks/.cache/`` keyed by the
event count, the seed and ``FORMAT_VERSION`` (bump it whenever the generator changes, so a
stale cache is never measured). Every run then feeds byte-identical input to every system.

The users' paths (``Client.stream(dicts)``, ``cdp import FILE.jsonl``) get the same events as
Segment-Spec messages: ``segment_messages`` turns the encoded batches into dicts (each message
carrying its batch's ``sentAt``, as Segment's exports do, so that the server corrects the clock
skew exactly as for the protobuf batch), and ``json_lines`` caches them as a JSON-lines file
beside the encoded workload.
"""

from __future__ import annotations

import array
import json
import os
import random
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from google.protobuf.timestamp_pb2 import Timestamp
from tributary._proto.cdp.v1 import event_pb2, ingest_pb2
from tributary.segment import event_to_json
from tributary.timestamps import format_iso8601

FORMAT_VERSION = 1
DEFAULT_EVENTS = 1_000_000
DEFAULT_SEED = 20_240_601
BATCH_SIZE = 500
DISTINCT_USERS = 100_000
CACHE_DIR = Path(__file__).resolve().parent / ".cache"

# A fixed clock keeps the bytes deterministic; each batch carries a sent_at just after its
# last event, so the server's clock-skew correction maps the events onto "now".
_BASE_TIME_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
_EVENT_SPACING_MS = 3
_LIBRARY = {"name": "analytics-python", "version": "2.3.2"}

_FIRST_NAMES = ("ada", "grace", "alan", "edsger", "barbara", "donald", "frances", "ken", "radia", "linus")
_LAST_NAMES = ("lovelace", "hopper", "turing", "dijkstra", "liskov", "knuth", "allen", "thompson", "perlman")
_TIMEZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "America/Sao_Paulo", "Africa/Lagos")
_PLANS = ("free", "starter", "team", "enterprise")
_PRODUCTS = tuple(f"sku-{i:05d}" for i in range(2_000))
_CATEGORIES = ("books", "games", "garden", "kitchen", "music", "outdoor", "toys")
_PAGES = (("Home", "/"), ("Pricing", "/pricing"), ("Docs", "/docs"), ("Blog", "/blog"), ("Cart", "/cart"))


@dataclass(frozen=True)
class Workload:
    """The encoded input of one benchmark run.

    Attributes:
        n_events: Number of events.
        seed: Seed the events were generated from.
        batches: Encoded ``cdp.v1.StreamRequest`` messages, sequences 1, 2, ...,
            ``BATCH_SIZE`` events each (the last one may be shorter).
        events: Encoded ``cdp.v1.Event`` of every event, in stream order (for the baselines).
        message_ids: The messageId of every event, in stream order.
    """

    n_events: int
    seed: int
    batches: list[bytes]
    events: list[bytes]
    message_ids: list[bytes]

    @property
    def mean_event_bytes(self) -> float:
        return sum(map(len, self.events)) / max(1, len(self.events))


@dataclass(frozen=True)
class _User:
    user_id: str
    anonymous_id: str
    email: str
    name: str
    ip: str
    timezone: str


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _timestamp(ms: int) -> Timestamp:
    return Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def _make_users(rng: random.Random) -> list[_User]:
    users = []
    for i in range(DISTINCT_USERS):
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        users.append(
            _User(
                user_id=f"user_{i:06d}",
                anonymous_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                email=f"{first}.{last}{i}@example.com",
                name=f"{first.title()} {last.title()}",
                ip=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                timezone=rng.choice(_TIMEZONES),
            )
        )
    return users


def _track_properties(rng: random.Random, event: str) -> dict[str, Any]:
    """Three to six properties, shaped like the e-commerce spec's."""
    if event in ("Product Viewed", "Product Added"):
        props: dict[str, Any] = {
            "product_id": rng.choice(_PRODUCTS),
            "category": rng.choice(_CATEGORIES),
            "price": round(rng.uniform(2, 300), 2),
        }
        if rng.random() < 0.5:
            props["quantity"] = rng.randint(1, 4)
        if rng.random() < 0.3:
            props["currency"] = "USD"
        return props
    if event == "Order Completed":
        return {
            "order_id": f"ord-{rng.getrandbits(40):010x}",
            "total": round(rng.uniform(10, 900), 2),
            "revenue": round(rng.uniform(5, 800), 2),
            "currency": "USD",
            "products": rng.randint(1, 6),
            "coupon": rng.choice(("", "SPRING", "WELCOME10")),
        }
    if event == "Video Played":
        return {"video_id": f"v{rng.randrange(10_000)}", "position": rng.randrange(600), "quality": "hd"}
    return {"method": rng.choice(("password", "google", "sso")), "attempt": rng.randint(1, 3), "remember": True}


_TRACK_EVENTS = (
    ("Product Viewed", 0.45),
    ("Product Added", 0.20),
    ("Video Played", 0.15),
    ("Signed In", 0.12),
    ("Order Completed", 0.08),
)
_TRACK_NAMES = tuple(name for name, _ in _TRACK_EVENTS)
_TRACK_WEIGHTS = tuple(weight for _, weight in _TRACK_EVENTS)


def _make_event(rng: random.Random, users: list[_User], time_ms: int) -> event_pb2.Event:
    user = users[rng.randrange(len(users))]
    ev = event_pb2.Event(
        message_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        original_timestamp=_timestamp(time_ms),
        context=_json({"library": _LIBRARY, "ip": user.ip, "locale": "en-US", "timezone": user.timezone}),
    )
    kind = rng.random()
    if kind < 0.80:
        ev.type = event_pb2.EVENT_TYPE_TRACK
        ev.event = rng.choices(_TRACK_NAMES, _TRACK_WEIGHTS)[0]
        ev.properties = _json(_track_properties(rng, ev.event))
    elif kind < 0.90:
        ev.type = event_pb2.EVENT_TYPE_IDENTIFY
        ev.traits = _json({"email": user.email, "name": user.name, "plan": rng.choice(_PLANS)})
    else:
        ev.type = event_pb2.EVENT_TYPE_PAGE
        title, path = rng.choice(_PAGES)
        ev.name = title
        ev.properties = _json({"path": path, "url": f"https://shop.example.com{path}", "title": title})
    # Identify always links both ids; other calls come logged-in, anonymous, or server-side.
    who = rng.random()
    if ev.type == event_pb2.EVENT_TYPE_IDENTIFY or who < 0.60:
        ev.user_id, ev.anonymous_id = user.user_id, user.anonymous_id
    elif who < 0.85:
        ev.anonymous_id = user.anonymous_id
    else:
        ev.user_id = user.user_id
    return ev


def generate(n_events: int, seed: int = DEFAULT_SEED) -> Workload:
    """Generates the workload from scratch (slow: prefer ``load_or_generate``)."""
    rng = random.Random(seed)
    users = _make_users(rng)
    batches: list[bytes] = []
    events: list[bytes] = []
    message_ids: list[bytes] = []
    for start in range(0, n_events, BATCH_SIZE):
        protos = [
            _make_event(rng, users, _BASE_TIME_MS + i * _EVENT_SPACING_MS)
            for i in range(start, min(n_events, start + BATCH_SIZE))
        ]
        sent_ms = _BASE_TIME_MS + (start + len(protos)) * _EVENT_SPACING_MS + 40
        request = ingest_pb2.StreamRequest(
            sequence=len(batches) + 1,
            batch=event_pb2.Batch(events=protos, sent_at=_timestamp(sent_ms)),
        )
        batches.append(request.SerializeToString())
        events.extend(ev.SerializeToString() for ev in protos)
        message_ids.extend(ev.message_id.encode() for ev in protos)
    return Workload(n_events=n_events, seed=seed, batches=batches, events=events, message_ids=message_ids)


# Cache files: three sections (batches, events, message ids), each a count, the record
# lengths as uint32 and the concatenated records. Loading one section skips the others.
_SECTION_HEADER = struct.Struct("<QQ")


def cache_path(n_events: int, seed: int) -> Path:
    return CACHE_DIR / f"workload-v{FORMAT_VERSION}-n{n_events}-s{seed}.bin"


def _write_section(out: BinaryIO, records: list[bytes]) -> None:
    lengths = array.array("I", map(len, records))
    blob = b"".join(records)
    out.write(_SECTION_HEADER.pack(len(records), len(blob)))
    out.write(lengths.tobytes())
    out.write(blob)


def _read_sections(path: Path, wanted: int) -> Iterator[list[bytes]]:
    """Yields the first ``wanted`` sections of a cache file."""
    with path.open("rb") as f:
        for _ in range(wanted):
            count, blob_size = _SECTION_HEADER.unpack(f.read(_SECTION_HEADER.size))
            lengths = array.array("I")
            lengths.frombytes(f.read(count * lengths.itemsize))
            blob = f.read(blob_size)
            records, offset = [], 0
            for length in lengths:
                records.append(blob[offset : offset + length])
                offset += length
            yield records


def save(workload: Workload, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".partial-{os.getpid()}")
    with partial.open("wb") as out:
        for section in (workload.batches, workload.events, workload.message_ids):
            _write_section(out, section)
    partial.replace(path)  # atomic: an interrupted run never leaves a truncated cache


def load_batches(path: Path) -> list[bytes]:
    """Only the encoded StreamRequests, for the client process."""
    return next(_read_sections(path, 1))


def load_or_generate(n_events: int, seed: int = DEFAULT_SEED) -> tuple[Workload, Path]:
    """The cached workload, generating and caching it first if needed."""
    path = cache_path(n_events, seed)
    if path.exists():
        batches, events, message_ids = _read_sections(path, 3)
        return Workload(n_events, seed, batches, events, message_ids), path
    workload = generate(n_events, seed)
    save(workload, path)
    return workload, path


def segment_messages(batches: list[bytes]) -> Iterator[dict[str, Any]]:
    """The workload's events as Segment-Spec messages, in stream order.

    Each message is ``event_to_json`` of the event plus its batch's ``sentAt``: decoded by the
    server (``event_from_json`` in Python), it is the protobuf event with that ``sent_at``.
    """
    for raw in batches:
        request = ingest_pb2.StreamRequest.FromString(raw)
        sent_at = format_iso8601(request.batch.sent_at) if request.batch.HasField("sent_at") else None
        for event in request.batch.events:
            message = event_to_json(event)
            if sent_at is not None:
                message["sentAt"] = sent_at
            yield message


def json_lines_path(workload_path: Path) -> Path:
    """Where the JSON-lines form of a cached workload lives: beside it, named after it."""
    return workload_path.with_suffix(".jsonl")


def json_lines(workload_path: Path) -> Path:
    """The workload as a JSON-lines file (one compact message per line, orjson), written from
    the cached encoded workload the first time it is asked for."""
    path = json_lines_path(workload_path)
    if path.exists() and path.stat().st_mtime >= workload_path.stat().st_mtime:
        return path
    partial = path.with_suffix(f".partial-{os.getpid()}")
    with partial.open("wb") as out:
        for message in segment_messages(load_batches(workload_path)):
            out.write(orjson.dumps(message) + b"\n")
    partial.replace(path)  # atomic, as the encoded cache
    return path


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """The messages of a JSON-lines file as dicts (what a user holds before ``Client.stream``)."""
    with path.open("rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]
