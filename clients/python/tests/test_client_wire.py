"""The hand-built StreamRequest encoding matches protobuf's, and backoff stays in its bounds."""

from __future__ import annotations

import pytest
from tributary import Backoff
from tributary._proto.cdp.v1 import event_pb2, ingest_pb2
from tributary._wire import event_field_size, stream_json_request, stream_request, varint


@pytest.mark.parametrize("sequence", [1, 127, 128, 300, 2**40])
@pytest.mark.parametrize("sizes", [[0], [1, 126, 127, 128], [20_000, 3]])
def test_stream_request_bytes_equal_protobuf_serialization(sequence: int, sizes: list[int]) -> None:
    events = [
        event_pb2.Event(type=event_pb2.EVENT_TYPE_TRACK, user_id="u", event="E", properties=b"x" * size)
        for size in sizes
    ]
    encoded = [event.SerializeToString() for event in events]
    expected = ingest_pb2.StreamRequest(sequence=sequence, batch=event_pb2.Batch(events=events))
    assert stream_request(sequence, encoded) == expected.SerializeToString()
    assert ingest_pb2.StreamRequest.FromString(stream_request(sequence, encoded)) == expected
    batch_size = event_pb2.Batch(events=events).ByteSize()
    assert sum(event_field_size(e) for e in encoded) == batch_size


def test_varint() -> None:
    assert [varint(n) for n in (0, 1, 127, 128, 300)] == [b"\x00", b"\x01", b"\x7f", b"\x80\x01", b"\xac\x02"]
    with pytest.raises(ValueError):
        varint(-1)


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    backoff = Backoff(initial=0.1, multiplier=2.0, maximum=10.0)
    for retry, ceiling in [(0, 0.1), (3, 0.8), (7, 10.0), (10_000, 10.0)]:
        delays = [backoff.delay(retry) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # spread over the whole range, not fixed


@pytest.mark.parametrize("args", [(0.0, 2.0, 1.0), (1.0, 0.5, 2.0), (2.0, 2.0, 1.0)])
def test_backoff_rejects_nonsense(args: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(*args)


@pytest.mark.parametrize(
    ("sequence", "content_ids", "ignore_sent_at", "first_line"), [(0, False, False, 0), (300, True, True, 70_000)]
)
def test_json_stream_request_bytes_equal_protobuf_serialization(
    sequence: int, content_ids: bool, ignore_sent_at: bool, first_line: int
) -> None:
    data = b'{"type":"track"}\n' * 200
    expected = ingest_pb2.StreamRequest(
        sequence=sequence,
        json=ingest_pb2.JsonBatch(
            data=data, content_message_ids=content_ids, ignore_sent_at=ignore_sent_at, first_line=first_line
        ),
    )
    encoded = stream_json_request(
        sequence, data, content_message_ids=content_ids, ignore_sent_at=ignore_sent_at, first_line=first_line
    )
    assert encoded == expected.SerializeToString()
