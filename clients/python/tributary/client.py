"""`Client`: Segment-style calls (identify, track, page, screen, group, alias) over gRPC, queued and
sent in the background, plus `stream` for bulk imports."""

from __future__ import annotations

import atexit
import base64
import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Self

import grpc

from tributary._proto.cdp.v1 import event_pb2, ingest_pb2, ingest_pb2_grpc
from tributary._version import LIBRARY_NAME, __version__
from tributary.delivery import Delivery, ErrorCallback
from tributary.errors import ClientClosed, DeliveryFailed, InvalidEvent
from tributary.retry import Backoff, channel_options
from tributary.segment import EVENT_TYPES, event_to_json, message_bytes, new_message_id
from tributary.stream import AckCallback, StreamInput, StreamSummary, stream_events
from tributary.timestamps import format_iso8601, from_datetime, now_iso

logger = logging.getLogger("tributary")

_STREAM_METHOD: Final = "/cdp.v1.IngestService/Stream"
# Under gRPC's default 4 MiB message limit, with room for the envelope.
_MAX_BATCH_BYTES: Final = 3 * 1024 * 1024
_MAX_MESSAGE_ID_CHARS: Final = 100

JsonObject = Mapping[str, Any]


class Client:
    """Sends Segment-Spec events to a Tributary server.

    Calls return at once with the event's messageId; a background thread sends batches of up to
    `batch_size` events with `IngestService/Send`, waiting up to `flush_interval` seconds for a
    batch to fill. UNAVAILABLE, RESOURCE_EXHAUSTED and DEADLINE_EXCEEDED are retried up to
    `max_retries` times with `backoff`, resending the same messageIds (the server deduplicates).
    Other errors, and events the server rejects, go to `on_error(exception, messages)` (the
    Segment-Spec dicts) and the `tributary` logger; they are not retried. A batch that failed as a
    whole (a wrong write key, a server unreachable through every retry) also makes the next
    `flush()` or `close()` raise DeliveryFailed, so a mistake cannot pass unnoticed.

    Events travel as Segment-Spec JSON (orjson), decoded by the server in Rust.

    When `max_queue` events are waiting, a call blocks for up to `timeout` seconds and then raises
    QueueFull: events are never dropped silently. `timeout` is also each RPC's deadline.

    Thread safe. Use as a context manager, or call `close()`, so that queued events are sent;
    an open client is closed at interpreter exit.

    Args:
        target: the server's gRPC address, e.g. "127.0.0.1:50051".
        write_key: the source's write key.
        secure: use TLS with the system's root certificates.
        credentials: use TLS with these (e.g. `grpc.ssl_channel_credentials(root_certificates=...,
            private_key=..., certificate_chain=...)` for a private CA or mTLS); implies secure.
    """

    def __init__(
        self,
        target: str,
        write_key: str,
        *,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        max_retries: int = 10,
        backoff: Backoff = Backoff(),  # noqa: B008 (immutable)
        timeout: float = 10.0,
        secure: bool = False,
        credentials: grpc.ChannelCredentials | None = None,
        on_error: ErrorCallback | None = None,
    ) -> None:
        if not write_key:
            raise ValueError("write_key is required")
        if max_queue < 1 or batch_size < 1 or max_retries < 0 or flush_interval < 0 or timeout <= 0:
            raise ValueError("need max_queue >= 1, batch_size >= 1, max_retries >= 0, flush_interval >= 0, timeout > 0")
        options = channel_options(backoff)
        if secure or credentials is not None:
            self._channel = grpc.secure_channel(target, credentials or grpc.ssl_channel_credentials(), options)
        else:
            self._channel = grpc.insecure_channel(target, options)
        # HTTP Basic with the write key as user name and no password, as Segment's HTTP API.
        token = base64.b64encode(f"{write_key}:".encode()).decode("ascii")
        self._metadata = (("authorization", f"Basic {token}"),)
        self._backoff = backoff
        self._max_retries = max_retries
        self._closed = False
        # Stream requests are built from serialized events (see _wire), so they go out as bytes.
        self._stream_rpc: grpc.StreamStreamMultiCallable[bytes, ingest_pb2.StreamResponse] = (
            self._channel.stream_stream(_STREAM_METHOD, None, ingest_pb2.StreamResponse.FromString)
        )
        self._delivery = Delivery(
            ingest_pb2_grpc.IngestServiceStub(self._channel).Send,
            self._metadata,
            max_queue=max_queue,
            batch_size=batch_size,
            max_batch_bytes=_MAX_BATCH_BYTES,
            flush_interval=flush_interval,
            max_retries=max_retries,
            backoff=backoff,
            timeout=timeout,
            on_error=on_error,
        )
        atexit.register(self._close_at_exit)

    # -- Segment's calls ---------------------------------------------------------------------

    def identify(
        self,
        user_id: str | None = None,
        traits: JsonObject | None = None,
        *,
        anonymous_id: str | None = None,
        context: JsonObject | None = None,
        integrations: JsonObject | None = None,
        timestamp: datetime | None = None,
        message_id: str | None = None,
    ) -> str:
        """Who the user is, and traits to merge into their profile. Returns the messageId."""
        message = _new_message("identify", user_id, anonymous_id, context, integrations, timestamp, message_id)
        _set_object(message, "traits", traits)
        return self._enqueue(message)

    def track(
        self,
        user_id: str | None = None,
        event: str | None = None,
        properties: JsonObject | None = None,
        *,
        anonymous_id: str | None = None,
        context: JsonObject | None = None,
        integrations: JsonObject | None = None,
        timestamp: datetime | None = None,
        message_id: str | None = None,
    ) -> str:
        """An action the user took, such as "Order Completed". Returns the messageId."""
        if not event:
            raise InvalidEvent("event", "track needs an event name, e.g. 'Order Completed'")
        message = _new_message("track", user_id, anonymous_id, context, integrations, timestamp, message_id)
        message["event"] = event
        _set_object(message, "properties", properties)
        return self._enqueue(message)

    def page(
        self,
        user_id: str | None = None,
        name: str | None = None,
        properties: JsonObject | None = None,
        *,
        category: str | None = None,
        anonymous_id: str | None = None,
        context: JsonObject | None = None,
        integrations: JsonObject | None = None,
        timestamp: datetime | None = None,
        message_id: str | None = None,
    ) -> str:
        """A web page view; `category` is stored as properties.category. Returns the messageId."""
        message = _new_message("page", user_id, anonymous_id, context, integrations, timestamp, message_id)
        return self._enqueue(_view(message, name, properties, category))

    def screen(
        self,
        user_id: str | None = None,
        name: str | None = None,
        properties: JsonObject | None = None,
        *,
        category: str | None = None,
        anonymous_id: str | None = None,
        context: JsonObject | None = None,
        integrations: JsonObject | None = None,
        timestamp: datetime | None = None,
        message_id: str | None = None,
    ) -> str:
        """A mobile screen view, the counterpart of `page`. Returns the messageId."""
        message = _new_message("screen", user_id, anonymous_id, context, integrations, timestamp, message_id)
        return self._enqueue(_view(message, name, properties, category))

    def group(
        self,
        user_id: str | None = None,
        group_id: str | None = None,
        traits: JsonObject | None = None,
        *,
        anonymous_id: str | None = None,
        context: JsonObject | None = None,
        integrations: JsonObject | None = None,
        timestamp: datetime | None = None,
        message_id: str | None = None,
    ) -> str:
        """Puts the user in an account (company, team) with the account's traits. Returns the messageId."""
        if not group_id:
            raise InvalidEvent("groupId", "group needs a group_id")
        message = _new_message("group", user_id, anonymous_id, context, integrations, timestamp, message_id)
        message["groupId"] = group_id
        _set_object(message, "traits", traits)
        return self._enqueue(message)

    def alias(
        self,
        previous_id: str,
        user_id: str,
        *,
        context: JsonObject | None = None,
        integrations: JsonObject | None = None,
        timestamp: datetime | None = None,
        message_id: str | None = None,
    ) -> str:
        """Tells destinations that `previous_id` and `user_id` are the same user. Returns the messageId."""
        if not previous_id:
            raise InvalidEvent("previousId", "alias needs a previous_id")
        message = _new_message("alias", user_id, None, context, integrations, timestamp, message_id)
        message["previousId"] = previous_id
        return self._enqueue(message)

    def enqueue(self, event: event_pb2.Event | JsonObject) -> str:
        """Queues a ready-made Event or Segment-Spec dict as is, adding a messageId and
        originalTimestamp when it has none. The caller's object is not changed. Returns the messageId."""
        message = dict(event_to_json(event) if isinstance(event, event_pb2.Event) else event)
        if str(message.get("type")).lower() not in EVENT_TYPES:
            expected = ", ".join(EVENT_TYPES)
            raise InvalidEvent("type", f"unknown type {message.get('type')!r}; expected one of {expected}")
        if not message.get("messageId"):
            message["messageId"] = new_message_id()
        if not message.get("originalTimestamp") and not message.get("timestamp"):
            message["originalTimestamp"] = now_iso()
        return self._enqueue(message)

    # -- bulk ------------------------------------------------------------------------------------

    def stream(
        self,
        events: StreamInput,
        *,
        batch_size: int = 500,
        window: int = 8,
        on_ack: AckCallback | None = None,
        ack_timeout: float | None = 60.0,
        history: bool = False,
    ) -> StreamSummary:
        """Sends many events over one `IngestService/Stream` call, in the caller's thread.

        `events` is an iterable of Segment-Spec dicts (or Event messages), read lazily; or raw
        Segment-Spec JSON lines, as bytes or a binary file, which are cut into batches at line ends
        and decoded by the server, never parsed here. Events are sent in numbered batches with at
        most `window` unacknowledged at a time; `on_ack(response, events_in_batch)` is called for
        every acknowledgement. If the stream breaks with a retryable status, or no ack comes
        within `ack_timeout` seconds, the client reconnects with backoff and resends the
        unacknowledged batches, up to `max_retries` times in a row.

        Every event has a messageId before its first send, so a resend stores nothing twice:
        dicts and Events without one get a random one; raw lines, and every event when `history`
        is set, get one the server derives from the message's content, so sending the same data
        again stores nothing twice. `history` also ignores sentAt: each event keeps its own
        timestamp (an import of past events).

        Dicts that cannot be serialized are counted as rejections (with their position) and not
        sent; the server's rejections carry positions too (for raw lines: line numbers). Returns
        the summary; raises StreamError (with the summary so far) when the stream cannot be
        completed or reading `events` fails.
        """
        if self._closed:
            raise ClientClosed("the client is closed")
        return stream_events(
            self._open_stream,
            events,
            batch_size=batch_size,
            window=window,
            on_ack=on_ack,
            backoff=self._backoff,
            max_retries=self._max_retries,
            ack_timeout=ack_timeout,
            max_batch_bytes=_MAX_BATCH_BYTES,
            history=history,
        )

    # -- lifecycle -------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Blocks until every event queued so far is stored or reported to on_error.

        Returns False if `timeout` seconds passed first. Raises DeliveryFailed when a batch failed
        as a whole since the last flush (a wrong write key, a server unreachable through every
        retry): those events went to on_error and are not stored.
        """
        return self._delivery.flush(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flushes, stops the sender thread and closes the connection. Idempotent.

        After `timeout` seconds, events still unsent are reported to on_error as ClientClosed and
        False is returned. Raises DeliveryFailed, once closed, when a batch failed as a whole
        since the last flush (a wrong write key, say).
        """
        if self._closed:
            return True
        self._closed = True
        atexit.unregister(self._close_at_exit)
        flushed = self._delivery.close(timeout)
        self._channel.close()
        return flushed

    def _close_at_exit(self) -> None:
        try:
            self._delivery.close()
        except DeliveryFailed as failure:
            logger.error("events were not delivered: %s", failure)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
            return
        # The block's own exception is the one to see; a delivery failure is logged and on_error'd.
        try:
            self.close()
        except DeliveryFailed as failure:
            logger.error("while leaving the client after an error: %s", failure)

    def _enqueue(self, message: dict[str, Any]) -> str:
        self._delivery.put(message_bytes(message), message["messageId"])
        return str(message["messageId"])

    def _open_stream(self, requests: Iterator[bytes]) -> grpc.CallIterator[ingest_pb2.StreamResponse]:
        return self._stream_rpc(requests, metadata=self._metadata)


