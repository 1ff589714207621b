"""`Client`: Segment-style calls (identify, track, page, screen, group, alias) over gRPC, queued and
sent in the background, plus `stream` for bulk imports."""

from __future__ import annotations

import atexit
import base64
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Self

import grpc

from tributary._proto.cdp.v1 import event_pb2, ingest_pb2, ingest_pb2_grpc
from tributary._version import LIBRARY_NAME, __version__
from tributary.delivery import Delivery, ErrorCallback
from tributary.errors import ClientClosed, InvalidEvent
from tributary.retry import Backoff, channel_options
from tributary.segment import event_from_json, json_bytes, new_message_id
from tributary.stream import AckCallback, StreamSummary, stream_events
from tributary.timestamps import from_datetime, now

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
    Other errors, and events the server rejects, go to `on_error(exception, events)` and the
    `tributary` logger; they are not retried.

    When `max_queue` events are waiting, a call blocks for up to `timeout` seconds and then raises
    QueueFull: events are never dropped silently. `timeout` is also each RPC's deadline.

    Thread safe. Use as a context manager, or call `close()`, so that queued events are sent;
    an open client is closed at interpreter exit.

    Args:
        target: the server's gRPC address, e.g. "127.0.0.1:50051".
        write_key: the source's write key.
        secure: use TLS with the system's root certificates.
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
        on_error: ErrorCallback | None = None,
    ) -> None:
        if not write_key:
            raise ValueError("write_key is required")
        if max_queue < 1 or batch_size < 1 or max_retries < 0 or flush_interval < 0 or timeout <= 0:
            raise ValueError("need max_queue >= 1, batch_size >= 1, max_retries >= 0, flush_interval >= 0, timeout > 0")
        options = channel_options(backoff)
        if secure:
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(), options)
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
        atexit.register(self._delivery.close)

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
        event = _new_event(
            event_pb2.EVENT_TYPE_IDENTIFY, user_id, anonymous_id, context, integrations, timestamp, message_id
        )
        _set_object(event, "traits", traits)
        return self._enqueue(event)

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
        message = _new_event(
            event_pb2.EVENT_TYPE_TRACK, user_id, anonymous_id, context, integrations, timestamp, message_id
        )
        message.event = event
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
        event = _new_event(
            event_pb2.EVENT_TYPE_PAGE, user_id, anonymous_id, context, integrations, timestamp, message_id
        )
        event.name = name or ""
        _set_object(event, "properties", _with_category(properties, category))
        return self._enqueue(event)

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
        event = _new_event(
            event_pb2.EVENT_TYPE_SCREEN, user_id, anonymous_id, context, integrations, timestamp, message_id
        )
        event.name = name or ""
        _set_object(event, "properties", _with_category(properties, category))
        return self._enqueue(event)

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
        event = _new_event(
            event_pb2.EVENT_TYPE_GROUP, user_id, anonymous_id, context, integrations, timestamp, message_id
        )
        event.group_id = group_id
        _set_object(event, "traits", traits)
        return self._enqueue(event)

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
        event = _new_event(event_pb2.EVENT_TYPE_ALIAS, user_id, None, context, integrations, timestamp, message_id)
        event.previous_id = previous_id
        return self._enqueue(event)

    def enqueue(self, event: event_pb2.Event | JsonObject) -> str:
        """Queues a ready-made Event or Segment-Spec dict as is, adding a messageId and
        originalTimestamp when it has none. The caller's object is not changed. Returns the messageId."""
        if isinstance(event, event_pb2.Event):
            copy = event_pb2.Event()
            copy.CopyFrom(event)
        else:
            copy = event_from_json(event)
        if not copy.message_id:
            copy.message_id = new_message_id()
        if not copy.HasField("original_timestamp") and not copy.HasField("timestamp"):
            copy.original_timestamp.CopyFrom(now())
        return self._enqueue(copy)

    # -- bulk ------------------------------------------------------------------------------------

    def stream(
        self,
        events: Iterable[event_pb2.Event | JsonObject],
        *,
        batch_size: int = 500,
        window: int = 8,
        on_ack: AckCallback | None = None,
        ack_timeout: float | None = 60.0,
    ) -> StreamSummary:
        """Sends many events over one `IngestService/Stream` call, in the caller's thread.

        Events (Event messages or Segment-Spec dicts) are read lazily, given a messageId when they
        have none, and sent in numbered batches with at most `window` unacknowledged at a time.
        `on_ack(response, batch_len)` is called for every acknowledgement. If the stream breaks
        with a retryable status, or no ack comes within `ack_timeout` seconds, the client
        reconnects with backoff and resends the unacknowledged batches, up to `max_retries` times
        in a row.

        Dicts that are not valid Segment-Spec messages are counted as rejections (with their
        position) and not sent. Returns the summary; raises StreamError (with the summary so far)
        when the stream cannot be completed or reading `events` fails.
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
        )

    # -- lifecycle -------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Blocks until every event queued so far is stored or reported to on_error.

        Returns False if `timeout` seconds passed first.
        """
        return self._delivery.flush(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flushes, stops the sender thread and closes the connection. Idempotent.

        After `timeout` seconds, events still unsent are reported to on_error as ClientClosed and
        False is returned.
        """
        if self._closed:
            return True
        self._closed = True
        atexit.unregister(self._delivery.close)
        flushed = self._delivery.close(timeout)
        self._channel.close()
        return flushed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _enqueue(self, event: event_pb2.Event) -> str:
        self._delivery.put(event)
        return event.message_id

    def _open_stream(self, requests: Iterator[bytes]) -> grpc.CallIterator[ingest_pb2.StreamResponse]:
        return self._stream_rpc(requests, metadata=self._metadata)


def _new_event(
    event_type: event_pb2.EventType.ValueType,
    user_id: str | None,
    anonymous_id: str | None,
    context: JsonObject | None,
    integrations: JsonObject | None,
    timestamp: datetime | None,
    message_id: str | None,
) -> event_pb2.Event:
    """The fields every call shares, checked here so that mistakes raise at the call site."""
    if not user_id and not anonymous_id:
        raise InvalidEvent("userId", "user_id or anonymous_id is required")
    if message_id is not None and len(message_id) > _MAX_MESSAGE_ID_CHARS:
        raise InvalidEvent("messageId", f"at most {_MAX_MESSAGE_ID_CHARS} characters")
    event = event_pb2.Event(
        type=event_type,
        message_id=message_id or new_message_id(),
        user_id=user_id or "",
        anonymous_id=anonymous_id or "",
    )
    # The client's clock now (or the caller's time for the event); the server corrects its skew.
    event.original_timestamp.CopyFrom(now() if timestamp is None else from_datetime("timestamp", timestamp))
    # Like Segment's libraries, say who sent the event, unless the caller already did.
    event.context = json_bytes(
        "context", {"library": {"name": LIBRARY_NAME, "version": __version__}, **(context or {})}
    )
    _set_object(event, "integrations", integrations)
    return event


def _set_object(event: event_pb2.Event, field: str, value: JsonObject | None) -> None:
    if value is not None:
        setattr(event, field, json_bytes(field, value))


def _with_category(properties: JsonObject | None, category: str | None) -> JsonObject | None:
    if category is None:
        return properties
    return {**(properties or {}), "category": category}
