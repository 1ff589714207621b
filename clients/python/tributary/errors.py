"""The client's exceptions: what a caller may catch, and what `on_error` receives."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import grpc

    from tributary.stream import StreamSummary


class InvalidEvent(ValueError):
    """An event that cannot be built or converted; `field` is in Segment's JSON naming ("userId")."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class EventFileError(ValueError):
    """A file of events that is not JSON lines or a JSON array of objects; `line` is 1-based."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


class QueueFull(Exception):
    """The send queue stayed full for the client's `timeout`: the server is slower than the caller."""


class ClientClosed(Exception):
    """The client was closed, or its close timed out, before these events were delivered."""


class DeliveryFailed(Exception):
    """Queued events were not stored for a reason that retrying did not fix: a refused write key,
    a missing permission, a batch refused as a whole, or a server unreachable for longer than the
    retries last. Raised by `Client.flush()` and `Client.close()` (so also when a `with Client(...)`
    block ends); the events themselves went to `on_error`. `code` is the gRPC status, if any."""

    def __init__(self, message: str, code: grpc.StatusCode | None, events: int) -> None:
        super().__init__(message)
        self.code = code
        self.events = events


class EventNotStored(Exception):
    """The server answered for this event but did not store it (passed to `on_error`)."""

    def __init__(self, message_id: str, reason: str) -> None:
        super().__init__(f"{message_id}: {reason}")
        self.message_id = message_id
        self.reason = reason


class EventRejected(EventNotStored):
    """The server found the event invalid; `field` names the offending field."""

    def __init__(self, message_id: str, field: str, reason: str) -> None:
        super().__init__(message_id, reason)
        self.field = field


class MessageIdConflict(EventNotStored):
    """Another event with a different payload is stored under this messageId; the first one is kept."""


class StreamError(Exception):
    """A bulk stream stopped early. `summary` counts what the server acknowledged before it did."""

    def __init__(self, message: str, summary: StreamSummary, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.summary = summary
        self.code = code
