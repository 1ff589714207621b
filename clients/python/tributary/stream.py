"""Bulk ingest over `IngestService/Stream`: numbered batches, a window of unacknowledged ones, and
reconnection that resends them.

Invariants:
- every event has its messageId before its first send, so a batch resent after a reconnect is
  deduplicated by the server (and counted as duplicates) instead of being stored twice;
- at most `window` batches are unacknowledged, and a batch is forgotten only when acknowledged;
- the summary counts acknowledgements only: after a failure it says what is known to be durable.

Batches carry no `sent_at`: bulk input is mostly history, and without it the server keeps each
event's own originalTimestamp as its timestamp instead of shifting it by a skew measured now.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeAlias

import grpc

from tributary._proto.cdp.v1 import event_pb2, ingest_pb2
from tributary._wire import event_field_size, stream_request
from tributary.errors import InvalidEvent, StreamError
from tributary.retry import RETRYABLE_CODES, Backoff, status_code
from tributary.segment import event_from_json, new_message_id

logger = logging.getLogger("tributary")

OpenStream: TypeAlias = Callable[[Iterator[bytes]], "grpc.CallIterator[ingest_pb2.StreamResponse]"]
AckCallback: TypeAlias = Callable[[ingest_pb2.StreamResponse, int], None]


@dataclass(frozen=True)
class StreamRejection:
    """An event the server (or the client, for malformed input) refused."""

    position: int  # 0-based position in the events given to `Client.stream`
    message_id: str
    field: str
    reason: str


@dataclass
class StreamSummary:
    """What the server acknowledged. After a reconnect, events it had stored before its ack was
    lost come back as duplicates, so accepted + duplicates is the number of events stored."""

    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    batches: int = 0
    reconnects: int = 0
    rejections: list[StreamRejection] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    def _count(self, ack: ingest_pb2.StreamResponse, positions: Sequence[int]) -> None:
        self.accepted += ack.accepted
        self.duplicates += ack.duplicates
        self.conflicts += ack.conflicts
        self.batches += 1
        for rejection in ack.rejections:
            position = positions[rejection.index] if rejection.index < len(positions) else -1
            self.rejections.append(StreamRejection(position, rejection.message_id, rejection.field, rejection.reason))


def stream_events(
    open_stream: OpenStream,
    events: Iterable[event_pb2.Event | Mapping[str, Any]],
    *,
    batch_size: int,
    window: int,
    on_ack: AckCallback | None,
    backoff: Backoff,
    max_retries: int,
    ack_timeout: float | None,
    max_batch_bytes: int,
) -> StreamSummary:
    """Sends `events` in numbered batches; see `Client.stream`."""
    if batch_size < 1 or window < 1:
        raise ValueError("batch_size and window must be at least 1")
    summary = StreamSummary()
    source = _EventSource(events, batch_size, max_batch_bytes, summary)
    pending: dict[int, _Batch] = {}  # by sequence, in sending order
    sequence = 0
    failures = 0  # consecutive: any ack is progress and resets it
    drained = False
    connection: _Connection | None = None
    try:
        while True:
            while len(pending) < window and not drained:
                encoded = source.next_batch()
                if encoded is None:
                    drained = True
                    break
                sequence += 1
                batch = pending[sequence] = _Batch(stream_request(sequence, encoded[0]), encoded[1])
                if connection is None:
                    connection = _Connection(open_stream)
                connection.send(batch.request)
            if not pending:
                break
            assert connection is not None  # pending batches were sent on one
            outcome = connection.receive(ack_timeout)
            if isinstance(outcome, ingest_pb2.StreamResponse):
                acked = pending.pop(outcome.sequence, None)
                if acked is None:
                    logger.warning("ignoring an ack for unknown batch %d", outcome.sequence)
                    continue
                failures = 0
                summary._count(outcome, acked.positions)
                if on_ack is not None:
                    on_ack(outcome, len(acked.positions))
                continue
            code = status_code(outcome)
            if code not in RETRYABLE_CODES or failures >= max_retries:
                raise StreamError(
                    f"stream failed with {len(pending)} batches unacknowledged: {_describe(outcome)}", summary, code
                ) from outcome
            connection.close()
            connection = None
            delay = backoff.delay(failures)
            failures += 1
            logger.warning(
                "stream interrupted (%s); resending %d batches in %.2f s", _describe(outcome), len(pending), delay
            )
            time.sleep(delay)
            summary.reconnects += 1
            connection = _Connection(open_stream)
            for batch in pending.values():
                connection.send(batch.request)
        if connection is not None:
            connection.finish(ack_timeout)
    finally:
        if connection is not None:
            connection.close()
    if source.error is not None:
        raise StreamError(
            f"reading the events failed after {source.consumed} of them: {source.error}", summary
        ) from source.error
    return summary


class _Batch(NamedTuple):
    request: bytes  # an encoded StreamRequest, resent as is after a reconnect
    positions: list[int]  # input position of each event in the batch


class _EventSource:
    """Pulls events from the caller's iterable, assigns messageIds, encodes and groups them."""

    def __init__(
        self,
        events: Iterable[event_pb2.Event | Mapping[str, Any]],
        batch_size: int,
        max_batch_bytes: int,
        summary: StreamSummary,
    ) -> None:
        self._events = iter(events)
        self._batch_size = batch_size
        self._max_batch_bytes = max_batch_bytes
        self._summary = summary
        self._carry: tuple[int, bytes] | None = None  # read, but did not fit in the last batch
        self._exhausted = False
        self.consumed = 0
        self.error: Exception | None = None

    def next_batch(self) -> tuple[list[bytes], list[int]] | None:
        encoded: list[bytes] = []
        positions: list[int] = []
        size = 0
        while len(encoded) < self._batch_size:
            item = self._next_encoded()
            if item is None:
                break
            added = event_field_size(item[1])
            if encoded and size + added > self._max_batch_bytes:
                self._carry = item
                break
            positions.append(item[0])
            encoded.append(item[1])
            size += added
        return (encoded, positions) if encoded else None

    def _next_encoded(self) -> tuple[int, bytes] | None:
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        while not self._exhausted:
            try:
                event = next(self._events)
            except StopIteration:
                self._exhausted = True
                break
            except Exception as exc:
                # The input broke (a bad line, an I/O error): send nothing more, but let the batches
                # already sent be acknowledged so the summary is exact, then report it.
                self.error = exc
                self._exhausted = True
                break
            position = self.consumed
            self.consumed += 1
            try:
                return position, _encode(event)
            except InvalidEvent as exc:
                message_id = event.get("messageId") if isinstance(event, Mapping) else None
                self._summary.rejections.append(
                    StreamRejection(position, message_id if isinstance(message_id, str) else "", exc.field, exc.reason)
                )
        return None


