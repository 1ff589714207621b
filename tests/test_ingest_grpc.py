"""Ingest over gRPC against a real server: validation, dedupe, clock skew, acks, errors."""

from __future__ import annotations

import json
import time
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from rpc import IDENTIFY, TRACK, Rpc, track, ts
from tributary._proto.cdp.v1 import event_pb2, ingest_pb2


@pytest.fixture
def rpc(server: object) -> Rpc:
    return Rpc(server)


def test_send_stores_every_event_and_lists_them_newest_first(rpc: Rpc) -> None:
    reply = rpc.send([track("m1"), track("m2"), track("m3", user_id="u2")])
    assert [r.status for r in reply.results] == [ingest_pb2.EVENT_STATUS_ACCEPTED] * 3
    assert [e.message_id for e in rpc.events("user_id:u1")] == ["m2", "m1"]
    assert [e.message_id for e in rpc.events("user_id:u1", oldest_first=True)] == ["m1", "m2"]


MANY_TRAITS = json.dumps({f"t{i}": i for i in range(300)}).encode()

VALIDATION_MATRIX = [
    (event_pb2.Event(type=TRACK, message_id="x", event="E"), "userId"),
    (event_pb2.Event(type=TRACK, message_id="x", user_id="u"), "event"),
    (event_pb2.Event(message_id="x", user_id="u"), "type"),
    (event_pb2.Event(type=event_pb2.EVENT_TYPE_GROUP, message_id="x", user_id="u"), "groupId"),
    (event_pb2.Event(type=event_pb2.EVENT_TYPE_ALIAS, message_id="x", user_id="u"), "previousId"),
    (event_pb2.Event(type=IDENTIFY, message_id="m" * 101, user_id="u"), "messageId"),
    (event_pb2.Event(type=IDENTIFY, message_id="x", user_id="u", traits=b"[1,2]"), "traits"),
    (event_pb2.Event(type=IDENTIFY, message_id="x", user_id="u", context=b"{not json"), "context"),
    (event_pb2.Event(type=IDENTIFY, message_id="x", user_id="u", traits=MANY_TRAITS), "traits"),
    (event_pb2.Event(type=TRACK, message_id="x", user_id="u", event="E", integrations=b'"all"'), "integrations"),
    (
        event_pb2.Event(
            type=TRACK, message_id="x", user_id="u", event="E", properties=b'{"a":' * 40 + b"1" + b"}" * 40
        ),
        "properties",
    ),
    (
        event_pb2.Event(
            type=TRACK, message_id="x", user_id="u", event="E", properties=b'{"a":"' + b"x" * 33_000 + b'"}'
        ),
        "event",
    ),
]


