"""Segment's warehouse schema without a database: names, flattening, types, and the casting rule.

The database tests (test_warehouse.py) show the same rules end to end; these pin the edge cases cheaply.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cdp_server.destinations.warehouse_copy import CopyColumns, CopyRowBuilder
from cdp_server.destinations.warehouse_schema import (
    MAX_IDENTIFIER_BYTES,
    ColumnType,
    TableRows,
    column_name,
    event_table_name,
    infer_type,
    plan_batch,
    snake_case,
)

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
    assert snake_case(name) == expected


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
    assert len(table_a.encode()) <= MAX_IDENTIFIER_BYTES
    assert table_a != table_b
    assert table_a.startswith("checkout_step_viewed")
    column = column_name("context", "x" * 100)
    assert len(column.encode()) <= MAX_IDENTIFIER_BYTES


def track(properties: dict[str, Any], message_id: str = "m1", **fields: Any) -> dict[str, Any]:
    return {"type": "track", "messageId": message_id, "event": "Order Completed", "properties": properties, **fields}


def test_nested_objects_flatten_arrays_stay_whole_and_deep_objects_stay_json() -> None:
    event = track(
        {"productId": {"sku": "G-32"}, "tags": ["a", "b"], "a": {"b": {"c": {"d": 1}}}, "skipped": None},
        context={"library": {"name": "analytics.js"}, "app": {"version": "1.0.0"}},
    )
    row = plan_batch([event], ["m1"]).tables["order_completed"].row(0)
    assert row["product_id_sku"] == "G-32"
    assert row["tags"] == ["a", "b"]
    assert row["context_library_name"] == "analytics.js"
    assert row["context_app_version"] == "1.0.0"
    # Three levels flatten; the fourth stays one JSON value.
    assert row["a_b_c"] == {"d": 1}
    assert "skipped" not in row


def test_properties_named_like_reserved_columns_are_discarded() -> None:
    event = track({"id": "not-the-message-id", "userId": "u-x", "context": {"ip": "1.2.3.4"}, "total": 3})
    plan = plan_batch([event], ["m1"])
    row = plan.tables["order_completed"].row(0)
    assert row["id"] == "m1"
    assert "user_id" not in row
    assert "context_ip" not in row
    assert row["total"] == 3
    assert plan.discarded == 3


def test_tracks_table_has_no_properties() -> None:
    plan = plan_batch([track({"total": 3})], ["m1"])
    assert "total" not in plan.tables["tracks"].rows[0]
    assert plan.tables["tracks"].rows[0]["event"] == "order_completed"
    assert plan.tables["tracks"].rows[0]["event_text"] == "Order Completed"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, ColumnType.BOOLEAN),
        (3, ColumnType.BIGINT),
        (2**63, ColumnType.TEXT),
        (3.5, ColumnType.DOUBLE),
        ("2024-05-01T12:00:00Z", ColumnType.TIMESTAMP),
        ("2024-05-01T12:00:00.123+02:00", ColumnType.TIMESTAMP),
        ("2024-05-01", ColumnType.TEXT),  # a date without a time: in doubt, text
        ("2024-05-01T12:00:00", ColumnType.TEXT),  # no zone
        ("2024-02-30T12:00:00Z", ColumnType.TEXT),  # looks right, is no date
        ("hello", ColumnType.TEXT),
        (["a"], ColumnType.TEXT),
    ],
)
def test_a_new_column_takes_its_first_values_type(value: object, expected: ColumnType) -> None:
    assert infer_type(value) == expected


@pytest.mark.parametrize(
    ("data_type", "values", "expected", "nulled"),
    [
        (ColumnType.BIGINT, [1, "42", 3.0, 1.5, True, "abc", 2**64], [1, 42, 3, None, None, None, None], 4),
        (ColumnType.DOUBLE, [1.5, 2, "2.5", "abc", False], [1.5, 2.0, 2.5, None, None], 2),
        (ColumnType.BOOLEAN, [True, "false", 1, "yes"], [True, False, None, None], 2),
        (
            ColumnType.TEXT,
            ["a", 42, 1.5, True, ["x", 1], {"k": "v"}],
            ["a", "42", "1.5", "true", '["x",1]', '{"k":"v"}'],
            0,
        ),
        (
            ColumnType.TIMESTAMP,
            ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00", "soon", 5],
            [datetime(2024, 5, 1, 12, tzinfo=UTC), datetime(2024, 5, 1, 12, tzinfo=UTC), None, None],
            2,
        ),
    ],
)
def test_later_values_cast_to_the_columns_type_or_become_null_and_are_counted(
    data_type: str, values: list[Any], expected: list[Any], nulled: int
) -> None:
    builder = CopyRowBuilder(strings_may_hold_nul=False)
    rows = TableRows("t", {}, [{"v": value} for value in values])
    got = [row[0] for row in builder.rows("s.t", rows, CopyColumns.of([("v", data_type)]))]
    assert got == expected
    assert builder.nulled["s.t.v"] == nulled


def test_strings_lose_nul_characters_when_the_batch_may_hold_them() -> None:
    builder = CopyRowBuilder(strings_may_hold_nul=True)
    rows = TableRows("t", {}, [{"v": "a\x00b"}, {"v": ["c\x00"]}])
    got = [row[0] for row in builder.rows("s.t", rows, CopyColumns.of([("v", ColumnType.TEXT)]))]
    assert got == ["ab", '["c"]']


def test_an_events_table_gets_the_values_tracks_got_for_their_shared_columns() -> None:
    events = [
        track({"total": 1}, "m1", event="Signed Up", userId="u1", timestamp="2024-05-01T12:00:00Z"),
        track({"total": 2}, "m2", userId="u2", timestamp="2024-05-01T12:00:01Z"),
        track({"total": 3}, "m3", event="Signed Up", userId=7, timestamp="not a time"),
    ]
    plan = plan_batch(events, ["m1", "m2", "m3"])
    signed_up = plan.tables["signed_up"]
    assert signed_up.columns == {"id", "user_id", "timestamp", "event", "event_text", "total"}
    assert [signed_up.row(index)["id"] for index in range(2)] == ["m1", "m3"]
    builder = CopyRowBuilder(strings_may_hold_nul=False)
    types = {"id": "text", "user_id": "text", "timestamp": ColumnType.TIMESTAMP, "total": "bigint"}
    for table in ("tracks", "signed_up"):
        rows = plan.tables[table]
        names = sorted(set(types) & rows.columns)
        got = list(builder.rows(f"s.{table}", rows, CopyColumns.of([(name, types[name]) for name in names])))
        if table == "signed_up":
            at = datetime(2024, 5, 1, 12, tzinfo=UTC)
            assert names == ["id", "timestamp", "total", "user_id"]
            assert got == [("m1", at, 1, "u1"), ("m3", None, 3, "7")]
    # The failed cast counts for both tables that got the value.
    assert builder.nulled == {"s.tracks.timestamp": 1, "s.signed_up.timestamp": 1}


def identify(message_id: str, user_id: str, at: str, traits: dict[str, Any]) -> dict[str, Any]:
    return {"type": "identify", "messageId": message_id, "userId": user_id, "timestamp": at, "traits": traits}


def test_users_fold_newest_traits_first_and_older_calls_only_fill_gaps() -> None:
    events = [
        identify("m1", "u1", "2024-05-01T10:00:00Z", {"plan": "free", "email": "a@example.com"}),
        identify("m2", "u1", "2024-05-01T12:00:00Z", {"plan": "pro"}),
        # Arrives last, happened first: fills `company`, changes nothing newer.
        identify("m3", "u1", "2024-05-01T09:00:00Z", {"plan": "trial", "company": "Initech"}),
        {"type": "identify", "messageId": "m4", "anonymousId": "anon", "traits": {"plan": "x"}},
    ]
    plan = plan_batch(events, ["m1", "m2", "m3", "m4"])
    assert len(plan.tables["identifies"].rows) == 4
    [user] = plan.tables["users"].rows
    assert user["id"] == "u1"
    assert user["plan"] == "pro"
    assert user["email"] == "a@example.com"
    assert user["company"] == "Initech"
    assert user["timestamp"] == "2024-05-01T12:00:00Z"
