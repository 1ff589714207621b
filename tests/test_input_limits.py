"""RELIABILITY.md's input limits, each at its boundary: exactly at the limit accepted, one past it
refused with the limit named, on every surface it applies to.

The engine's limits (32 KiB per event, JSON nesting 32, 6,000 traits per profile) are held
through the bindings (`Engine.send` is the gRPC IngestService's call, `Engine.send_json` the HTTP
Tracking API's); the transport's (32 KiB a message route, 500 KiB a batch, 4 MiB a gRPC message)
through a real server. The 1,000 identifiers per profile are held at the boundary in the identity
graph's own test (rust_core/engine/src/identity/graph/tests.rs,
`at_the_identifier_cap_nothing_new_links_and_the_newcomer_gets_a_profile_of_its_own`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from http_client import post
from tributary._proto.cdp.v1 import event_pb2, ingest_pb2, profile_pb2

from cdp_server import _core

EVENT_LIMIT = 32 * 1024
MESSAGE_ROUTE_LIMIT = 32 * 1024
BATCH_ROUTE_LIMIT = 500 * 1024
GRPC_MESSAGE_LIMIT = 4 * 1024 * 1024
MAX_DEPTH = 32
MAX_PROFILE_TRAITS = 6_000
TRACK = event_pb2.EVENT_TYPE_TRACK


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[_core.Engine]:
    opened = _core.Engine(tmp_path / "data", unsafe_no_sync=True, snapshots=False)
    yield opened
    opened.close()


def padded_event(message_id: str, size: int) -> event_pb2.Event:
    """A track whose encoded size is exactly `size` bytes (its properties padded)."""
    event = event_pb2.Event(type=TRACK, message_id=message_id, user_id="u", event="E")
    for pad in range(size, 0, -1):
        event.properties = json.dumps({"p": "x" * pad}).encode()
        if event.ByteSize() <= size:
            break
    while event.ByteSize() < size:
        event.properties = event.properties[:-2] + b'x"}'
    assert event.ByteSize() == size
    return event


def send(engine: _core.Engine, *events: event_pb2.Event) -> _core.SendOutcome:
    return engine.send(1, ingest_pb2.SendRequest(batch=event_pb2.Batch(events=events)).SerializeToString())


def padded_json(size: int, **fields: Any) -> bytes:
    """A track message of exactly `size` bytes of JSON text."""
    message = {"type": "track", "userId": "u", "event": "E", **fields, "properties": {"p": ""}}
    text = json.dumps(message, separators=(",", ":"))
    message["properties"] = {"p": "x" * (size - len(text))}
    data = json.dumps(message, separators=(",", ":")).encode()
    assert len(data) == size
    return data


def test_an_event_of_32_kib_is_stored_and_one_byte_more_refused_naming_the_limit(engine: _core.Engine) -> None:
    outcome = send(engine, padded_event("at", EVENT_LIMIT), padded_event("over", EVENT_LIMIT + 1))
    assert outcome.rejections == [
        (1, "over", "event", f"event is {EVENT_LIMIT + 1} bytes; the limit is {EVENT_LIMIT} bytes")
    ]
    results = ingest_pb2.SendResponse.FromString(outcome.response).results
    assert [(r.index, r.status) for r in results] == [
        (0, ingest_pb2.EVENT_STATUS_ACCEPTED),
        (1, ingest_pb2.EVENT_STATUS_REJECTED),
    ]


@pytest.mark.parametrize("route_type", [0, TRACK], ids=["batch-route", "track-route"])
def test_a_json_message_of_32_kib_is_stored_and_one_byte_more_refused(engine: _core.Engine, route_type: int) -> None:
    at, over = padded_json(EVENT_LIMIT, messageId="at"), padded_json(EVENT_LIMIT + 1, messageId="over")
    outcome = engine.send_json(1, at + b"\n" + over, route_type=route_type)
    assert outcome.rejections == [
        (1, "over", "event", f"event is {EVENT_LIMIT + 1} bytes; the limit is {EVENT_LIMIT} bytes")
    ]


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def test_json_nested_32_deep_is_stored_and_33_refused_on_both_paths(engine: _core.Engine) -> None:
    # The properties object itself is the first level.
    at, over = nested(MAX_DEPTH), nested(MAX_DEPTH + 1)
    outcome = send(
        engine,
        event_pb2.Event(type=TRACK, message_id="p-at", user_id="u", event="E", properties=json.dumps(at).encode()),
        event_pb2.Event(type=TRACK, message_id="p-over", user_id="u", event="E", properties=json.dumps(over).encode()),
    )
    assert [(i, field) for i, _, field, _ in outcome.rejections] == [(1, "properties")]
    assert "33 levels deep; the limit is 32" in outcome.rejections[0][3]
    lines = [
        json.dumps({"type": "track", "userId": "u", "event": "E", "messageId": f"j-{n}", "properties": value})
        for n, value in (("at", at), ("over", over))
    ]
    outcome = engine.send_json(1, "\n".join(lines).encode())
    assert [(i, field) for i, _, field, _ in outcome.rejections] == [(1, "properties")]
    assert "33 levels deep; the limit is 32" in outcome.rejections[0][3]


def profile_traits(engine: _core.Engine, identifier: str) -> dict[str, Any]:
    request = profile_pb2.GetProfileRequest(identifier=identifier).SerializeToString()
    traits: dict[str, Any] = json.loads(
        profile_pb2.GetProfileResponse.FromString(engine.get_profile(request)).profile.traits
    )
    return traits


@pytest.mark.parametrize("traits", [MAX_PROFILE_TRAITS, MAX_PROFILE_TRAITS + 1])
def test_a_profile_keeps_6000_traits_the_earliest_set(engine: _core.Engine, traits: int) -> None:
    # An identify may carry at most 299 traits (Segment's per-call limit): 299 per call.
    names = [f"t{i:05}" for i in range(traits)]
    calls = [names[start : start + 299] for start in range(0, traits, 299)]
    events = [
        event_pb2.Event(
            type=event_pb2.EVENT_TYPE_IDENTIFY,
            message_id=f"i{n}",
            user_id="many",
            traits=json.dumps(dict.fromkeys(chunk, 1)).encode(),
            timestamp={"seconds": 1_700_000_000 + n},
        )
        for n, chunk in enumerate(calls)
    ]
    assert not send(engine, *events).rejections
    kept = profile_traits(engine, "user_id:many")
    assert sorted(kept) == names[:MAX_PROFILE_TRAITS]


def test_http_bodies_at_the_route_limits_are_taken_and_one_byte_more_is_400(server: Any) -> None:
    key = server.write_key
    # JSON allows trailing whitespace: a body of exactly the limit, whatever the message.
    message = json.dumps({"userId": "u", "event": "E", "messageId": "at-32k"}).encode()
    assert post(server, "/v1/track", message.ljust(MESSAGE_ROUTE_LIMIT), key=key)[:2] == (200, {"success": True})
    status, body, _ = post(server, "/v1/track", message.ljust(MESSAGE_ROUTE_LIMIT + 1), key=key)
    assert status == 400 and body is not None and body["code"] == "request_too_large", body
    assert str(MESSAGE_ROUTE_LIMIT) in body["message"]
    batch = json.dumps({"batch": [{"type": "track", "userId": "u", "event": "E", "messageId": "at-500k"}]}).encode()
    assert post(server, "/v1/batch", batch.ljust(BATCH_ROUTE_LIMIT), key=key)[:2] == (200, {"success": True})
    status, body, _ = post(server, "/v1/batch", batch.ljust(BATCH_ROUTE_LIMIT + 1), key=key)
    assert status == 400 and body is not None and body["code"] == "request_too_large", body
    assert str(BATCH_ROUTE_LIMIT) in body["message"]


def request_of_size(size: int) -> bytes:
    """A SendRequest of exactly `size` bytes: 132 events, each under the 32 KiB event limit."""
    count = 132
    events = [padded_event(f"g{i}", size // count - 10) for i in range(count)]
    request = ingest_pb2.SendRequest(batch=event_pb2.Batch(events=events))
    last = events[-1].ByteSize() + size - request.ByteSize()
    request.batch.events[-1].CopyFrom(padded_event("last", last))
    data = request.SerializeToString()
    assert len(data) == size and last <= EVENT_LIMIT, (len(data), last)
    return data


def test_a_grpc_message_of_4_mib_is_stored_and_one_byte_more_is_refused(server: Any) -> None:
    with server.channel() as channel:
        raw_send = channel.unary_unary("/cdp.v1.IngestService/Send")
        reply = ingest_pb2.SendResponse.FromString(
            raw_send(request_of_size(GRPC_MESSAGE_LIMIT), metadata=server.ingest_metadata)
        )
        assert [r.status for r in reply.results] == [ingest_pb2.EVENT_STATUS_ACCEPTED] * 132
        with pytest.raises(grpc.RpcError) as too_large:
            raw_send(request_of_size(GRPC_MESSAGE_LIMIT + 1), metadata=server.ingest_metadata)
        # gRPC's own answer to a message past grpc.max_receive_message_length, naming the sizes.
        assert too_large.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        assert str(GRPC_MESSAGE_LIMIT) in too_large.value.details()  # type: ignore[attr-defined]
