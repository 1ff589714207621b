"""Background delivery of single calls: a bounded queue, one sender thread, batches sent with
`IngestService/Send` and retried.

Invariants:
- an event either enters the queue or its call raises (QueueFull, ClientClosed): no silent loss;
- every queued event is eventually settled: stored, or handed to `on_error` (and logged);
- events settle in queue order, so `flush` waits for a count rather than for particular events;
- a batch is resent only with the same messageIds, so the server stores each event at most once;
- a failure of a whole batch that retrying did not fix is raised by the next flush() or close().

Events are queued as Segment-Spec JSON (serialized once, by the caller's thread) and sent as a
JSON batch object that the server decodes in Rust; a fresh `sentAt` on every attempt lets the
server correct the client's clock skew.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple, TypeAlias

import grpc
import orjson

from tributary._proto.cdp.v1 import ingest_pb2
from tributary.errors import ClientClosed, DeliveryFailed, EventRejected, MessageIdConflict, QueueFull
from tributary.retry import Backoff, is_retryable, status_code
from tributary.status_details import field_violations, send_response
from tributary.timestamps import now_iso

logger = logging.getLogger("tributary")

# Called with the error and the Segment-Spec messages it concerns.
ErrorCallback = Callable[[Exception, Sequence[dict[str, Any]]], None]
SendRpc: TypeAlias = "grpc.UnaryUnaryMultiCallable[ingest_pb2.SendRequest, ingest_pb2.SendResponse]"
Metadata: TypeAlias = tuple[tuple[str, str], ...]

# What one event adds to a JSON batch besides its own bytes (a comma).
_EVENT_OVERHEAD = 1


class _Queued(NamedTuple):
    message: bytes  # Segment-Spec JSON
    message_id: str


class Delivery:
    """The queue and sender thread behind `Client`'s calls. Thread safe."""

    def __init__(
        self,
        send: SendRpc,
        metadata: Metadata,
        *,
        max_queue: int,
        batch_size: int,
        max_batch_bytes: int,
        flush_interval: float,
        max_retries: int,
        backoff: Backoff,
        timeout: float,
        on_error: ErrorCallback | None,
    ) -> None:
        self._send = send
        self._metadata = metadata
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._max_batch_bytes = max_batch_bytes
        self._flush_interval = flush_interval
        self._max_retries = max_retries
        self._backoff = backoff
        self._timeout = timeout
        self._on_error = on_error

        lock = threading.Lock()
        self._lock = lock
        self._not_empty = threading.Condition(lock)  # the sender waits for events
        self._not_full = threading.Condition(lock)  # callers wait for room
        self._progress = threading.Condition(lock)  # flush waits for events to settle
        self._queue: deque[_Queued] = deque()
        self._queued_bytes = 0
        self._enqueued = 0  # events ever accepted
        self._settled = 0  # events stored or reported to on_error
        self._flushing = 0  # callers inside flush(): send at once instead of waiting for a full batch
        self._closing = False
        self._given_up = threading.Event()  # close() timed out: stop retrying, report what is left
        # The first batch failure since the last flush, and how many events failed since: raised
        # by the next flush() or close().
        self._failure: tuple[str, grpc.StatusCode | None] | None = None
        self._failed_events = 0

        self._thread = threading.Thread(target=self._run, name="tributary-sender", daemon=True)
        self._thread.start()

    def put(self, message: bytes, message_id: str) -> None:
        size = len(message) + _EVENT_OVERHEAD
        with self._lock:
            if len(self._queue) >= self._max_queue and not self._closing:
                # Backpressure: the server is slower than the caller. Wait a little, then say so.
                deadline = time.monotonic() + self._timeout
                while len(self._queue) >= self._max_queue and not self._closing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise QueueFull(
                            f"{len(self._queue)} events have waited for {self._timeout} s to be sent; "
                            "the server is not keeping up or is unreachable"
                        )
                    self._not_full.wait(remaining)
            if self._closing:
                raise ClientClosed("the client is closed")
            self._queue.append(_Queued(message, message_id))
            self._queued_bytes += size
            self._enqueued += 1
            if len(self._queue) == 1 or self._batch_full():
                self._not_empty.notify()

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until every event queued before the call is settled; False if `timeout` ran out.
        Raises DeliveryFailed when a batch failed as a whole since the last flush."""
        flushed = self._wait_settled(timeout)
        self.raise_failure()
        return flushed

    def close(self, timeout: float | None = None) -> bool:
        """Flushes, then stops the sender. After `timeout`, what is left goes to on_error as ClientClosed.
        Raises DeliveryFailed, after stopping, when a batch failed as a whole since the last flush."""
        flushed = self._wait_settled(timeout)
        with self._lock:
            self._closing = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
        if not flushed:
            self._given_up.set()
        self._thread.join()
        self.raise_failure()
        return flushed

    def raise_failure(self) -> None:
        """Raises (and forgets) the batch failure recorded since the last call, if any."""
        with self._lock:
            failure, lost = self._failure, self._failed_events
            self._failure, self._failed_events = None, 0
        if failure is not None:
            reason, code = failure
            raise DeliveryFailed(f"{reason} ({lost} event(s) not stored)", code, lost)

    def _wait_settled(self, timeout: float | None) -> bool:
        if threading.current_thread() is self._thread:
            raise RuntimeError("flush() and close() cannot be called from on_error")
        with self._lock:
            target = self._enqueued
            self._flushing += 1
            self._not_empty.notify()
            try:
                return self._progress.wait_for(lambda: self._settled >= target, timeout)
            finally:
                self._flushing -= 1

    def _batch_full(self) -> bool:
        return len(self._queue) >= self._batch_size or self._queued_bytes >= self._max_batch_bytes

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            if self._given_up.is_set():
                self._report(ClientClosed("the client was closed before these events were sent"), batch)
            else:
                self._deliver(batch)
            with self._lock:
                self._settled += len(batch)
                self._progress.notify_all()

    def _next_batch(self) -> list[_Queued] | None:
        with self._lock:
            while not self._queue:
                if self._closing:
                    return None
                self._not_empty.wait()
            # Give a partial batch a moment to fill: fewer, larger RPCs.
            deadline = time.monotonic() + self._flush_interval
            while not (self._batch_full() or self._flushing or self._closing):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._not_empty.wait(remaining)
            batch: list[_Queued] = []
            size = 0
            while self._queue and len(batch) < self._batch_size:
                queued = self._queue[0]
                event_size = len(queued.message) + _EVENT_OVERHEAD
                if batch and size + event_size > self._max_batch_bytes:
                    break
                self._queue.popleft()
                self._queued_bytes -= event_size
                batch.append(queued)
                size += event_size
            self._not_full.notify_all()
            return batch

    def _deliver(self, events: list[_Queued]) -> None:
        messages = b",".join(queued.message for queued in events)
        retry = 0
        while True:
            # Fresh on every attempt: the server measures the client's clock skew with it. The
            # messageIds stay, so a batch stored before its answer was lost comes back as duplicates.
            sent_at = now_iso()
            data = b'{"sentAt":"' + sent_at.encode() + b'","batch":[' + messages + b"]}"
            request = ingest_pb2.SendRequest(json=ingest_pb2.JsonBatch(data=data))
            try:
                response = self._send(request, metadata=self._metadata, timeout=self._timeout)
            except grpc.RpcError as exc:
                if is_retryable(exc) and retry < self._max_retries and not self._given_up.is_set():
                    delay = self._backoff.delay(retry)
                    retry += 1
                    logger.info("send failed (%s); retry %d in %.2f s", _code_name(exc), retry, delay)
                    if not self._given_up.wait(delay):
                        continue
                if is_retryable(exc) and self._given_up.is_set():
                    # close() ran out of time while retrying: the client's choice, not a failure.
                    self._report(ClientClosed("the client was closed before these events were sent"), events)
                elif status_code(exc) == grpc.StatusCode.INVALID_ARGUMENT:
                    self._settle_rejected_batch(exc, events)
                else:
                    self._fail(exc, events)
                return
            except Exception as exc:  # not an RPC outcome: report it rather than lose the thread
                self._report(exc, events)
                return
            self._report_results(response, events)
            return

    def _settle_rejected_batch(self, error: grpc.RpcError, events: list[_Queued]) -> None:
        """Finds out which events of a batch answered with INVALID_ARGUMENT were refused.

        The server stores the valid events of such a batch and attaches per-event results only
        while they are small. Without them, the batch is resent in quarters: events already
        stored come back as duplicates, and smaller answers carry their results.
        """
        response = send_response(error)
        if response is not None:
            self._report_results(response, events)
        elif len(events) > 1:
            step = -(-len(events) // 4)
            for start in range(0, len(events), step):
                self._deliver(events[start : start + step])
        else:
            prefix = "events[0]."
            violation = next((v for v in field_violations(error) if v[0].startswith(prefix)), None)
            if violation is None:
                self._fail(error, events)
            else:
                self._report(EventRejected(events[0].message_id, violation[0][len(prefix) :], violation[1]), events)

    def _report_results(self, response: ingest_pb2.SendResponse, events: list[_Queued]) -> None:
        for result in response.results:
            error: Exception
            if result.status == ingest_pb2.EVENT_STATUS_REJECTED:
                error = EventRejected(result.message_id, result.rejection.field, result.rejection.reason)
            elif result.status == ingest_pb2.EVENT_STATUS_CONFLICT:
                error = MessageIdConflict(
                    result.message_id, "another event is stored under this messageId; the first one is kept"
                )
            else:
                continue
            self._report(error, events[result.index : result.index + 1])

    def _fail(self, error: Exception, events: Sequence[_Queued]) -> None:
        """A batch failed as a whole: report it, and keep it for the next flush() or close()."""
        code = status_code(error)
        what = f"{code.name}: {error.details()}" if isinstance(error, grpc.RpcError) and code else str(error)
        hint = _HINTS.get(code, "") if code is not None else ""
        with self._lock:
            if self._failure is None:
                self._failure = (f"{what}{hint}", code)
            self._failed_events += len(events)
        self._report(error, events)

    def _report(self, error: Exception, events: Sequence[_Queued]) -> None:
        logger.warning("%d event(s) not stored: %s", len(events), error)
        if self._on_error is None:
            return
        try:
            self._on_error(error, [orjson.loads(queued.message) for queued in events])
        except Exception:
            logger.exception("on_error raised")


_HINTS: Final = {
    grpc.StatusCode.UNAUTHENTICATED: "; the server does not know this write key",
    grpc.StatusCode.PERMISSION_DENIED: "; this credential may not send to this server",
    grpc.StatusCode.UNAVAILABLE: "; the server stayed unreachable through every retry",
}


def _code_name(error: grpc.RpcError) -> str:
    code = status_code(error)
    return code.name if code is not None else type(error).__name__
