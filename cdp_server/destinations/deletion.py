"""Deletion notices: what a destination receives when a person is deleted (regulations SUPPRESS_WITH_DELETE and
DELETE_ONLY), so that it can remove or forward what it holds of them.

A notice names the person by every identifier the engine knows of them, and carries the events a destination that
forwards events sends on: the person's `Audience Exited` track events, then one `delete` event (Segment's
regulation call, with `context.regulation` = `{"id", "type"}`), each a complete Segment-Spec object with its own
`messageId`. Which destination does what with it is the destination's: the webhook sends the events, the warehouse
deletes the person's rows and sends nothing.

A destination accepts notices by having an `async def delete(notice)` (`AcceptsDeletion`); one that has none (files,
nats: what they wrote is out of their reach) is simply not sent any. `delete` returns once the destination has
acted, or raises `RetryableError` / `PermanentError` (base.py) exactly as `deliver` does, and must be idempotent:
a notice is sent again after any failure.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

import orjson

USER_ID = "user_id"
ANONYMOUS_ID = "anonymous_id"


@dataclass(frozen=True)
class DeletionNotice:
    """One regulation's notice for one person.

    `identifiers` are (type, value) pairs (`("user_id", "u1")`, `("anonymous_id", "a1")`, `("email", "x@y")`);
    `events` are the JSON objects to forward, in order, the `delete` event last, each with a string `messageId`."""

    regulation_id: str
    identifiers: tuple[tuple[str, str], ...]
    events: tuple[bytes, ...]

    @property
    def user_ids(self) -> tuple[str, ...]:
        return self._values_of(USER_ID)

    @property
    def anonymous_ids(self) -> tuple[str, ...]:
        return self._values_of(ANONYMOUS_ID)

    def _values_of(self, identifier_type: str) -> tuple[str, ...]:
        return tuple(sorted({value for kind, value in self.identifiers if kind == identifier_type}))

    @classmethod
    def from_json(cls, data: bytes) -> DeletionNotice:
        """Reads `{"regulationId": str, "identifiers": [{"type": str, "value": str}, …], "events": [object, …]}`;
        raises ValueError naming the first bad field (`identifiers[2].value`)."""
        try:
            notice = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise ValueError(f"deletion notice: not JSON ({error})") from None
        if not isinstance(notice, dict):
            raise ValueError("deletion notice: must be a JSON object")
        regulation_id = _text(notice, "regulationId", "regulationId")
        identifiers = tuple(
            (
                _text(identifier, "type", f"identifiers[{index}].type"),
                _text(identifier, "value", f"identifiers[{index}].value"),
            )
            for index, identifier in enumerate(_objects(notice, "identifiers"))
        )
        events = _objects(notice, "events")
        if not events:
            raise ValueError("events: must hold at least the delete event")
        for index, event in enumerate(events):
            _text(event, "messageId", f"events[{index}].messageId")
        return cls(regulation_id, identifiers, tuple(orjson.dumps(event) for event in events))


def _objects(notice: dict[str, Any], field: str) -> list[dict[str, Any]]:
    items = notice.get(field)
    if not isinstance(items, list):
        raise ValueError(f"{field}: must be a list of objects")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{field}[{index}]: must be an object")
    return items


def _text(obj: dict[str, Any], key: str, field: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field}: must be a non-empty string")
    return value


class AcceptsDeletion(Protocol):
    """A destination that can act on a deletion notice."""

    async def delete(self, notice: DeletionNotice) -> None: ...


def accepts_deletion(destination: object) -> TypeGuard[AcceptsDeletion]:
    """Whether the destination has an `async def delete` (a coroutine function: the delivery loop awaits it)."""
    return inspect.iscoroutinefunction(getattr(destination, "delete", None))