def _encode(event: event_pb2.Event | Mapping[str, Any]) -> bytes:
    if isinstance(event, event_pb2.Event):
        if not event.message_id:
            copy = event_pb2.Event()
            copy.CopyFrom(event)  # do not change the caller's message
            copy.message_id = new_message_id()
            event = copy
        return event.SerializeToString()
    if isinstance(event, Mapping):
        converted = event_from_json(event)
        if not converted.message_id:
            converted.message_id = new_message_id()
        return converted.SerializeToString()
    raise TypeError(f"expected an Event or a Segment-Spec dict, got {type(event).__name__}")


class _Interrupted(Exception):
    """The stream ended, or went quiet, while batches were unacknowledged."""

    def __init__(self, message: str, code: grpc.StatusCode) -> None:
        super().__init__(message)
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


class _Connection:
    """One Stream call. Requests reach grpc's sending thread through a queue; acks come back through
    a reader thread, so that the caller can wait for the next one with a timeout."""

    def __init__(self, open_stream: OpenStream) -> None:
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._inbox: queue.SimpleQueue[ingest_pb2.StreamResponse | Exception] = queue.SimpleQueue()
        self._call = open_stream(self._requests())
        self._reader = threading.Thread(target=self._read, name="tributary-stream-acks", daemon=True)
        self._reader.start()

    def send(self, request: bytes) -> None:
        self._outbox.put(request)

    def receive(self, timeout: float | None) -> ingest_pb2.StreamResponse | Exception:
        """The next ack, or the reason there will be none."""
        try:
            return self._inbox.get(timeout=timeout)
        except queue.Empty:
            return _Interrupted(f"no acknowledgement within {timeout} s", grpc.StatusCode.DEADLINE_EXCEEDED)

    def finish(self, timeout: float | None) -> None:
        """Half-closes and waits for the server to end the call (everything is acknowledged by now)."""
        self._outbox.put(None)
        outcome = self.receive(timeout)
        if isinstance(outcome, grpc.RpcError):
            logger.debug("stream ended after the last ack with %s", _describe(outcome))

    def close(self) -> None:
        self._call.cancel()  # type: ignore[no-untyped-call]  # (untyped in grpc-stubs) no-op when over
        self._outbox.put(None)  # releases grpc's sending thread if it is waiting for a request
        self._reader.join()

    def _requests(self) -> Iterator[bytes]:
        while (request := self._outbox.get()) is not None:
            yield request

    def _read(self) -> None:
        try:
            for response in self._call:
                self._inbox.put(response)
        except Exception as exc:  # the call's error, handed to the caller's thread
            self._inbox.put(exc)
        else:
            # Before every batch is acknowledged, this is a server going away: resend, as for UNAVAILABLE.
            self._inbox.put(_Interrupted("the server ended the stream", grpc.StatusCode.UNAVAILABLE))


def _describe(error: object) -> str:
    code = status_code(error) if isinstance(error, BaseException) else None
    if isinstance(error, grpc.RpcError) and code is not None:
        return f"{code.name}: {error.details()}"
    return str(error)