@pytest.mark.parametrize(("bad", "field"), VALIDATION_MATRIX, ids=[f for _, f in VALIDATION_MATRIX])
def test_invalid_event_is_refused_naming_index_and_field_and_the_valid_ones_are_stored(
    rpc: Rpc, bad: event_pb2.Event, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        rpc.send([track("ok-1"), bad, track("ok-2")])
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert f"events[1].{field}" in error.details()  # type: ignore[attr-defined]
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    results = ingest_pb2.SendResponse()
    assert status.details[0].Unpack(bad_request) and status.details[1].Unpack(results)
    assert [v.field for v in bad_request.field_violations] == [f"events[1].{field}"]
    assert [r.status for r in results.results] == [
        ingest_pb2.EVENT_STATUS_ACCEPTED,
        ingest_pb2.EVENT_STATUS_REJECTED,
        ingest_pb2.EVENT_STATUS_ACCEPTED,
    ]
    assert sorted(e.message_id for e in rpc.events("user_id:u1")) == ["ok-1", "ok-2"]


def test_stream_rejections_name_the_event_and_keep_the_rest(rpc: Rpc) -> None:
    bad = event_pb2.Event(type=TRACK, message_id="bad", user_id="u1")
    acks = rpc.stream([[track("a"), bad, track("b")], [track("c")]])
    assert [(a.sequence, a.accepted) for a in acks] == [(1, 2), (2, 1)]
    assert [(r.index, r.message_id, r.field) for r in acks[0].rejections] == [(1, "bad", "event")]
    assert len(rpc.events("user_id:u1")) == 3


def test_duplicates_are_acknowledged_once_stored_and_conflicts_flagged(rpc: Rpc) -> None:
    first = rpc.stream([[track(f"m{i}") for i in range(50)]])
    again = rpc.stream([[track(f"m{i}") for i in range(50)]])
    assert (first[0].accepted, again[0].accepted, again[0].duplicates) == (50, 0, 50)
    changed = rpc.send([track("m0", properties={"revenue": 99})])
    assert changed.results[0].status == ingest_pb2.EVENT_STATUS_CONFLICT
    stored = rpc.events("user_id:u1")
    assert len(stored) == 50
    assert json.loads(next(e for e in stored if e.message_id == "m0").properties) == {"revenue": 10}


def test_clock_skew_is_corrected_from_sent_at(rpc: Rpc) -> None:
    now = int(time.time() * 1000)
    device_ahead = 3_600_000  # the device clock is an hour fast
    event = track("skewed", original_timestamp=ts(now + device_ahead - 10_000))
    rpc.send([event], sent_at=ts(now + device_ahead))
    (stored,) = rpc.events("user_id:u1")
    received = stored.received_at.ToMilliseconds()
    assert stored.timestamp.ToMilliseconds() == received - 10_000
    assert stored.original_timestamp.ToMilliseconds() == now + device_ahead - 10_000
    assert abs(received - now) < 60_000


def test_batch_context_and_integrations_merge_into_each_event(rpc: Rpc) -> None:
    own = track("a", context=b'{"ip":"1.1.1.1"}')
    rpc.send([own, track("b")], context=b'{"ip":"9.9.9.9","locale":"nl-NL"}', integrations=b'{"All":false}')
    stored = {e.message_id: e for e in rpc.events("user_id:u1")}
    assert json.loads(stored["a"].context) == {"ip": "1.1.1.1", "locale": "nl-NL"}
    assert json.loads(stored["b"].context) == {"ip": "9.9.9.9", "locale": "nl-NL"}
    assert json.loads(stored["b"].integrations) == {"All": False}


def test_missing_message_id_is_generated(rpc: Rpc) -> None:
    reply = rpc.send([track("")])
    assert reply.results[0].message_id.startswith("tributary-")
    assert rpc.events("user_id:u1")[0].message_id == reply.results[0].message_id


def test_events_are_indexed_by_every_identifier(rpc: Rpc) -> None:
    context = {
        "traits": {"email": " Ann@Example.com"},
        "externalIds": [{"id": "cus_1", "type": "stripe_id", "collection": "users", "encoding": "none"}],
        "device": {"type": "ios", "id": "dev-1", "advertisingId": "ad-1", "adTrackingEnabled": True, "token": "t-1"},
    }
    integrations = {"Google Analytics": {"clientId": "ga.1"}}
    rpc.send(
        [
            track(
                "a",
                anonymous_id="anon-1",
                context=json.dumps(context).encode(),
                integrations=json.dumps(integrations).encode(),
            )
        ]
    )
    for identifier in [
        "user_id:u1",
        "anonymous_id:anon-1",
        "email:ann@example.com",
        "stripe_id:cus_1",
        "ios.id:dev-1",
        "ios.idfa:ad-1",
        "ios.push_token:t-1",
        "ga_client_id:ga.1",
    ]:
        assert [e.message_id for e in rpc.events(identifier)] == ["a"], identifier


def test_list_events_pages_with_a_cursor(rpc: Rpc) -> None:
    rpc.send([track(f"m{i:02}") for i in range(25)])
    pages = rpc.events("user_id:u1", limit=10)
    assert [e.message_id for e in pages] == [f"m{i:02}" for i in reversed(range(25))]


def test_malformed_protobuf_bytes_are_invalid_argument(rpc: Rpc, server: object) -> None:
    raw = rpc.channel.unary_unary("/cdp.v1.IngestService/Send")
    with pytest.raises(grpc.RpcError) as caught:
        raw(b"\xff\xff\xff\x0f", metadata=server.ingest_metadata)  # type: ignore[attr-defined]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "malformed SendRequest" in caught.value.details()  # type: ignore[attr-defined]
    stream = rpc.channel.stream_stream("/cdp.v1.IngestService/Stream")
    with pytest.raises(grpc.RpcError) as caught:
        list(stream(iter([b"\x0a\xff"]), metadata=server.ingest_metadata))  # type: ignore[attr-defined]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("metadata", "needle"),
    [
        ((), "missing write key"),
        # Bearer is read on every RPC (so that an access token on ingest is told apart:
        # PERMISSION_DENIED); an unknown secret is an invalid write key here.
        ((("authorization", "Bearer abc"),), "invalid write key"),
        ((("authorization", "Basic !!!"),), "malformed authorization"),
        ((("authorization", "Basic d3Jvbmcta2V5Og=="),), "invalid write key"),  # "wrong-key:"
    ],
    ids=["missing", "not-basic", "not-base64", "unknown-source"],
)
def test_ingest_without_a_valid_write_key_is_unauthenticated(
    rpc: Rpc, metadata: tuple[tuple[str, str], ...], needle: str
) -> None:
    request = ingest_pb2.SendRequest(batch=event_pb2.Batch(events=[track("a")]))
    with pytest.raises(grpc.RpcError) as caught:
        rpc.ingest.Send(request, metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert needle in caught.value.details()  # type: ignore[attr-defined]
    assert rpc.events("user_id:u1") == []


def test_write_key_without_colon_is_accepted_as_segment_allows(rpc: Rpc) -> None:
    import base64

    key = base64.b64encode(rpc.server.write_key.encode()).decode()  # type: ignore[attr-defined]
    request = ingest_pb2.SendRequest(batch=event_pb2.Batch(events=[track("a")]))
    rpc.ingest.Send(request, metadata=(("authorization", f"Basic {key}"),))
    assert len(rpc.events("user_id:u1")) == 1


def test_oversized_message_is_refused(rpc: Rpc) -> None:
    events = [track(f"m{i}", properties={"blob": "x" * 30_000}) for i in range(150)]  # ~4.5 MB
    with pytest.raises(grpc.RpcError) as caught:
        rpc.send(events)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert rpc.events("user_id:u1") == []


def test_more_than_2500_events_in_a_batch_are_refused(rpc: Rpc) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        rpc.send([track(f"m{i}", properties={}) for i in range(2501)])
    assert "batch" in caught.value.details() and "2500" in caught.value.details()  # type: ignore[attr-defined]


def test_admin_calls_need_the_admin_token(rpc: Rpc, server: object) -> None:
    from tributary._proto.cdp.v1 import admin_pb2, profile_pb2

    # No credential or an unknown one: UNAUTHENTICATED; a write key (valid, but it only sends
    # events): PERMISSION_DENIED.
    for metadata, code in [
        ((), grpc.StatusCode.UNAUTHENTICATED),
        (server.ingest_metadata, grpc.StatusCode.PERMISSION_DENIED),  # type: ignore[attr-defined]
        ((("authorization", "Bearer nope"),), grpc.StatusCode.UNAUTHENTICATED),
    ]:
        with pytest.raises(grpc.RpcError) as caught:
            rpc.admin.ListSources(admin_pb2.ListSourcesRequest(), metadata=metadata)
        assert caught.value.code() == code  # type: ignore[attr-defined]
        with pytest.raises(grpc.RpcError) as caught:
            rpc.profile.ListEvents(profile_pb2.ListEventsRequest(identifier="user_id:u1"), metadata=metadata)
        assert caught.value.code() == code  # type: ignore[attr-defined]


def test_created_source_key_works_and_is_not_stored_in_clear(rpc: Rpc, server: object) -> None:
    from tributary._proto.cdp.v1 import admin_pb2

    created = rpc.admin.CreateSource(admin_pb2.CreateSourceRequest(name="web"), metadata=server.admin_metadata)  # type: ignore[attr-defined]
    assert created.write_key and created.source.name == "web"
    listed = rpc.admin.ListSources(admin_pb2.ListSourcesRequest(), metadata=server.admin_metadata)  # type: ignore[attr-defined]
    assert sorted(s.name for s in listed.sources) == ["development", "web"]
    import base64

    metadata = (("authorization", "Basic " + base64.b64encode(f"{created.write_key}:".encode()).decode()),)
    rpc.ingest.Send(ingest_pb2.SendRequest(batch=event_pb2.Batch(events=[track("a")])), metadata=metadata)
    # The same messageId from another source is another event.
    rpc.send([track("a")])
    assert len(rpc.events("user_id:u1")) == 2
    stored = b"".join(p.read_bytes() for p in server.data_dir.rglob("*.mdb"))  # type: ignore[attr-defined]
    assert created.write_key.encode() not in stored
    with pytest.raises(grpc.RpcError) as caught:
        rpc.admin.CreateSource(admin_pb2.CreateSourceRequest(name="web"), metadata=server.admin_metadata)  # type: ignore[attr-defined]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


def send_json(rpc: Rpc, data: bytes, **options: Any) -> ingest_pb2.SendResponse:
    request = ingest_pb2.SendRequest(json=ingest_pb2.JsonBatch(data=data, **options))
    return rpc.ingest.Send(request, metadata=rpc.server.ingest_metadata, timeout=30)  # type: ignore[no-any-return]


def test_segment_json_batches_are_stored_like_protobuf_ones(rpc: Rpc) -> None:
    now = int(time.time() * 1000)
    body = {
        "batch": [
            {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "j1"},
            {"type": "track", "userId": "u1", "event": "Clicked", "messageId": "j2", "context": {"ip": "1.1.1.1"}},
        ],
        "context": {"ip": "9.9.9.9", "locale": "nl"},
        "sentAt": "2020-01-01T00:00:10Z",
        "writeKey": "ignored",
    }
    body["batch"][1]["originalTimestamp"] = "2020-01-01T00:00:00Z"  # type: ignore[index]
    response = send_json(rpc, json.dumps(body).encode())
    assert [r.status for r in response.results] == [ingest_pb2.EVENT_STATUS_ACCEPTED] * 2
    stored = {e.message_id: e for e in rpc.events("user_id:u1")}
    assert json.loads(stored["j2"].context) == {"ip": "1.1.1.1", "locale": "nl"}
    # Skew corrected as for protobuf: arrival - (sentAt - originalTimestamp) = arrival - 10 s.
    assert abs(stored["j2"].timestamp.ToMilliseconds() - (now - 10_000)) < 5_000
    # Sent again later (a retry: another sentAt): duplicates, not conflicts.
    body["sentAt"] = "2020-01-01T00:01:00Z"
    again = send_json(rpc, json.dumps(body).encode())
    assert [r.status for r in again.results] == [ingest_pb2.EVENT_STATUS_DUPLICATE] * 2
    # A message differing only by what the batch added is another payload: a conflict.
    alone = send_json(rpc, json.dumps(body["batch"][0]).encode())  # type: ignore[index]
    assert alone.results[0].status == ingest_pb2.EVENT_STATUS_CONFLICT


def test_segment_json_rejections_name_index_field_and_line(rpc: Rpc) -> None:
    lines = [
        json.dumps({"type": "track", "userId": "u1", "event": "A", "messageId": "ok-1"}),
        "{broken",
        json.dumps({"type": "track", "userId": "u1", "messageId": "no-event"}),
    ]
    with pytest.raises(grpc.RpcError) as caught:
        send_json(rpc, "\n".join(lines).encode(), first_line=41)
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "events[1].message" in error.details()  # type: ignore[attr-defined]
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    results = ingest_pb2.SendResponse()
    assert status.details[1].Unpack(results)
    refused = [(r.index, r.rejection.field, r.rejection.line) for r in results.results if r.rejection.field]
    assert refused == [(1, "message", 42), (2, "event", 43)]
    assert [e.message_id for e in rpc.events("user_id:u1")] == ["ok-1"]


@pytest.mark.parametrize("body", [b"", b"[{", b'{"batch": 3}'], ids=["empty", "broken-array", "batch-not-array"])
def test_a_json_body_that_is_not_messages_is_invalid_argument(rpc: Rpc, body: bytes) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        send_json(rpc, body)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "JSON body" in caught.value.details()  # type: ignore[attr-defined]
