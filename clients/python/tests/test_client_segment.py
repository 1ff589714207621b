"""Segment-Spec JSON ⇄ Event conversion, without a server."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from tributary import InvalidEvent, event_from_json, event_to_json
from tributary._proto.cdp.v1 import event_pb2
from tributary.timestamps import format_iso8601, parse_iso8601

FULL_TRACK: dict[str, Any] = {
    "type": "track",
    "messageId": "m-1",
    "anonymousId": "anon-1",
    "userId": "u-1",
    "event": "Order Completed",
    "timestamp": "2024-05-01T12:00:00.250Z",
    "sentAt": "2024-05-01T12:00:01.000Z",
    "originalTimestamp": "2024-05-01T12:00:00.125Z",
    "properties": {"revenue": 42.5, "products": [{"sku": "A"}]},
    "context": {"ip": "10.0.0.1", "library": {"name": "analytics.js"}},
    "integrations": {"All": True, "Salesforce": False},
}


def test_every_typed_field_maps_to_its_event_attribute() -> None:
    event = event_from_json(FULL_TRACK)
    assert event.type == event_pb2.EVENT_TYPE_TRACK
    assert (event.message_id, event.anonymous_id, event.user_id, event.event) == (
        "m-1",
        "anon-1",
        "u-1",
        "Order Completed",
    )
    assert event.timestamp.seconds == 1_714_564_800 and event.timestamp.nanos == 250_000_000
    assert event.sent_at.seconds == 1_714_564_801
    assert event.original_timestamp.nanos == 125_000_000
    assert not event.HasField("received_at")


@pytest.mark.parametrize(
    ("message", "attribute", "value"),
    [
        ({"type": "identify", "userId": "u", "traits": {"email": "a@b.c"}}, "traits", b'{"email":"a@b.c"}'),
        ({"type": "page", "userId": "u", "name": "Home"}, "name", "Home"),
        ({"type": "screen", "userId": "u", "name": "Cart"}, "name", "Cart"),
        ({"type": "group", "userId": "u", "groupId": "g1", "traits": {"plan": "pro"}}, "group_id", "g1"),
        ({"type": "alias", "userId": "u", "previousId": "anon"}, "previous_id", "anon"),
    ],
)
def test_per_call_fields(message: dict[str, Any], attribute: str, value: object) -> None:
    assert getattr(event_from_json(message), attribute) == value


def test_objects_become_compact_utf8_json_in_key_order() -> None:
    event = event_from_json({"type": "track", "userId": "u", "event": "E", "properties": {"b": 1, "a": "é ✓"}})
    assert event.properties == '{"b":1,"a":"é ✓"}'.encode()


@pytest.mark.parametrize("kind", ["page", "screen"])
def test_category_is_stored_as_a_property(kind: str) -> None:
    event = event_from_json({"type": kind, "userId": "u", "category": "Docs", "properties": {"category": "x", "k": 1}})
    assert json.loads(event.properties) == {"category": "Docs", "k": 1}
    assert json.loads(event_from_json({"type": kind, "userId": "u", "category": "Docs"}).properties) == {
        "category": "Docs"
    }


def test_received_at_and_unknown_keys_are_ignored() -> None:
    message = {"type": "track", "userId": "u", "event": "E", "receivedAt": "2024-01-01T00:00:00Z", "version": 2}
    assert not event_from_json(message).HasField("received_at")


def test_nulls_mean_absent() -> None:
    event = event_from_json({"type": "track", "userId": "u", "event": "E", "properties": None, "anonymousId": None})
    assert event.properties == b"" and event.anonymous_id == ""


def test_numeric_ids_become_strings() -> None:
    event = event_from_json({"type": "identify", "userId": 42, "anonymousId": 7})
    assert (event.user_id, event.anonymous_id) == ("42", "7")


@pytest.mark.parametrize("kind", ["TRACK", "Identify"])
def test_type_is_case_insensitive(kind: str) -> None:
    assert event_from_json({"type": kind, "userId": "u"}).type != event_pb2.EVENT_TYPE_UNSPECIFIED


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "login", "userId": "u"}, "type"),
        ({"userId": "u"}, "type"),
        ({"type": 3, "userId": "u"}, "type"),
        ({"type": "identify", "userId": True}, "userId"),
        ({"type": "identify", "userId": ["u"]}, "userId"),
        ({"type": "track", "userId": "u", "event": 5}, "event"),
        ({"type": "track", "userId": "u", "properties": [1]}, "properties"),
        ({"type": "track", "userId": "u", "context": "ip"}, "context"),
        ({"type": "track", "userId": "u", "properties": {"x": float("nan")}}, "properties"),
        ({"type": "track", "userId": "u", "traits": {"x": "\ud800"}}, "traits"),
        ({"type": "page", "userId": "u", "category": 1}, "category"),
        ({"type": "track", "userId": "u", "timestamp": "2024-05-01T12:00:00"}, "timestamp"),
        ({"type": "track", "userId": "u", "sentAt": "yesterday"}, "sentAt"),
        ({"type": "track", "userId": "u", "originalTimestamp": 1714564800}, "originalTimestamp"),
        ({"type": "track", "userId": "u", "timestamp": "2024-02-30T00:00:00Z"}, "timestamp"),
    ],
)
def test_invalid_messages_name_the_field(message: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEvent) as raised:
        event_from_json(message)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


def test_a_message_must_be_an_object() -> None:
    with pytest.raises(InvalidEvent, match="message"):
        event_from_json([1, 2])  # type: ignore[arg-type]


def test_naive_timestamp_error_explains_the_fix() -> None:
    with pytest.raises(InvalidEvent, match="no time zone"):
        event_from_json({"type": "track", "userId": "u", "timestamp": "2024-05-01T12:00:00.000"})


@pytest.mark.parametrize(
    ("text", "seconds", "nanos"),
    [
        ("2024-05-01T12:00:00Z", 1_714_564_800, 0),
        ("2024-05-01T12:00:00z", 1_714_564_800, 0),
        ("2024-05-01 12:00:00Z", 1_714_564_800, 0),
        ("2024-05-01T12:00Z", 1_714_564_800, 0),
        ("2024-05-01T14:00:00+02:00", 1_714_564_800, 0),
        ("2024-05-01T06:30:00-0530", 1_714_564_800, 0),
        ("2024-05-01T13:00:00+01", 1_714_564_800, 0),
        ("2024-05-01T12:00:00.1Z", 1_714_564_800, 100_000_000),
        ("2024-05-01T12:00:00.123456Z", 1_714_564_800, 123_456_000),
        ("2024-05-01T12:00:00.123456789Z", 1_714_564_800, 123_456_789),
        ("2024-05-01T12:00:00.1234567891Z", 1_714_564_800, 123_456_789),
        ("2024-05-01T12:00:00,5Z", 1_714_564_800, 500_000_000),
        ("1969-12-31T23:59:59.5Z", -1, 500_000_000),
        ("0001-01-01T00:00:00Z", -62_135_596_800, 0),
        ("9999-12-31T23:59:59Z", 253_402_300_799, 0),
    ],
)
def test_iso8601_forms(text: str, seconds: int, nanos: int) -> None:
    timestamp = parse_iso8601("timestamp", text)
    assert (timestamp.seconds, timestamp.nanos) == (seconds, nanos)


@pytest.mark.parametrize(
    "text",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2024-05-01T24:00:00Z", "2024-05-01T12:00:00+25:00"],
)
def test_out_of_range_times_are_rejected(text: str) -> None:
    with pytest.raises(InvalidEvent):
        parse_iso8601("sentAt", text)


def test_to_json_uses_segment_keys_and_utc_z_timestamps() -> None:
    event = event_from_json(FULL_TRACK)
    event.received_at.FromDatetime(datetime(2024, 5, 1, 12, 0, 2, tzinfo=UTC))
    assert event_to_json(event) == {**FULL_TRACK, "receivedAt": "2024-05-01T12:00:02.000Z"}


def test_to_json_omits_empty_fields() -> None:
    assert event_to_json(event_pb2.Event(type=event_pb2.EVENT_TYPE_IDENTIFY, user_id="u")) == {
        "type": "identify",
        "userId": "u",
    }
    assert event_to_json(event_pb2.Event()) == {}


@pytest.mark.parametrize(
    "message",
    [
        FULL_TRACK,
        {"type": "page", "anonymousId": "a", "name": "Home", "properties": {"category": "Docs", "path": "/"}},
        {"type": "group", "userId": "u", "groupId": "g", "traits": {"name": "ACME", "employees": 10}},
        {"type": "alias", "userId": "u", "previousId": "p", "timestamp": "1970-01-01T00:00:00.000000001Z"},
    ],
)
def test_round_trip(message: dict[str, Any]) -> None:
    event = event_from_json(message)
    assert event_to_json(event) == message
    assert event_from_json(event_to_json(event)) == event


@pytest.mark.parametrize(
    ("nanos", "text"),
    [(0, ".000Z"), (120_000_000, ".120Z"), (123_400_000, ".123400Z"), (1, ".000000001Z")],
)
def test_fraction_digits_grow_only_when_needed(nanos: int, text: str) -> None:
    timestamp = parse_iso8601("t", "2024-05-01T12:00:00Z")
    timestamp.nanos = nanos
    assert format_iso8601(timestamp) == "2024-05-01T12:00:00" + text


def test_early_years_are_zero_padded() -> None:
    assert format_iso8601(parse_iso8601("t", "0099-01-01T00:00:00Z")) == "0099-01-01T00:00:00.000Z"


def test_datetimes_inside_objects_become_utc_iso_strings() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = event_from_json(
        {
            "type": "identify",
            "userId": "u",
            "traits": {"createdAt": datetime(2024, 5, 1, 14, 0, tzinfo=plus_two), "birthday": date(1990, 1, 2)},
        }
    )
    assert json.loads(event.traits) == {"createdAt": "2024-05-01T12:00:00.000Z", "birthday": "1990-01-02"}


def test_naive_datetimes_inside_objects_are_rejected() -> None:
    with pytest.raises(InvalidEvent) as raised:
        event_from_json({"type": "identify", "userId": "u", "traits": {"createdAt": datetime(2024, 5, 1)}})
    assert raised.value.field == "traits"


def test_invalid_json_bytes_are_reported_on_output() -> None:
    with pytest.raises(InvalidEvent, match="properties"):
        event_to_json(event_pb2.Event(type=event_pb2.EVENT_TYPE_TRACK, properties=b"{"))