def _new_message(
    kind: str,
    user_id: str | None,
    anonymous_id: str | None,
    context: JsonObject | None,
    integrations: JsonObject | None,
    timestamp: datetime | None,
    message_id: str | None,
) -> dict[str, Any]:
    """The fields every call shares, checked here so that mistakes raise at the call site."""
    if not user_id and not anonymous_id:
        raise InvalidEvent("userId", "user_id or anonymous_id is required")
    if message_id is not None and len(message_id) > _MAX_MESSAGE_ID_CHARS:
        raise InvalidEvent("messageId", f"at most {_MAX_MESSAGE_ID_CHARS} characters")
    message: dict[str, Any] = {"type": kind, "messageId": message_id or new_message_id()}
    if user_id:
        message["userId"] = user_id
    if anonymous_id:
        message["anonymousId"] = anonymous_id
    # The client's clock now (or the caller's time for the event); the server corrects its skew.
    if timestamp is None:
        message["originalTimestamp"] = now_iso()
    else:
        message["originalTimestamp"] = format_iso8601(from_datetime("timestamp", timestamp))
    _set_object(message, "context", context)
    # Like Segment's libraries, say who sent the event, unless the caller already did.
    message["context"] = {"library": _LIBRARY, **message.get("context", {})}
    _set_object(message, "integrations", integrations)
    return message


_LIBRARY: Final = {"name": LIBRARY_NAME, "version": __version__}


def _set_object(message: dict[str, Any], field: str, value: JsonObject | None) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise InvalidEvent(field, f"expected an object, got {type(value).__name__}")
    message[field] = value


def _view(
    message: dict[str, Any], name: str | None, properties: JsonObject | None, category: str | None
) -> dict[str, Any]:
    """A page or screen call's own fields; `category` is kept as properties.category (Segment)."""
    if name:
        message["name"] = name
    _set_object(message, "properties", properties)
    if category is not None:
        message["properties"] = {**message.get("properties", {}), "category": category}
    return message
