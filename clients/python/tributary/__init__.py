"""Tributary's Python client: Segment-style calls over gRPC, batched, retried, with backpressure.

Usage::

    with Client("127.0.0.1:50051", write_key="...") as client:
        client.identify("user-42", {"email": "ada@example.com"})
        client.track("user-42", "Order Completed", {"revenue": 42.5})
"""

from tributary._version import __version__
from tributary.client import Client
from tributary.delivery import ErrorCallback
from tributary.errors import (
    ClientClosed,
    DeliveryFailed,
    EventFileError,
    EventNotStored,
    EventRejected,
    InvalidEvent,
    MessageIdConflict,
    QueueFull,
    StreamError,
)
from tributary.event_files import read_events_file
from tributary.retry import Backoff
from tributary.segment import event_from_json, event_to_json
from tributary.stream import StreamRejection, StreamSummary

__all__ = [
    "Backoff",
    "Client",
    "ClientClosed",
    "DeliveryFailed",
    "ErrorCallback",
    "EventFileError",
    "EventNotStored",
    "EventRejected",
    "InvalidEvent",
    "MessageIdConflict",
    "QueueFull",
    "StreamError",
    "StreamRejection",
    "StreamSummary",
    "__version__",
    "event_from_json",
    "event_to_json",
    "read_events_file",
]
