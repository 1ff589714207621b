"""Fuzz target: the bytes of the gRPC ingest requests, as the IngestService hands them over.

``cdp_server/services/ingest.py`` registers ``Send`` and ``Stream`` without a request
deserializer and passes each message's bytes to ``Engine.send`` (a ``SendRequest``) or
``Engine.submit_stream`` then ``StreamAck.wait`` (a ``StreamRequest``). Every input is given to
both, to an engine opened in the work directory with ``unsafe_no_sync``. The seeds carry both
payloads (``Batch`` of protobuf events and ``JsonBatch``); half of the mutations re-encode a
decoded request with one event field or the JSON data changed (see ``mutate``), the rest are
libFuzzer's byte mutations.

Documented outcomes: an answer, or ``InvalidRequest`` (bytes that do not decode, a body that
cannot be read). The answers must decode as ``SendResponse`` / ``StreamResponse``, and the stream
ack must echo the request's sequence number.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import cast

import atheris
from google.protobuf.message import DecodeError
from tributary._proto.cdp.v1 import event_pb2, ingest_pb2

from fuzz import json_mutator
from fuzz.runner import OneInput, Target, main

SOURCE_ID = 1
# Past the 32 KiB event limit, so that inputs on both sides of it are made.
MAX_LEN = 40_000
STRING_FIELDS = ["message_id", "user_id", "anonymous_id", "group_id", "previous_id", "event", "name"]
BYTES_FIELDS = ["properties", "traits", "context", "integrations"]


def prepare(work_dir: Path) -> OneInput:
    from cdp_server import _core

    engine = _core.Engine(work_dir / "data", unsafe_no_sync=True, snapshots=False)

    def one_input(data: bytes) -> None:
        try:
            outcome = engine.send(SOURCE_ID, data)
        except _core.InvalidRequest:
            pass
        else:
            ingest_pb2.SendResponse.FromString(outcome.response)
        try:
            ack = engine.submit_stream(SOURCE_ID, data)
            answer = ingest_pb2.StreamResponse.FromString(ack.wait())
        except _core.InvalidRequest:
            return
        assert answer.sequence == ack.sequence, (answer.sequence, ack.sequence)

    return one_input


def _mutate_event(event: event_pb2.Event, rng: random.Random, max_size: int) -> None:
    if rng.random() < 0.5:
        field = rng.choice(BYTES_FIELDS)
        setattr(event, field, json_mutator.mutate(getattr(event, field) or b"{}", max_size, rng.getrandbits(32)))
    elif rng.random() < 0.5:
        field = rng.choice(STRING_FIELDS)
        changed = atheris.Mutate(getattr(event, field).encode(), 256)
        setattr(event, field, changed.decode("utf-8", "replace"))
    else:
        # Values past the enum's too: proto3 keeps an unknown enum value as it came.
        call = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, -1, 2**31 - 1])
        event.type = cast("event_pb2.EventType.ValueType", call)
        if rng.random() < 0.5:
            event.timestamp.seconds = rng.choice([0, -62_135_596_801, 253_402_300_800, 2**63 - 1, -(2**63)])
            event.timestamp.nanos = rng.choice([0, 999_999_999, 1_000_000_000, -1])


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """Structure-aware half: decode as either request, change one thing, encode again."""
    rng = random.Random(seed)
    if rng.random() < 0.5:
        return atheris.Mutate(data, max_size)
    request: ingest_pb2.SendRequest | ingest_pb2.StreamRequest
    request = ingest_pb2.SendRequest() if rng.random() < 0.5 else ingest_pb2.StreamRequest()
    try:
        request.ParseFromString(data)
    except DecodeError:
        return atheris.Mutate(data, max_size)
    payload = request.WhichOneof("payload")
    if payload == "json":
        request.json.data = json_mutator.mutate(request.json.data, max_size, seed)
    elif payload == "batch" and request.batch.events and rng.random() < 0.8:
        _mutate_event(rng.choice(request.batch.events), rng, max_size)
    elif payload == "batch":
        request.batch.events.append(rng.choice(request.batch.events) if request.batch.events else event_pb2.Event())
    else:
        return atheris.Mutate(data, max_size)
    out = request.SerializeToString()
    return out if len(out) <= max_size else atheris.Mutate(data, max_size)


TARGET = Target("ingest_proto", prepare, mutator=mutate, max_len=MAX_LEN)

if __name__ == "__main__":
    main(TARGET)
