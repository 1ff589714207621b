"""Segment's warehouse schema without a database: names, flattening, types, and the casting rule, through the
engine's plan of a batch and its COPY payloads (read back with tests/pgcopy.py).

The database tests (test_warehouse.py) show the same rules end to end; these pin the edge cases cheaply. The engine's
own tests (rust_core/engine/src/warehouse/tests) go further into each rule.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from cdp_server import _core
from tests.pgcopy import read_binary_copy

POSTGRES_MAX_IDENTIFIER_BYTES = 63
LOAD_TIME_US = 1_714_564_800_000_000  # 2024-05-01T12:00:00Z
TIMESTAMP = "timestamp with time zone"
CALL_COLUMNS = {"id", "received_at", "sent_at", "original_timestamp", "timestamp", "user_id", "anonymous_id"}


def plan(*events: dict[str, Any]) -> _core.WarehousePlan:
    # The standard library's JSON: it writes integers past 64 bits, as orjson does not.
    return _core.plan_warehouse_batch(json.dumps(events).encode(), [event["messageId"] for event in events])


def table(planned: _core.WarehousePlan, name: str) -> _core.WarehouseTable:
    [found] = [each for each in planned.tables if each.name == name]
    return found


def rows(
    planned: _core.WarehousePlan, name: str, data_types: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Table `name`'s rows as loaded (columns with a value only) when its columns have `data_types` (default: the
    types they are made with), and the values nulled per column."""
    found = table(planned, name)
    types = [
        (data_types or {}).get(column, made) for column, made in zip(found.columns, found.column_types, strict=True)
    ]
    copy = planned.encode(found.index, types, LOAD_TIME_US)
    assert copy.binary
    loaded = read_binary_copy(copy.payload, [*types, TIMESTAMP])
    assert all(row[-1] == datetime(2024, 5, 1, 12, tzinfo=UTC) for row in loaded)  # uuid_ts, last
    named = [
        {column: value for column, value in zip(found.columns, row[:-1], strict=True) if value is not None}
        for row in loaded
    ]
    return named, dict(copy.nulled)


def track(properties: dict[str, Any], message_id: str = "m1", **fields: Any) -> dict[str, Any]:
    return {"type": "track", "messageId": message_id, "event": "Order Completed", "properties": properties, **fields}


# go-snakecase's own test table (segmentio/go-snakecase snake_test.go): names must match a Segment warehouse's.
GO_SNAKECASE_SAMPLES = [
    ("sample text", "sample_text"),
    ("sample-text", "sample_text"),
    ("sample_text", "sample_text"),
    ("sample___text", "sample_text"),
    ("sampleText", "sample_text"),
    ("inviteYourCustomersAddInvites", "invite_your_customers_add_invites"),
    ("sample 2 Text", "sample_2_text"),
    ("   sample   2    Text   ", "sample_2_text"),
    ("   $#$sample   2    Text   ", "sample_2_text"),
    ("SAMPLE 2 TEXT", "sample_2_text"),
    ("___$$Base64Encode", "base64_encode"),
    ("FOO:BAR$BAZ", "foo_bar_baz"),
    ("FOO#BAR#BAZ", "foo_bar_baz"),
    ("something.com", "something_com"),
    ("$something%", "something"),
    ("•¶§ƒ˚foo˙∆˚¬", "foo"),
]


@pytest.mark.parametrize(("name", "expected"), GO_SNAKECASE_SAMPLES)
def test_snake_case_matches_go_snakecase(name: str, expected: str) -> None:
    # As a property's column, and as an event's table.
    planned = plan(track({name: 1}, event=name))
    assert set(table(planned, expected).columns) - CALL_COLUMNS - {"event", "event_text"} == {expected}


def event_table_name(event: str) -> str:
    return plan(track({}, event=event)).tables[1].name


def test_event_tables_are_snake_case_and_never_a_fixed_table() -> None:
    assert event_table_name("Order Completed") == "order_completed"
    assert event_table_name("Users") == "_users"
    assert event_table_name("tracks") == "_tracks"
    # No ASCII letter or digit: a stable digest, never an empty name.
    assert event_table_name("日本語") == event_table_name("日本語")
    assert event_table_name("日本語").startswith("event_")
    assert event_table_name("日本語") != event_table_name("中文")


