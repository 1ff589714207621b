"""Bulk ingest over `IngestService/Stream`: numbered batches, a window of unacknowledged ones, and
reconnection that resends them.

Invariants:
- every event has its messageId before its first send, so a batch resent after a reconnect is
  deduplicated by the server (and counted as duplicates) instead of being stored twice;
- at most `window` batches are unacknowledged, and a batch is forgotten only when acknowledged;
- the summary counts acknowledgements only: after a failure it says what is known to be durable.

Batches carry no `sent_at`: bulk input is mostly history, and without it the server keeps each
event's own originalTimestamp as its timestamp instead of shifting it by a skew measured now.

Dicts travel as Segment-Spec JSON lines (serialized by orjson) that the server decodes in Rust;
raw JSON lines (bytes, or a binary file) go as they are, cut into batches at line ends without
being parsed here: no Python object per event on that path. Protobuf Events travel as Batches.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeAlias

import grpc

from tributary._proto.cdp.v1 import event_pb2, ingest_pb2
from tributary._wire import event_field_size, stream_json_request, stream_request
from tributary.errors import InvalidEvent, StreamError
from tributary.retry import RETRYABLE_CODES, Backoff, status_code
from tributary.segment import message_bytes, messages_array, new_message_id

logger = logging.getLogger("tributary")


class BinaryInput(Protocol):
    """A binary file, or anything with its `read`."""

    def read(self, size: int = ..., /) -> bytes: ...


# What `Client.stream` takes: Events or Segment-Spec dicts, or raw JSON lines.
StreamInput: TypeAlias = "Iterable[event_pb2.Event | Mapping[str, Any]] | bytes | bytearray | memoryview | BinaryInput"
OpenStream: TypeAlias = Callable[[Iterator[bytes]], "grpc.CallIterator[ingest_pb2.StreamResponse]"]
AckCallback: TypeAlias = Callable[[ingest_pb2.StreamResponse, int], None]


@dataclass(frozen=True)
class StreamRejection:
    """An event the server (or the client, for malformed input) refused."""

    # 0-based position in the events given to `Client.stream`; for raw JSON lines, the 0-based
    # line (blank lines are not events, so lines are what locates them).
    position: int
    message_id: str
    field: str
    reason: str
    line: int = 0  # for raw JSON lines: the 1-based line the message is on; 0 otherwise


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
    # When the stream failed: events sent but never acknowledged, so their fate is unknown (for
    # raw JSON lines, their lines, blank ones included).
    unconfirmed: int = 0

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    def _count(self, ack: ingest_pb2.StreamResponse, positions: Sequence[int] | None) -> int:
        """Adds an ack of a batch whose events had `positions` (None: raw lines); returns its events."""
        self.accepted += ack.accepted
        self.duplicates += ack.duplicates
        self.conflicts += ack.conflicts
        self.batches += 1
        for rejection in ack.rejections:
            if positions is None:
                position, line = rejection.line - 1, rejection.line
            else:  # the lines of a batch built here mean nothing to the caller
                position, line = (positions[rejection.index] if rejection.index < len(positions) else -1), 0
            self.rejections.append(
                StreamRejection(position, rejection.message_id, rejection.field, rejection.reason, line)
            )
        return ack.accepted + ack.duplicates + ack.conflicts + len(ack.rejections)


def stream_events(
    open_stream: OpenStream,
    events: StreamInput,
    *,
    batch_size: int,
    window: int,
    on_ack: AckCallback | None,
    backoff: Backoff,
    max_retries: int,
    ack_timeout: float | None,
    max_batch_bytes: int,
    history: bool = False,
) -> StreamSummary:
    """Sends `events` in numbered batches; see `Client.stream`."""
    if batch_size < 1 or window < 1:
        raise ValueError("batch_size and window must be at least 1")
    summary = StreamSummary()
    source: _EventSource | _JsonLinesSource
    if isinstance(events, bytes | bytearray | memoryview):
        source = _JsonLinesSource(io.BytesIO(events), batch_size, max_batch_bytes, history)
    elif not isinstance(events, Iterable):  # a binary file (files are iterable too: ask first)
        source = _JsonLinesSource(events, batch_size, max_batch_bytes, history)
    elif hasattr(events, "read"):
        source = _JsonLinesSource(events, batch_size, max_batch_bytes, history)  # type: ignore[arg-type]
    else:
        source = _EventSource(events, batch_size, max_batch_bytes, summary, history)
    pending: dict[int, _Batch] = {}  # by sequence, in sending order
    sequence = 0
    failures = 0  # consecutive: any ack is progress and resets it
    drained = False
    connection: _Connection | None = None
    try:
        while True:
            while len(pending) < window and not drained:
                outgoing = source.next_batch()
                if outgoing is None:
                    drained = True
                    break
                sequence += 1
                batch = pending[sequence] = _Batch(outgoing.request(sequence), outgoing.positions, outgoing.size)
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
                events_acked = summary._count(outcome, acked.positions)
                if on_ack is not None:
                    on_ack(outcome, events_acked)
                continue
            code = status_code(outcome)
            if code not in RETRYABLE_CODES or failures >= max_retries:
                summary.unconfirmed = sum(batch.size for batch in pending.values())
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
    positions: list[int] | None  # input position of each event in the batch; None for raw lines
    size: int  # events (for raw JSON lines: lines)


@dataclass
class _Outgoing:
    """A batch read from the input, ready to be numbered."""

    payload: list[bytes] | bytes  # serialized Events, or JSON (lines)
    positions: list[int] | None
    size: int
    json: bool
    content_message_ids: bool = False
    ignore_sent_at: bool = False
    first_line: int = 0

    def request(self, sequence: int) -> bytes:
        if not self.json:
            assert isinstance(self.payload, list)
            return stream_request(sequence, self.payload)
        data = self.payload if isinstance(self.payload, bytes) else b"\n".join(self.payload)
        return stream_json_request(
            sequence,
            data,
            content_message_ids=self.content_message_ids,
            ignore_sent_at=self.ignore_sent_at,
            first_line=self.first_line,
        )


class _JsonLinesSource:
    """Cuts raw JSON lines into batches at line ends, without parsing them: at most `batch_size`
    lines and `max_batch_bytes` bytes each (a longer line goes alone; the server refuses it if it
    is too large). The file is read in large blocks; a batch is found with `bytes.find`/`count`
    over its own bytes only, and the read position moves along the block instead of copying the
    rest of it for every batch."""

    _READ = 1 << 20

    def __init__(self, file: BinaryInput, batch_size: int, max_batch_bytes: int, history: bool) -> None:
        self._file = file
        self._batch_size = batch_size
        self._max_bytes = max_batch_bytes
        self._history = history
        self._buffer = b""
        self._pos = 0  # where the unsent bytes of `_buffer` start
        self._eof = False
        self._next_line = 1
        self.consumed = 0
        self.error: Exception | None = None

    def next_batch(self) -> _Outgoing | None:
        while True:
            self._fill()
            if self._pos >= len(self._buffer):
                return None
            end = self._cut()
            chunk = self._buffer[self._pos : end]
            self._pos = end
            if self._next_line == 1:
                chunk = chunk.removeprefix(b"\xef\xbb\xbf")  # a byte-order mark that tools on Windows write
            lines = chunk.count(b"\n") + (not chunk.endswith(b"\n"))
            first_line, self._next_line = self._next_line, self._next_line + lines
            self.consumed += lines
            if chunk.strip():  # else only blank lines: on to the next
                return _Outgoing(
                    chunk,
                    None,
                    lines,
                    json=True,
                    content_message_ids=True,  # without them a resend could not be deduplicated
                    ignore_sent_at=self._history,
                    first_line=first_line,
                )

    def _fill(self) -> None:
        """Reads until the unsent bytes hold a batch's worth (by bytes) or the input ends."""
        if len(self._buffer) - self._pos >= self._max_bytes or self._eof:
            return
        parts = [self._buffer[self._pos :]]
        held = len(parts[0])
        while not self._eof and held < self._max_bytes:
            try:
                data = self._file.read(self._READ)
            except Exception as exc:  # the input broke: send what was read, then report it
                self.error = exc
                data = b""
            if not data:
                self._eof = True
            parts.append(data)
            held += len(data)
        self._buffer, self._pos = b"".join(parts), 0

    def _cut(self) -> int:
        """Where the next batch ends: after its last whole line, or at the end of the input."""
        buffer, start = self._buffer, self._pos
        limit = min(len(buffer), start + self._max_bytes)
        # After at most batch_size lines: step from newline to newline (C speed, this batch only).
        end = start
        for _ in range(self._batch_size):
            newline = buffer.find(b"\n", end, limit)
            if newline < 0:
                break
            end = newline + 1
        else:
            return end  # a full batch of lines within the byte limit
        if self._eof and limit == len(buffer):
            return len(buffer)  # the rest, whose last line may lack its newline
        if end > start:
            return end  # the byte limit cut the last line: it goes in the next batch
        newline = buffer.find(b"\n", start)  # one line longer than a batch: it goes alone
        return len(buffer) if newline < 0 else newline + 1


