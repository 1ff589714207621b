"""Hand-built protobuf encoding of `StreamRequest`, from events that are already serialized.

A bulk stream serializes each event once when it is read; building the request from those bytes
avoids copying every Event into a Batch message, and a resend after reconnecting reuses them.
The layout is the one `StreamRequest(sequence=s, batch=Batch(events=...)).SerializeToString()`
produces (checked by tests).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

# (field number << 3) | wire type: 0 = varint, 2 = length-delimited.
_STREAM_REQUEST_SEQUENCE = b"\x08"  # StreamRequest.sequence = 1
_STREAM_REQUEST_BATCH = b"\x12"  # StreamRequest.batch = 2
_BATCH_EVENT = b"\x0a"  # Batch.events = 1
_STREAM_REQUEST_JSON = b"\x1a"  # StreamRequest.json = 3
_JSON_DATA = b"\x0a"  # JsonBatch.data = 1
_JSON_CONTENT_IDS = b"\x10"  # JsonBatch.content_message_ids = 2
_JSON_IGNORE_SENT_AT = b"\x18"  # JsonBatch.ignore_sent_at = 3
_JSON_FIRST_LINE = b"\x20"  # JsonBatch.first_line = 4


def varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varint of a negative number")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def event_field_size(encoded_event: bytes) -> int:
    """Bytes one serialized event adds to a Batch."""
    return len(_BATCH_EVENT) + len(varint(len(encoded_event))) + len(encoded_event)


def stream_request(sequence: int, encoded_events: Sequence[bytes]) -> bytes:
    batch = b"".join(part for event in encoded_events for part in (_BATCH_EVENT, varint(len(event)), event))
    head = _STREAM_REQUEST_SEQUENCE + varint(sequence) if sequence else b""
    return head + _STREAM_REQUEST_BATCH + varint(len(batch)) + batch


def stream_json_request(
    sequence: int, data: bytes, *, content_message_ids: bool, ignore_sent_at: bool, first_line: int
) -> bytes:
    """A StreamRequest carrying Segment-Spec JSON (`JsonBatch`) instead of protobuf events."""
    json_batch = _JSON_DATA + varint(len(data)) + data
    if content_message_ids:
        json_batch += _JSON_CONTENT_IDS + b"\x01"
    if ignore_sent_at:
        json_batch += _JSON_IGNORE_SENT_AT + b"\x01"
    if first_line:
        json_batch += _JSON_FIRST_LINE + varint(first_line)
    head = _STREAM_REQUEST_SEQUENCE + varint(sequence) if sequence else b""
    return head + _STREAM_REQUEST_JSON + varint(len(json_batch)) + json_batch


def fields(message: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of each field of an encoded message: ints for varints, bytes otherwise.

    Enough to read the few well-known messages the client meets without their generated code
    (google.rpc.Status and BadRequest in error details)."""
    position = 0
    while position < len(message):
        key, position = _read_varint(message, position)
        number, wire_type = key >> 3, key & 7
        value: int | bytes
        if wire_type == 0:
            value, position = _read_varint(message, position)
        elif wire_type in (1, 2, 5):
            if wire_type == 2:
                length, position = _read_varint(message, position)
            else:
                length = 8 if wire_type == 1 else 4
            if position + length > len(message):
                raise ValueError("truncated protobuf message")
            value, position = message[position : position + length], position + length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        yield number, value


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