def test_long_names_fit_postgres_and_stay_distinct() -> None:
    long_a = "Checkout Step Viewed With A Very Long Suffix That Keeps Going And Going A"
    long_b = "Checkout Step Viewed With A Very Long Suffix That Keeps Going And Going B"
    table_a, table_b = event_table_name(long_a), event_table_name(long_b)
    assert len(table_a.encode()) <= POSTGRES_MAX_IDENTIFIER_BYTES
    assert table_a != table_b
    assert table_a.startswith("checkout_step_viewed")
    [column] = [c for c in plan(track({}, context={"x" * 100: 1})).tables[0].columns if c.startswith("context_")]
    assert len(column.encode()) <= POSTGRES_MAX_IDENTIFIER_BYTES


def test_nested_objects_flatten_arrays_stay_whole_and_deep_objects_stay_json() -> None:
    event = track(
        {"productId": {"sku": "G-32"}, "tags": ["a", "b"], "a": {"b": {"c": {"d": 1}}}, "skipped": None},
        context={"library": {"name": "analytics.js"}, "app": {"version": "1.0.0"}},
    )
    [row], _ = rows(plan(event), "order_completed")
    assert row["product_id_sku"] == "G-32"
    assert row["tags"] == '["a","b"]'  # arrays are stored as JSON text
    assert row["context_library_name"] == "analytics.js"
    assert row["context_app_version"] == "1.0.0"
    # Three levels flatten; the fourth stays one JSON value.
    assert row["a_b_c"] == '{"d":1}'
    assert "skipped" not in table(plan(event), "order_completed").columns


def test_properties_named_like_reserved_columns_are_discarded() -> None:
    event = track({"id": "not-the-message-id", "userId": "u-x", "context": {"ip": "1.2.3.4"}, "total": 3})
    planned = plan(event)
    [row], _ = rows(planned, "order_completed")
    assert row["id"] == "m1"
    assert "user_id" not in row
    assert "context_ip" not in row
    assert row["total"] == 3
    assert planned.discarded == 3


def test_tracks_table_has_no_properties() -> None:
    planned = plan(track({"total": 3}))
    assert "total" not in table(planned, "tracks").columns
    [row], _ = rows(planned, "tracks")
    assert row["event"] == "order_completed"
    assert row["event_text"] == "Order Completed"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "boolean"),
        (3, "bigint"),
        (2**63, "text"),
        (3.5, "double precision"),
        ("2024-05-01T12:00:00Z", TIMESTAMP),
        ("2024-05-01T12:00:00.123+02:00", TIMESTAMP),
        ("2024-05-01", "text"),  # a date without a time: in doubt, text
        ("2024-05-01T12:00:00", "text"),  # no zone
        ("2024-02-30T12:00:00Z", "text"),  # looks right, is no date
        ("hello", "text"),
        (["a"], "text"),
    ],
)
def test_a_new_column_takes_its_first_values_type(value: object, expected: str) -> None:
    found = table(plan(track({"v": value}), track({"v": "later"}, "m2")), "order_completed")
    assert found.column_types[found.columns.index("v")] == expected


@pytest.mark.parametrize(
    ("data_type", "values", "expected", "nulled"),
    [
        ("bigint", [1, "42", 3.0, 1.5, True, "abc", 2**64], [1, 42, 3, None, None, None, None], 4),
        ("double precision", [1.5, 2, "2.5", "abc", False], [1.5, 2.0, 2.5, None, None], 2),
        ("boolean", [True, "false", 1, "yes"], [True, False, None, None], 2),
        (
            "text",
            ["a", 42, 1.5, True, ["x", 1], {"k": "v"}],
            ["a", "42", "1.5", "true", '["x",1]', '{"k":"v"}'],
            0,
        ),
        (
            TIMESTAMP,
            ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00", "soon", 5],
            [datetime(2024, 5, 1, 12, tzinfo=UTC), datetime(2024, 5, 1, 12, tzinfo=UTC), None, None],
            2,
        ),
    ],
)
def test_later_values_cast_to_the_columns_type_or_become_null_and_are_counted(
    data_type: str, values: list[Any], expected: list[Any], nulled: int
) -> None:
    # Three levels deep: an object there is one value too, not flattened further.
    events = [track({"a": {"b": {"v": value}}}, f"m{index}") for index, value in enumerate(values)]
    loaded, counted = rows(plan(*events), "order_completed", {"a_b_v": data_type})
    assert [row.get("a_b_v") for row in loaded] == expected
    assert counted.get("a_b_v", 0) == nulled


