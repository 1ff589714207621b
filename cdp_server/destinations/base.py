"""The contract between the delivery worker and a destination kind.

A destination gets `Batch`es of Segment-Spec events, in log order, and either returns (the
destination acknowledged every event of the batch: the worker then advances its cursor) or
raises a `DeliveryError` saying whether trying again can help. Retries, backoff, dead letters,
metrics and cursors belong to the worker, never to a destination, so that the built-in kinds
and custom ones (entry point group `tributary.destinations`) behave the same.

A batch carries its events as one JSON array (`raw`), exactly as the engine encoded them: a
destination that forwards JSON (a webhook) never builds a Python object per event; one that
needs fields (the warehouse, mappings) decodes them once through `events`.
"""

from __future__ import annotations

import array
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

import orjson

JsonObject = dict[str, Any]


class DeliveryError(Exception):
    """A batch was not delivered; `reason` is what the dead-letter store keeps."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryableError(DeliveryError):
    """Trying again later may succeed (5xx, 408, 429, timeouts, refused or reset connections).

    `retry_after` (seconds) is the destination's own hint (HTTP `Retry-After`), honoured by the
    worker within its backoff bounds."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """Trying again cannot help (4xx other than 408/429, a refused address, a bad mapping):
    the batch's events go to the dead-letter store at once."""


class PayloadTooLarge(DeliveryError):
    """The destination refused the batch for its size (HTTP 413): the worker splits it in
    halves and delivers each; a single event that is still too large is dead-lettered."""


class ConfigError(ValueError):
    """A destination's settings are invalid; `field` names the setting (e.g. `settings.url`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# The day of an event with neither a timestamp nor a receipt time (`Batch.days`).
NO_DAY = -(2**31)


@dataclass(frozen=True)
class Batch:
    """Events for one destination, in log order.

    `raw` is a JSON array of Segment-Spec event objects (camelCase keys, ISO-8601 times:
    `messageId`, `type`, `userId`, `anonymousId`, `event`, `name`, `properties`, `traits`,
    `context`, `integrations`, `timestamp`, `sentAt`, `originalTimestamp`, `receivedAt`,
    `groupId`, `previousId`).
    """

    destination: str
    raw: bytes
    message_ids: Sequence[str]
    # Set when the worker mapped the events (then `raw` is the mapped objects' JSON).
    _events: list[JsonObject] | None = field(default=None, repr=False, compare=False)
    # As read from the log (None once mapped or split): where each event's JSON starts in `raw`,
    # and each event's UTC day (days since 1970-01-01; NO_DAY when it has no time), so that a
    # destination filing raw events by day needs no parse of them.
    starts: array.array[int] | None = field(default=None, repr=False, compare=False)
    days: array.array[int] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of_events(cls, destination: str, events: list[JsonObject], message_ids: Sequence[str]) -> Batch:
        """A batch of already decoded (e.g. mapped) objects."""
        return cls(destination, orjson.dumps(events), message_ids, events)

    def __len__(self) -> int:
        return len(self.message_ids)

    @cached_property
    def events(self) -> list[JsonObject]:
        """The events as dicts (decoded once, on first use)."""
        if self._events is not None:
            return self._events
        decoded: list[JsonObject] = orjson.loads(self.raw)
        return decoded

    @cached_property
    def delivery_id(self) -> str:
        """Stable across retries and redeliveries of the same events: the event's messageId for
        a batch of one, else `batch_` + a digest of the batch's messageIds."""
        if len(self.message_ids) == 1:
            return self.message_ids[0]
        digest = hashlib.blake2b(digest_size=16)
        for message_id in self.message_ids:
            digest.update(message_id.encode())
            digest.update(b"\x1f")
        return "batch_" + digest.hexdigest()

    def event_json(self, index: int) -> bytes:
        """One event's JSON as read from the log (needs `starts`)."""
        assert self.starts is not None
        end = self.starts[index + 1] - 1 if index + 1 < len(self.starts) else len(self.raw) - 1
        return self.raw[self.starts[index] : end]

    def split(self) -> tuple[Batch, Batch]:
        """Two halves, in order (for a destination that refused the batch's size)."""
        half = len(self) // 2
        events = self.events
        return (
            Batch.of_events(self.destination, events[:half], self.message_ids[:half]),
            Batch.of_events(self.destination, events[half:], self.message_ids[half:]),
        )


@runtime_checkable
class Destination(Protocol):
    """One configured destination. `deliver` may be a coroutine function (awaited on the
    delivery loop) or a plain function (run in a thread, for blocking client libraries)."""

    def deliver(self, batch: Batch) -> Any: ...


class DestinationKind(Protocol):
    """A kind of destination: checks settings when a destination is saved, then builds it."""

    name: str

    def validate(self, settings: Mapping[str, Any]) -> JsonObject:
        """The settings, normalised; raises `ConfigError` naming the bad field."""
        ...

    def create(self, name: str, settings: Mapping[str, Any]) -> Destination: ...
