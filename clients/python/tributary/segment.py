"""Segment-Spec JSON messages (as Segment's HTTP API and JSON-lines exports spell them) ⇄ `cdp.v1.Event`.

Typed fields map one to one; free-form objects (properties, traits, context, integrations) travel as
compact UTF-8 JSON bytes that the server decodes once. `receivedAt` is the server's to set, so it
is ignored on input, as are keys the Spec does not define (exports carry extras such as `version`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Final, Literal

import orjson

from tributary._proto.cdp.v1 import event_pb2
from tributary.errors import InvalidEvent
from tributary.timestamps import format_iso8601, isoformat_utc, parse_iso8601

Event = event_pb2.Event

EVENT_TYPES: Final[Mapping[str, event_pb2.EventType.ValueType]] = {
    "identify": event_pb2.EVENT_TYPE_IDENTIFY,
    "track": event_pb2.EVENT_TYPE_TRACK,
    "page": event_pb2.EVENT_TYPE_PAGE,
    "screen": event_pb2.EVENT_TYPE_SCREEN,
    "group": event_pb2.EVENT_TYPE_GROUP,
    "alias": event_pb2.EVENT_TYPE_ALIAS,
}
_TYPE_NAMES: Final = {number: name for name, number in EVENT_TYPES.items()}

# (JSON key, Event attribute). Identifiers may be JSON numbers in the wild; they become strings.
_ID_FIELDS: Final = (
    ("messageId", "message_id"),
    ("anonymousId", "anonymous_id"),
    ("userId", "user_id"),
    ("groupId", "group_id"),
    ("previousId", "previous_id"),
)
_NAME_FIELDS: Final = (("event", "event"), ("name", "name"))
_TimeAttribute = Literal["timestamp", "sent_at", "original_timestamp", "received_at"]
_TIME_FIELDS: Final[tuple[tuple[str, _TimeAttribute], ...]] = (
    ("timestamp", "timestamp"),
    ("sentAt", "sent_at"),
    ("originalTimestamp", "original_timestamp"),
)
_RECEIVED_AT: Final[tuple[str, _TimeAttribute]] = ("receivedAt", "received_at")  # output only
_OBJECT_FIELDS: Final = (
    ("properties", "properties"),
    ("traits", "traits"),
    ("context", "context"),
    ("integrations", "integrations"),
)
# Page and screen calls carry `category` at the top level; the Spec stores it as a property.
_CATEGORY_TYPES: Final = frozenset({event_pb2.EVENT_TYPE_PAGE, event_pb2.EVENT_TYPE_SCREEN})


def event_from_json(message: Mapping[str, Any]) -> event_pb2.Event:
    """Builds an Event from one Segment-Spec message; raises InvalidEvent naming the bad field.

    Only the form of each field is checked here (types, timestamps with a zone, objects); the
    Spec's rules (userId or anonymousId, event on track, ...) are the server's to enforce, so that
    an import reports them per event like any other rejection.
    """
    if not isinstance(message, Mapping):
        raise InvalidEvent("message", f"expected a JSON object, got {_json_type(message)}")
    event = event_pb2.Event(type=_event_type(message.get("type")))
    for key, attribute in _ID_FIELDS:
        value = message.get(key)
        if value is not None:
            setattr(event, attribute, _identifier(key, value))
    for key, attribute in _NAME_FIELDS:
        value = message.get(key)
        if value is not None:
            setattr(event, attribute, _string(key, value))
    for key, attribute in _TIME_FIELDS:
        value = message.get(key)
        if value is not None:
            getattr(event, attribute).CopyFrom(parse_iso8601(key, _string(key, value)))
    category = message.get("category")
    for key, attribute in _OBJECT_FIELDS:
        value = _object(key, message.get(key))
        if key == "properties" and category is not None and event.type in _CATEGORY_TYPES:
            # The top-level value wins over properties.category: it is the more explicit of the two.
            value = {**(value or {}), "category": _string("category", category)}
        if value is not None:
            setattr(event, attribute, json_bytes(key, value))
    return event


def event_to_json(event: event_pb2.Event) -> dict[str, Any]:
    """The Segment-Spec message of an Event: camelCase keys, ISO timestamps in UTC with `Z`, empty fields left out."""
    message: dict[str, Any] = {}
    if event.type in _TYPE_NAMES:
        message["type"] = _TYPE_NAMES[event.type]
    for key, attribute in (*_ID_FIELDS, *_NAME_FIELDS):
        value = getattr(event, attribute)
        if value:
            message[key] = value
    for key, time_attribute in (*_TIME_FIELDS, _RECEIVED_AT):
        if event.HasField(time_attribute):
            message[key] = format_iso8601(getattr(event, time_attribute))
    for key, attribute in _OBJECT_FIELDS:
        raw = getattr(event, attribute)
        if raw:
            try:
                message[key] = json.loads(raw)
            except ValueError as exc:
                raise InvalidEvent(key, f"not valid UTF-8 JSON: {exc}") from None
    return message


def message_bytes(message: Mapping[str, Any]) -> bytes:
    """One Segment-Spec message as compact UTF-8 JSON, for the server to decode (orjson).

    Datetimes must be aware and become ISO strings in UTC. A value that cannot be serialized, or
    NaN and Infinity (which JSON cannot express), raise InvalidEvent naming the top-level field.
    """
    if not isinstance(message, Mapping):
        raise InvalidEvent("message", f"expected an object, got {_json_type(message)}")
    try:
        data = orjson.dumps(message, default=_json_default, option=orjson.OPT_PASSTHROUGH_DATETIME)
    except orjson.JSONEncodeError:
        data = None
    # orjson writes NaN and Infinity as null: only then is the slower, strict encoder asked.
    if data is None or b"null" in data:
        for key, value in message.items():
            if isinstance(value, Mapping):
                json_bytes(str(key), value)  # raises naming the field
            elif not _serializable(value):
                raise InvalidEvent(str(key), f"{type(value).__name__} is not JSON serializable")
    if data is None:
        raise InvalidEvent("message", "is not JSON serializable")
    return data


def messages_array(messages: list[Mapping[str, Any]], max_bytes: int) -> bytes | None:
    """Many messages as one JSON array, in one orjson call: the bulk path's serialization. None
    when `message_bytes` must look at them one by one instead: a value that cannot be serialized,
    a null that may stand for a NaN or an Infinity (see `message_bytes`), or more than `max_bytes`."""
    try:
        data = orjson.dumps(messages, default=_json_default, option=orjson.OPT_PASSTHROUGH_DATETIME)
    except orjson.JSONEncodeError:
        return None
    return None if b"null" in data or len(data) > max_bytes else data


def _serializable(value: object) -> bool:
    try:
        json.dumps(value, allow_nan=False, default=_json_default)
    except (TypeError, ValueError):
        return False
    return True


def new_message_id() -> str:
    """A fresh messageId (UUIDv4), set before the first send so that every resend deduplicates."""
    return str(uuid.uuid4())


def json_bytes(field: str, value: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON of an object. Datetimes must be aware and become ISO strings in UTC."""
    if not isinstance(value, Mapping):
        raise InvalidEvent(field, f"expected an object, got {_json_type(value)}")
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default)
        return text.encode("utf-8")
    except InvalidEvent as exc:
        raise InvalidEvent(field, exc.reason) from None
    except (TypeError, ValueError) as exc:
        # Unserialisable values, NaN/Infinity (not JSON), lone surrogates (not UTF-8), cycles.
        raise InvalidEvent(field, str(exc)) from None


def _json_default(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, datetime):
        return isoformat_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _event_type(value: object) -> event_pb2.EventType.ValueType:
    if value is None:
        raise InvalidEvent("type", "type is required: " + ", ".join(EVENT_TYPES))
    if not isinstance(value, str) or value.lower() not in EVENT_TYPES:
        raise InvalidEvent("type", f"unknown type {value!r}; expected one of " + ", ".join(EVENT_TYPES))
    return EVENT_TYPES[value.lower()]


def _identifier(field: str, value: object) -> str:
    # bool is an int subclass, but `true` as a user id is a bug, not an id.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _string(field, value)


def _string(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidEvent(field, f"expected a string, got {_json_type(value)}")
    return value


def _object(field: str, value: object) -> Mapping[str, Any] | None:
    if value is None or isinstance(value, Mapping):
        return value
    raise InvalidEvent(field, f"expected an object, got {_json_type(value)}")


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__
