"""IngestService: unary `Send` and the bulk bidirectional `Stream`.

Request bytes go to the engine undecoded and acks come back encoded: no Python object is made
per event. A stream reads batches on a helper thread and hands them to the engine at once, so
decoding, the group commit of earlier batches and the network overlap; acks are sent in order,
each only after its batch is durable.

Each call (and each batch of a stream) draws one request from the source's rate-limit bucket,
which the engine shares with the HTTP port's Tracking API and webhook routes; past it the call
ends RESOURCE_EXHAUSTED with `retry-after` (seconds) in its trailing metadata (a stream first
acks the batches before it).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from tributary._proto.cdp.v1 import ingest_pb2

from cdp_server import _core, errors
from cdp_server.auth import Caller
from cdp_server.services import access

log = logging.getLogger(__name__)

SERVICE = "cdp.v1.IngestService"
# How often a waiting stream looks at the shutdown flag and the client's liveness.
_POLL_SECS = 0.2
_END = object()


class StreamSlots:
    """Caps concurrent streams: past the cap a new stream is refused, not queued."""

    def __init__(self, limit: int) -> None:
        self._free = threading.BoundedSemaphore(limit)
        self.limit = limit

    def try_acquire(self) -> bool:
        return self._free.acquire(blocking=False)

    def release(self) -> None:
        self._free.release()


class RateLimited:
    """A stream's batch refused by the source's rate limit: wait this many seconds."""

    def __init__(self, wait_secs: int) -> None:
        self.wait_secs = wait_secs


def abort_rate_limited(context: grpc.ServicerContext, wait_secs: int) -> None:
    context.set_trailing_metadata((("retry-after", str(wait_secs)),))
    context.abort(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"this source is over its rate limit (http_rate_limit requests a second, gRPC and HTTP together): "
        f"retry in {wait_secs} s",
    )


class IngestService:
    def __init__(
        self,
        engine: _core.Engine,
        guard: access.Guard,
        *,
        max_streams: int,
        stream_window: int,
        draining: threading.Event,
    ) -> None:
        self._engine = engine
        self._guard = guard
        self._slots = StreamSlots(max_streams)
        self._window = stream_window
        self._draining = draining

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return self._guard.service(
            SERVICE,
            {"Send": access.unary(self.send), "Stream": access.bidi_streaming(self.stream)},
        )

    def send(self, request: bytes, context: grpc.ServicerContext, caller: Caller) -> bytes:
        source = caller.id
        wait_secs = self._engine.admit_source(source)
        if wait_secs:
            abort_rate_limited(context, wait_secs)
        try:
            outcome = self._engine.send(source, request)
        except _core.CoreError as exc:
            errors.abort(context, exc)
        if outcome.rejections:
            context.abort_with_status(_rejection_status(outcome))
        return outcome.response

    def stream(self, requests: Iterator[bytes], context: grpc.ServicerContext, caller: Caller) -> Iterator[bytes]:
        source = caller.id
        if not self._slots.try_acquire():
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many concurrent streams (limit {self._slots.limit}); retry later",
            )
        try:
            yield from self._acks(source, requests, context)
        finally:
            self._slots.release()

    def _acks(self, source: int, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        pending: queue.Queue[object] = queue.Queue(maxsize=self._window)
        reader = threading.Thread(
            target=self._read_batches, args=(source, requests, context, pending), name="stream-reader", daemon=True
        )
        reader.start()
        while True:
            try:
                item = pending.get(timeout=_POLL_SECS)
            except queue.Empty:
                if self._draining.is_set() or not context.is_active():
                    break
                if not reader.is_alive() and pending.empty():
                    break  # the reader ended without a word (the call is over)
                continue
            if item is _END:
                break
            if isinstance(item, _core.CoreError):
                errors.abort(context, item)
            if isinstance(item, RateLimited):
                abort_rate_limited(context, item.wait_secs)
            assert isinstance(item, _core.StreamAck)
            try:
                yield item.wait()
            except _core.CoreError as exc:
                errors.abort(context, exc)
        if self._draining.is_set():
            context.abort(grpc.StatusCode.UNAVAILABLE, "server is shutting down: resend unacknowledged batches")

    def _read_batches(
        self,
        source: int,
        requests: Iterator[bytes],
        context: grpc.ServicerContext,
        pending: queue.Queue[object],
    ) -> None:
        """Submits each batch as it arrives; stops at the end of the stream, on a bad batch,
        when the client goes away, or when the server starts draining."""
        outcome: object = _END
        try:
            for request in requests:
                if self._draining.is_set():
                    return
                wait_secs = self._engine.admit_source(source)
                if wait_secs:
                    outcome = RateLimited(wait_secs)
                    return
                try:
                    ack: object = self._engine.submit_stream(source, request)
                except _core.CoreError as exc:
                    outcome = exc
                    return
                if not _put(pending, ack, context):
                    return
        except grpc.RpcError:
            return  # the client cancelled or the connection broke
        finally:
            _put(pending, outcome, context)


def _put(pending: queue.Queue[object], item: object, context: grpc.ServicerContext) -> bool:
    """Queues an item, waiting while the window is full; False once the call is over."""
    while context.is_active():
        try:
            pending.put(item, timeout=_POLL_SECS)
            return True
        except queue.Full:
            continue
    return False


# Status details travel in trailing metadata, which clients cap (16 KiB by default): keep them small.
_MAX_VIOLATIONS = 50
_MAX_RESULTS_BYTES = 8 * 1024


def _rejection_status(outcome: _core.SendOutcome) -> grpc.Status:
    """INVALID_ARGUMENT naming each bad event and field (the first 50); when small enough, the
    per-event results ride along as details so the caller also learns which were stored."""
    rejections = outcome.rejections
    response = ingest_pb2.SendResponse.FromString(outcome.response)
    accepted = len(response.results) - len(rejections)
    index, _message_id, field, reason = rejections[0]
    if field.startswith("batch"):  # the batch as a whole was refused: one violation says it
        violations = [error_details_pb2.BadRequest.FieldViolation(field=field, description=reason)]
        message = f"{field} {reason.removeprefix(field).strip()}: no event stored"
    else:
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=f"events[{i}].{f}", description=r)
            for i, _m, f, r in rejections[:_MAX_VIOLATIONS]
        ]
        message = f"{len(rejections)} event(s) rejected, {accepted} stored; events[{index}].{field}: {reason}"
    bad_request = any_pb2.Any()
    bad_request.Pack(error_details_pb2.BadRequest(field_violations=violations))
    details = [bad_request]
    if len(outcome.response) <= _MAX_RESULTS_BYTES:
        results = any_pb2.Any()
        results.Pack(response)
        details.append(results)
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=details)
    return rpc_status.to_status(status)
