"""Hand-built protobuf encoding of `StreamRequest`, from events that are already serialized.

A bulk stream serializes each event once when it is read; building the request from those bytes
avoids copying every Event into a Batch message, and a resend after reconnecting reuses them.
The layout is the one `StreamRequest(sequence=s, batch=Batch(events=...)).SerializeToString()`
produces (checked by tests).
"""

from __future__ import annotations

from collections.abc import Sequence

# (field number << 3) | wire type: 0 = varint, 2 = length-delimited.
_STREAM_REQUEST_SEQUENCE = b"\x08"  # StreamRequest.sequence = 1
_STREAM_REQUEST_BATCH = b"\x12"  # StreamRequest.batch = 2
_BATCH_EVENT = b"\x0a"  # Batch.events = 1


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
