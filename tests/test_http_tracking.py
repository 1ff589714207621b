"""Segment's Tracking API on the HTTP port of a real `cdp serve`: the routes, both ways of giving
the write key, gzip bodies, Segment's limits and answers, CORS, the rate limit, the events landing
in profiles (read back over gRPC), and no acknowledged event lost to a kill -9."""

from __future__ import annotations

import gzip
import itertools
import json
import threading
import time
from collections import Counter
from typing import Any

from http_client import post
from rpc import Rpc
from tributary._proto.cdp.v1 import event_pb2, ingest_pb2, profile_pb2


def profile(server: Any, identifier: str) -> profile_pb2.Profile:
    reply = Rpc(server).profile.GetProfile(
        profile_pb2.GetProfileRequest(identifier=identifier), metadata=server.admin_metadata
    )
    return reply.profile


def test_each_call_route_stores_its_event_and_profiles_merge(server: Any) -> None:
    key = server.write_key
    assert post(server, "/v1/page", {"anonymousId": "a-1", "name": "Home", "messageId": "h1"}, key=key)[:2] == (
        200,
        {"success": True},
    )
    # The route decides the call: this body's own "type" is ignored, as Segment does.
    identify = {"type": "track", "anonymousId": "a-1", "userId": "u-1", "traits": {"email": "U1@Shop.test"}}
    assert post(server, "/v1/identify", identify, key=key)[0] == 200
    assert post(server, "/v1/track", {"userId": "u-1", "event": "Order Completed"}, key=key)[0] == 200
    for route, body in [
        ("/v1/screen", {"userId": "u-1", "name": "Cart"}),
        ("/v1/group", {"userId": "u-1", "groupId": "acme"}),
        ("/v1/alias", {"userId": "u-1", "previousId": "a-1"}),
    ]:
        assert post(server, route, body, key=key)[:2] == (200, {"success": True}), route
    found = profile(server, "anonymous_id:a-1")
    assert {f"{i.type}:{i.value}" for i in found.identifiers} >= {
        "anonymous_id:a-1",
        "user_id:u-1",
        "email:u1@shop.test",
    }
    assert json.loads(found.traits)["email"] == "U1@Shop.test"


def test_a_batch_gzipped_with_the_write_key_in_the_body(server: Any) -> None:
    batch = {
        "writeKey": server.write_key,
        "context": {"library": {"name": "analytics-python"}},
        "batch": [
            {"type": "identify", "userId": "u-2", "traits": {"plan": "pro"}, "messageId": "b1"},
            {"type": "track", "userId": "u-2", "event": "Signed In", "messageId": "b2"},
        ],
    }
    status, body, _ = post(
        server, "/v1/batch", gzip.compress(json.dumps(batch).encode()), headers={"Content-Encoding": "gzip"}
    )
    assert (status, body) == (200, {"success": True})
    assert json.loads(profile(server, "user_id:u-2").traits) == {"plan": "pro"}
    # /v1/import is the same route under its legacy name; resending deduplicates.
    assert post(server, "/v1/import", batch)[:2] == (200, {"success": True})


def test_refused_messages_are_listed_in_the_200(server: Any) -> None:
    batch = {"batch": [{"type": "track", "userId": "u-3"}, {"type": "track", "event": "No one"}]}
    status, body, _ = post(server, "/v1/batch", batch, key=server.write_key)
    assert status == 200 and body is not None and body["success"] is True
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(0, "event"), (1, "userId")]


def test_a_batch_over_2500_messages_is_refused_whole_with_the_reason(server: Any) -> None:
    batch = {"batch": [{"type": "track", "userId": "u", "event": "e"}] * 2501}
    status, body, _ = post(server, "/v1/batch", batch, key=server.write_key)
    assert status == 200 and body is not None and len(body["rejected"]) == 2501
    assert {r["field"] for r in body["rejected"]} == {"batch"} and "2500" in body["rejected"][0]["reason"]