def test_strings_lose_nul_characters() -> None:
    loaded, _ = rows(plan(track({"v": "a\x00b"}), track({"v": ["c\x00"]}, "m2")), "order_completed")
    assert [row["v"] for row in loaded] == ["ab", '["c"]']


def test_an_events_table_gets_the_values_tracks_got_for_their_shared_columns() -> None:
    events = [
        track({"total": 1}, "m1", event="Signed Up", userId="u1", timestamp="2024-05-01T12:00:00Z"),
        track({"total": 2}, "m2", userId="u2", timestamp="2024-05-01T12:00:01Z"),
        track({"total": 3}, "m3", event="Signed Up", userId=7, timestamp="not a time"),
    ]
    planned = plan(*events)
    assert set(table(planned, "signed_up").columns) == {"id", "user_id", "timestamp", "event", "event_text", "total"}
    types = {"id": "text", "user_id": "text", "timestamp": TIMESTAMP, "total": "bigint"}
    tracks, tracks_nulled = rows(planned, "tracks", types)
    signed_up, signed_up_nulled = rows(planned, "signed_up", types)
    assert [row["id"] for row in signed_up] == ["m1", "m3"]
    at = datetime(2024, 5, 1, 12, tzinfo=UTC)
    names = ["id", "timestamp", "total", "user_id"]
    assert [tuple(row.get(name) for name in names) for row in signed_up] == [("m1", at, 1, "u1"), ("m3", None, 3, "7")]
    assert [row.get("timestamp") for row in tracks] == [at, datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC), None]
    # The failed cast counts for both tables that got the value.
    assert tracks_nulled == {"timestamp": 1}
    assert signed_up_nulled == {"timestamp": 1}


def identify(message_id: str, user_id: str, at: str, traits: dict[str, Any]) -> dict[str, Any]:
    return {"type": "identify", "messageId": message_id, "userId": user_id, "timestamp": at, "traits": traits}


def test_users_fold_newest_traits_first_and_older_calls_only_fill_gaps() -> None:
    planned = plan(
        identify("m1", "u1", "2024-05-01T10:00:00Z", {"plan": "free", "email": "a@example.com"}),
        identify("m2", "u1", "2024-05-01T12:00:00Z", {"plan": "pro"}),
        # Arrives last, happened first: fills `company`, changes nothing newer.
        identify("m3", "u1", "2024-05-01T09:00:00Z", {"plan": "trial", "company": "Initech"}),
        {"type": "identify", "messageId": "m4", "anonymousId": "anon", "traits": {"plan": "x"}},
    )
    assert table(planned, "identifies").rows == 4
    [user], _ = rows(planned, "users")
    assert user["id"] == "u1"
    assert user["plan"] == "pro"
    assert user["email"] == "a@example.com"
    assert user["company"] == "Initech"
    assert user["timestamp"] == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_a_batch_that_is_not_an_array_of_events_is_refused() -> None:
    with pytest.raises(_core.InvalidRequest, match="not a JSON object"):
        _core.plan_warehouse_batch(b"[1]", ["m1"])
    with pytest.raises(_core.InvalidRequest, match="message ids"):
        _core.plan_warehouse_batch(b"[]", ["m1"])
    with pytest.raises(_core.InvalidRequest, match="invalid JSON"):
        _core.plan_warehouse_batch(b'[{"type": "track"', ["m1"])
