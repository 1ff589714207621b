"""Bulk streaming against a real server: acks, window, rejections, reconnects that do not duplicate."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from tributary import Backoff, Client, StreamError
from tributary._proto.cdp.v1 import event_pb2, ingest_pb2


def track_dicts(user_id: str, count: int, *, with_ids: bool = True) -> list[dict[str, Any]]:
    return [
        {
            "type": "track",
            "userId": user_id,
            "event": "Imported",
            "properties": {"n": n},
            "originalTimestamp": "2024-01-01T00:00:00.000Z",
            **({"messageId": f"{user_id}-{n}"} if with_ids else {}),
        }
        for n in range(count)
    ]


def test_every_batch_is_acknowledged_and_a_second_pass_is_all_duplicates(
    make_client: Any, stored_events: Any, user_id: str
) -> None:
    client = make_client()
    events = track_dicts(user_id, 2000)
    acks: list[tuple[int, int]] = []
    summary = client.stream(events, batch_size=100, window=4, on_ack=lambda r, n: acks.append((r.sequence, n)))
    assert (summary.accepted, summary.duplicates, summary.rejected, summary.batches) == (2000, 0, 0, 20)
    assert sorted(seq for seq, _ in acks) == list(range(1, 21)) and sum(n for _, n in acks) == 2000

    again = client.stream(events, batch_size=300)
    assert (again.accepted, again.duplicates, again.batches) == (0, 2000, 7)
    assert len(stored_events(user_id)) == 2000


def test_rejections_carry_the_input_position(make_client: Any, stored_events: Any, user_id: str) -> None:
    events: list[Any] = track_dicts(user_id, 300)
    events[3] = {"type": "track", "event": "No user"}  # the server refuses it
    events[7] = {"type": "login", "userId": user_id}  # the client cannot even convert it
    events[250] = event_pb2.Event(type=event_pb2.EVENT_TYPE_TRACK, user_id=user_id)  # track without event
    summary = make_client().stream(events, batch_size=100)
    assert [(r.position, r.field) for r in sorted(summary.rejections, key=lambda r: r.position)] == [
        (3, "userId"),
        (7, "type"),
        (250, "event"),
    ]
    assert summary.accepted == 297 and len(stored_events(user_id)) == 297


def test_callers_events_are_not_changed_and_get_distinct_ids(
    make_client: Any, stored_events: Any, user_id: str
) -> None:
    events = [event_pb2.Event(type=event_pb2.EVENT_TYPE_IDENTIFY, user_id=user_id) for _ in range(10)]
    summary = make_client().stream(events)
    assert summary.accepted == 10 and all(e.message_id == "" for e in events)
    assert len({e.message_id for e in stored_events(user_id)}) == 10


@pytest.mark.parametrize("outage", ["kill", "stop"])
def test_unacknowledged_batches_are_resent_after_a_restart_without_duplicates(
    server: Any, make_client: Any, stored_events: Any, user_id: str, outage: str
) -> None:
    total, break_at = 6000, 2500
    restarts: list[threading.Thread] = []

    def restart_soon() -> None:
        time.sleep(0.3)
        server.start()

    def events() -> Iterator[event_pb2.Event]:
        for n in range(total):
            if n == break_at:  # batches are in flight: take the server down under them
                getattr(server, outage)()
                restart = threading.Thread(target=restart_soon)
                restart.start()
                restarts.append(restart)
            # No messageId: the client must assign one before the first send for resends to dedupe.
            yield event_pb2.Event(type=event_pb2.EVENT_TYPE_TRACK, user_id=user_id, event="Imported")

    summary = make_client().stream(events(), batch_size=200, window=8)
    for restart in restarts:
        restart.join()
    assert summary.reconnects >= 1
    assert summary.accepted + summary.duplicates == total and summary.rejected == 0
    stored = stored_events(user_id)
    assert len(stored) == total == len({e.message_id for e in stored})


def test_a_wrong_write_key_fails_at_once(make_client: Any) -> None:
    client = make_client(write_key="not-a-key", backoff=Backoff(1.0, 2.0, 10.0))
    started = time.monotonic()
    with pytest.raises(StreamError) as raised:
        client.stream(track_dicts("u", 10))
    assert raised.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert raised.value.summary.accepted == 0 and time.monotonic() - started < 1.0


def test_an_unreachable_server_fails_after_the_retries(unused_target: str) -> None:
    client = Client(unused_target, "key", max_retries=2, backoff=Backoff(0.01, 2.0, 0.05))
    with client, pytest.raises(StreamError) as raised:
        client.stream(track_dicts("u", 10))
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE and raised.value.summary.reconnects == 2


def test_a_broken_input_stops_the_stream_after_what_was_sent_is_acknowledged(
    make_client: Any, stored_events: Any, user_id: str
) -> None:
    def events() -> Iterator[dict[str, Any]]:
        yield from track_dicts(user_id, 250)
        raise OSError("disk gone")

    with pytest.raises(StreamError, match="disk gone") as raised:
        make_client().stream(events(), batch_size=100)
    assert isinstance(raised.value.__cause__, OSError)
    assert raised.value.summary.accepted == 250 and len(stored_events(user_id)) == 250


def test_nothing_to_send_opens_no_stream(make_client: Any) -> None:
    summary = make_client().stream([])
    assert (summary.accepted, summary.batches) == (0, 0)


def test_acks_never_exceed_the_window(make_client: Any, user_id: str) -> None:
    # The client pulls the first event of a new batch only when it has room for that batch, so
    # at that moment fewer than `window` batches are unacknowledged.
    sent = 0
    acked = 0
    worst = 0

    def events() -> Iterator[dict[str, Any]]:
        nonlocal sent, worst
        for n, event in enumerate(track_dicts(user_id, 2000)):
            if n % 50 == 0:
                sent = n // 50  # batches completed before this one
                worst = max(worst, sent - acked)
            yield event

    def on_ack(response: ingest_pb2.StreamResponse, size: int) -> None:
        nonlocal acked
        acked += 1

    summary = make_client().stream(events(), batch_size=50, window=3, on_ack=on_ack)
    assert summary.batches == 40 and worst <= 2


def json_lines(messages: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(message).encode() + b"\n" for message in messages)


def test_raw_json_lines_are_stored_and_a_resend_stores_nothing_twice(
    make_client: Any, stored_events: Any, user_id: str
) -> None:
    # No messageIds: the server derives them from each line's content.
    data = json_lines(track_dicts(user_id, 1234, with_ids=False))
    acked: list[int] = []
    summary = make_client().stream(data, batch_size=100, on_ack=lambda _, n: acked.append(n))
    assert (summary.accepted, summary.rejected, summary.batches) == (1234, 0, 13)
    assert sum(acked) == 1234 and max(acked) == 100
    again = make_client().stream(io.BytesIO(data), batch_size=500)
    assert (again.accepted, again.duplicates) == (0, 1234)
    stored = stored_events(user_id)
    assert len(stored) == 1234 and all(e.message_id.startswith("content-") for e in stored)


def test_raw_json_lines_batches_respect_the_byte_limit_and_a_last_line_without_newline(
    make_client: Any, stored_events: Any, user_id: str
) -> None:
    messages = [
        {"type": "track", "userId": user_id, "event": "Big", "properties": {"pad": "x" * 20_000, "n": n}}
        for n in range(400)
    ]
    data = json_lines(messages).rstrip(b"\n")  # ~8 MB: more than two gRPC messages' worth
    summary = make_client().stream(data, batch_size=2500)
    assert summary.accepted == 400 and summary.batches >= 3
    assert len(stored_events(user_id)) == 400


def test_raw_json_lines_rejections_name_their_lines(make_client: Any, stored_events: Any, user_id: str) -> None:
    good = json.dumps({"type": "track", "userId": user_id, "event": "Fine"})
    lines = [
        good,
        "",  # blank lines are not events, but they are lines
        '{"type": "track", "userId": "u", "event": ',  # cut short
        json.dumps({"type": "track", "event": "No user"}),
        good.replace("Fine", "Fine too"),
        "[1, 2]",
        json.dumps({"type": "identify", "userId": user_id, "timestamp": "2024-05-01T12:00:00"}),
    ]
    data = "\n".join(lines).encode()
    summary = make_client().stream(data, batch_size=3)  # rejections in several batches
    found = [(r.line, r.position, r.field) for r in sorted(summary.rejections, key=lambda r: r.line)]
    assert found == [(3, 2, "message"), (4, 3, "userId"), (6, 5, "message"), (7, 6, "timestamp")]
    assert "no time zone" in next(r.reason for r in summary.rejections if r.field == "timestamp")
    assert summary.accepted == 2 and len(stored_events(user_id)) == 2


def test_history_keeps_each_events_time_and_derives_message_ids(
    make_client: Any, stored_events: Any, user_id: str
) -> None:
    events = track_dicts(user_id, 20, with_ids=False)
    for event in events:
        event["sentAt"] = "2031-01-01T00:00:00.000Z"  # would shift every timestamp by years
    client = make_client()
    assert client.stream(events, history=True).accepted == 20
    assert client.stream(events, history=True).duplicates == 20
    stored = stored_events(user_id)
    assert {e.timestamp.ToJsonString() for e in stored} == {"2024-01-01T00:00:00Z"}
    # Without history, dicts get random ids: a second pass stores them again.
    assert client.stream(track_dicts(user_id, 5, with_ids=False)).accepted == 5
    assert client.stream(track_dicts(user_id, 5, with_ids=False)).accepted == 5