class _EventSource:
    """Pulls events from the caller's iterable, assigns messageIds, encodes and groups them.

    A run of dicts is serialized as one JSON array (one orjson call a batch); only when that
    cannot be trusted (see `messages_array`) are they encoded one by one, which also finds the
    ones that cannot be sent."""

    def __init__(
        self,
        events: Iterable[event_pb2.Event | Mapping[str, Any]],
        batch_size: int,
        max_batch_bytes: int,
        summary: StreamSummary,
        history: bool,
    ) -> None:
        self._events = iter(events)
        self._batch_size = batch_size
        self._max_batch_bytes = max_batch_bytes
        self._summary = summary
        self._history = history
        self._pending: deque[tuple[int, Any]] = deque()  # read, but not yet in a batch
        self._exhausted = False
        self.consumed = 0
        self.error: Exception | None = None

    def next_batch(self) -> _Outgoing | None:
        first = self._next_event()
        if first is None:
            return None
        self._pending.appendleft(first)
        if isinstance(first[1], Mapping):
            run: list[tuple[int, Any]] = []
            while len(run) < self._batch_size and (item := self._next_event()) is not None:
                if not isinstance(item[1], Mapping):
                    self._pending.appendleft(item)
                    break
                run.append(item)
            messages = [_with_message_id(event, self._history) for _, event in run]
            data = messages_array(messages, self._max_batch_bytes)
            if data is not None:
                return _Outgoing(
                    data,
                    [position for position, _ in run],
                    len(run),
                    json=True,
                    content_message_ids=self._history,
                    ignore_sent_at=self._history,
                )
            self._pending.extendleft(reversed(run))  # one by one, below
        return self._one_by_one()

    def _one_by_one(self) -> _Outgoing | None:
        encoded: list[bytes] = []
        positions: list[int] = []
        size = 0
        json_batch = False
        while len(encoded) < self._batch_size:
            item = self._next_event()
            if item is None:
                break
            position, event = item
            try:
                data, is_json = _encode(event, self._history)
            except InvalidEvent as exc:
                message_id = event.get("messageId") if isinstance(event, Mapping) else None
                rejection = StreamRejection(
                    position, message_id if isinstance(message_id, str) else "", exc.field, exc.reason
                )
                self._summary.rejections.append(rejection)
                continue
            added = event_field_size(data)
            # A batch is all JSON or all protobuf.
            if encoded and (size + added > self._max_batch_bytes or is_json != json_batch):
                self._pending.appendleft(item)
                break
            json_batch = is_json
            positions.append(position)
            encoded.append(data)
            size += added
        if not encoded:  # the input ended (rejections do not end a batch early)
            return None
        return _Outgoing(
            encoded,
            positions,
            len(encoded),
            json=json_batch,
            content_message_ids=self._history,
            ignore_sent_at=self._history,
        )

    def _next_event(self) -> tuple[int, Any] | None:
        if self._pending:
            return self._pending.popleft()
        if self._exhausted:
            return None
        try:
            event = next(self._events)
        except StopIteration:
            self._exhausted = True
            return None
        except Exception as exc:
            # The input broke (a bad line, an I/O error): send nothing more, but let the batches
            # already sent be acknowledged so the summary is exact, then report it.
            self.error = exc
            self._exhausted = True
            return None
        position = self.consumed
        self.consumed += 1
        return position, event


def _with_message_id(event: Mapping[str, Any], history: bool) -> Mapping[str, Any]:
    """The message as it is sent: with a messageId before its first send (so that every resend
    deduplicates), unless it is history, whose ids the server derives from the content."""
    if not history and event.get("messageId") in (None, ""):
        return {**event, "messageId": new_message_id()}  # do not change the caller's dict
    return event


def _encode(event: event_pb2.Event | Mapping[str, Any], history: bool) -> tuple[bytes, bool]:
    """The event's bytes, and whether they are JSON. Every event gets its messageId here, before
    its first send, unless it is history: then the server derives one from its content."""
    if isinstance(event, event_pb2.Event):
        if not event.message_id:
            copy = event_pb2.Event()
            copy.CopyFrom(event)  # do not change the caller's message
            copy.message_id = new_message_id()
            event = copy
        return event.SerializeToString(), False
    if isinstance(event, Mapping):
        return message_bytes(_with_message_id(event, history)), True
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