def test_bad_requests_get_segments_status_and_a_message(server: Any) -> None:
    key = server.write_key
    status, body, _ = post(server, "/v1/track", b"{not json", key=key)
    assert status == 400 and body is not None and body["code"] == "invalid_json", body
    status, body, _ = post(server, "/v1/track", {"userId": "u", "event": "x" * 40_000}, key=key)
    assert status == 400 and body is not None and body["code"] == "request_too_large", body
    big = {"batch": [{"type": "track", "userId": "u", "event": "e", "properties": {"p": "x" * 30_000}}] * 20}
    assert post(server, "/v1/batch", big, key=key)[0] == 400
    status, body, _ = post(server, "/v1/batch", b"garbage", key=key, headers={"Content-Encoding": "gzip"})
    assert status == 400 and body is not None and "gzip" in body["message"]
    status, body, _ = post(server, "/v1/track", {"userId": "u", "event": "e"}, key="not-a-key")
    assert status == 401 and body is not None and "invalid write key" in body["message"]
    status, body, _ = post(server, "/v1/track", {"userId": "u", "event": "e"})
    assert status == 401 and body is not None and "missing write key" in body["message"]
    status, body, _ = post(server, "/v1/track", {"userId": "u"}, headers={"Authorization": "Bearer x"})
    assert status == 401 and body is not None and "Basic" in body["message"]
    assert post(server, "/v1/nothing", {}, key=key)[0] == 404


def test_browsers_may_post_cross_origin(server: Any) -> None:
    status, _, headers = post(
        server,
        "/v1/track",
        b"",
        method="OPTIONS",
        headers={
            "Origin": "https://shop.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://shop.example.com"
    assert "POST" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"] == "content-type"
    # analytics.js sends text/plain with the key in the body, to skip the preflight.
    status, _, headers = post(
        server,
        "/v1/track",
        {"writeKey": server.write_key, "anonymousId": "web-9", "event": "Viewed"},
        headers={"Origin": "https://shop.example.com", "Content-Type": "text/plain"},
    )
    assert status == 200 and headers["access-control-allow-origin"] == "https://shop.example.com"


def test_past_its_rate_a_source_gets_429_with_retry_after(server_factory: Any) -> None:
    server = server_factory(env={"TRIBUTARY_HTTP_RATE_LIMIT": "5"})
    answers = [post(server, "/v1/track", {"userId": "u", "event": "e"}, key=server.write_key) for _ in range(12)]
    statuses = [status for status, _, _ in answers]
    assert statuses[:5] == [200] * 5 and 429 in statuses, statuses
    _, body, headers = next(answer for answer in answers if answer[0] == 429)
    assert body is not None and body["code"] == "rate_limited"
    assert int(headers["retry-after"]) >= 1


def test_every_event_acknowledged_over_http_survives_a_kill_9(server: Any) -> None:
    """Batches posted on 4 connections while the server is killed: after a restart, every event of
    every batch that got its 200 is stored (sent again over gRPC, each is a duplicate)."""
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(worker: int) -> None:
        for n in itertools.count():
            if stop.is_set():
                return
            ids = [f"w{worker}-b{n}-e{i}" for i in range(50)]
            batch = {"batch": [{"type": "track", "userId": f"u{worker}", "event": "e", "messageId": m} for m in ids]}
            try:
                status, _, _ = post(server, "/v1/batch", batch, key=server.write_key)
            except OSError:
                return  # the server is gone: this batch was never acknowledged
            if status == 200:
                with lock:
                    acked.extend(ids)

    workers = [threading.Thread(target=sender, args=(w,)) for w in range(4)]
    for thread in workers:
        thread.start()
    time.sleep(1.0)
    server.kill()
    stop.set()
    for thread in workers:
        thread.join(timeout=30)
    assert len(acked) >= 200, "the senders got some batches acknowledged before the kill"
    server.start()
    statuses: Counter[int] = Counter()
    rpc = Rpc(server)
    for start in range(0, len(acked), 500):
        events = [
            event_pb2.Event(
                type=event_pb2.EVENT_TYPE_TRACK, message_id=m, user_id=m.split("-")[0].replace("w", "u"), event="e"
            )
            for m in acked[start : start + 500]
        ]
        statuses.update(result.status for result in rpc.send(events).results)
    assert statuses == Counter({ingest_pb2.EVENT_STATUS_DUPLICATE: len(acked)}), statuses
