"""The `warehouse` destination against a real PostgreSQL (tests/postgres.py): Segment's tables, schema growth,
redelivery without duplicates, the users upsert, odd values, outages, errors, and settings.

Events are written as Segment-Spec JSON, as the delivery worker hands them over (`Batch.of_events`).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
import pytest

from cdp_server.destinations.base import Batch, ConfigError, PermanentError, RetryableError
from cdp_server.destinations.warehouse import WarehouseDestination, WarehouseKind, classify

if TYPE_CHECKING:
    from postgres import PostgresDatabase, PostgresServer

# tests/postgres.py: the `postgres` (a fresh database) and `postgres_server` fixtures.
pytest_plugins = ["postgres"]

T = TypeVar("T")
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CONTEXT = {
    "library": {"name": "analytics.js", "version": "5.2.0"},
    "ip": "203.0.113.7",
    "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
    "page": {"path": "/checkout", "title": "Checkout", "url": "https://shop.example.com/checkout"},
    "locale": "en-US",
}
_message_numbers = itertools.count(1)
# A global address, for settings that must pass the address check; validation never connects to it.
PUBLIC_DSN = "postgresql://u@8.8.8.8/db"


def iso(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def call(call_type: str, at: float = 0, **fields: Any) -> dict[str, Any]:
    """A Segment-Spec call as the engine stores it (all four timestamps, a messageId, the browser's context)."""
    event = {
        "type": call_type,
        "messageId": f"msg-{next(_message_numbers)}",
        "timestamp": iso(at),
        "originalTimestamp": iso(at),
        "sentAt": iso(at + 0.5),
        "receivedAt": iso(at + 1),
        "context": CONTEXT,
    }
    event.update(fields)
    return event


def order(at: float = 0, **properties: Any) -> dict[str, Any]:
    defaults = {"orderId": f"o-{at}", "total": 42.5, "currency": "EUR", "products": [{"sku": "G-32", "price": 42.5}]}
    return call("track", at, userId="u1", event="Order Completed", properties=defaults | properties)


def batch(*events: dict[str, Any]) -> Batch:
    return Batch.of_events("warehouse-test", list(events), [event["messageId"] for event in events])


def warehouse(database: PostgresDatabase, **settings: Any) -> WarehouseDestination:
    kind = WarehouseKind()
    return kind.create("warehouse-test", kind.validate({"dsn": database.dsn, "allow": ["127.0.0.1"], **settings}))


def run(scenario: Callable[[WarehouseDestination], Coroutine[Any, Any, T]], destination: WarehouseDestination) -> T:
    """Runs `scenario(destination)` on a fresh event loop, closing the destination afterwards."""

    async def scenario_then_close() -> T:
        try:
            return await scenario(destination)
        finally:
            await destination.close()

    return asyncio.run(scenario_then_close())


def deliver_all(destination: WarehouseDestination, *batches: Batch) -> None:
    async def deliver(destination: WarehouseDestination) -> None:
        for each in batches:
            await destination.deliver(each)

    run(deliver, destination)


def count(database: PostgresDatabase, table: str) -> int:
    return int(database.query(f'SELECT count(*) FROM tributary."{table}"')[0][0])


def ids(database: PostgresDatabase, table: str) -> list[str]:
    return sorted(row[0] for row in database.query(f'SELECT id FROM tributary."{table}"'))


# -- tables and columns -------------------------------------------------------------------------------------------


def test_each_call_type_lands_in_segments_tables_with_its_columns(postgres: PostgresDatabase) -> None:
    events = [
        call(
            "identify",
            0,
            userId="u1",
            anonymousId="anon-1",
            traits={"email": "ada@example.com", "plan": "pro", "createdAt": "2023-01-02T03:04:05Z", "logins": 7},
        ),
        call(
            "page",
            1,
            anonymousId="anon-1",
            name="Home",
            properties={"url": "https://shop.example.com/", "title": "Home"},
        ),
        call("track", 2, userId="u1", event="Product Viewed", properties={"productId": "p-1", "price": 19.99}),
        order(3, coupon="SPRING"),
        call("screen", 4, userId="u1", name="Dashboard", properties={"tab": "orders"}),
        call("group", 5, userId="u1", groupId="g-1", traits={"name": "Initech", "employees": 120}),
        call("alias", 6, userId="u1", previousId="anon-1"),
    ]
    deliver_all(warehouse(postgres), batch(*events))

    assert postgres.tables() == {
        "identifies", "users", "pages", "tracks", "product_viewed", "order_completed", "screens", "groups", "aliases",
    }  # fmt: skip
    common = {"id", "received_at", "sent_at", "original_timestamp", "timestamp", "uuid_ts", "user_id", "anonymous_id"}
    context = {"context_library_name", "context_library_version", "context_ip", "context_user_agent", "context_locale"}
    context |= {"context_page_path", "context_page_title", "context_page_url"}

    tracks = postgres.columns("tracks")
    assert set(tracks) == common | context | {"event", "event_text"}  # no properties in tracks
    assert tracks["received_at"] == "timestamp with time zone"
    assert postgres.query("SELECT event, event_text FROM tributary.tracks ORDER BY timestamp") == [
        ("product_viewed", "Product Viewed"),
        ("order_completed", "Order Completed"),
    ]

    orders = postgres.columns("order_completed")
    assert set(orders) == common | context | {
        "event",
        "event_text",
        "order_id",
        "total",
        "currency",
        "products",
        "coupon",
    }
    assert orders["total"] == "double precision"
    [(order_id, total, products, user_id, library, received_at)] = postgres.query(
        "SELECT order_id, total, products, user_id, context_library_name, received_at FROM tributary.order_completed"
    )
    assert (order_id, total, user_id, library) == ("o-3", 42.5, "u1", "analytics.js")
    assert products == '[{"sku":"G-32","price":42.5}]'  # arrays are stored as JSON text
    assert received_at == START + timedelta(seconds=4)

    identifies = postgres.columns("identifies")
    assert {"email", "plan", "created_at", "logins"} <= set(identifies)
    assert identifies["created_at"] == "timestamp with time zone"
    assert identifies["logins"] == "bigint"
    assert postgres.query("SELECT id, email, plan, logins FROM tributary.users") == [
        ("u1", "ada@example.com", "pro", 7)
    ]
    assert "anonymous_id" not in postgres.columns("users")

    assert postgres.query("SELECT name, url, title, anonymous_id FROM tributary.pages") == [
        ("Home", "https://shop.example.com/", "Home", "anon-1")
    ]
    assert postgres.query("SELECT name, tab FROM tributary.screens") == [("Dashboard", "orders")]
    assert postgres.query("SELECT group_id, name, employees FROM tributary.groups") == [("g-1", "Initech", 120)]
    assert postgres.query("SELECT user_id, previous_id FROM tributary.aliases") == [("u1", "anon-1")]
    # `id` is the messageId, and the primary key.
    assert ids(postgres, "aliases") == [events[-1]["messageId"]]


def test_each_track_event_gets_its_own_table(postgres: PostgresDatabase) -> None:
    deliver_all(
        warehouse(postgres),
        batch(
            call("track", 0, userId="u1", event="Signed Up", properties={"plan": "free"}),
            call("track", 1, userId="u1", event="Users", properties={"x": 1}),  # would be the users table
            order(2),
        ),
    )
    assert {"signed_up", "_users", "order_completed", "tracks"} <= postgres.tables()
    assert count(postgres, "tracks") == 3
    assert postgres.query("SELECT plan FROM tributary.signed_up") == [("free",)]
    assert postgres.query("SELECT x FROM tributary._users") == [(1,)]


def test_new_properties_add_columns(postgres: PostgresDatabase) -> None:
    first, second = order(0), order(1, giftWrap=True, shipping={"method": "express", "days": 2})
    deliver_all(warehouse(postgres), batch(first), batch(second))
    columns = postgres.columns("order_completed")
    assert columns["gift_wrap"] == "boolean"
    assert columns["shipping_method"] == "text"
    assert columns["shipping_days"] == "bigint"
    assert postgres.query("SELECT order_id, gift_wrap, shipping_days FROM tributary.order_completed ORDER BY 1") == [
        ("o-0", None, None),
        ("o-1", True, 2),
    ]


# -- redelivery and the users upsert ------------------------------------------------------------------------------


def test_the_same_batch_delivered_twice_adds_no_rows(postgres: PostgresDatabase) -> None:
    events = [order(seconds) for seconds in range(50)]
    events.append(call("identify", 60, userId="u1", traits={"plan": "pro"}))
    repeated = batch(*events)
    deliver_all(warehouse(postgres), repeated, repeated)
    deliver_all(warehouse(postgres), repeated)  # and again by a destination that starts afresh
    assert count(postgres, "order_completed") == 50
    assert count(postgres, "tracks") == 50
    assert count(postgres, "identifies") == 1
    assert count(postgres, "users") == 1


def test_a_batch_overlapping_a_loaded_one_adds_only_its_new_rows(postgres: PostgresDatabase) -> None:
    events = [order(seconds) for seconds in range(20)]
    # The worker may split a batch differently on redelivery: half of this one is loaded, half is new; and one
    # messageId appears twice in it.
    deliver_all(warehouse(postgres), batch(*events[:10]), batch(*events, events[15]))
    assert ids(postgres, "order_completed") == sorted(event["messageId"] for event in events)
    assert ids(postgres, "tracks") == sorted(event["messageId"] for event in events)


def identify(at: float, user_id: str = "u1", **traits: Any) -> dict[str, Any]:
    return call("identify", at, userId=user_id, traits=traits)


def test_users_keep_the_latest_traits(postgres: PostgresDatabase) -> None:
    deliver_all(
        warehouse(postgres),
        batch(identify(10, plan="free", email="ada@example.com"), identify(20, "u2", plan="team")),
        batch(identify(30, plan="pro")),
        # Happened first, arrives last: fills what no newer call set, changes nothing else.
        batch(
            identify(5, plan="trial", company="Initech"), call("identify", 40, anonymousId="a", traits={"plan": "x"})
        ),
    )
    assert count(postgres, "identifies") == 5
    assert postgres.query('SELECT id, plan, email, company, "timestamp" FROM tributary.users ORDER BY id') == [
        ("u1", "pro", "ada@example.com", "Initech", START + timedelta(seconds=30)),
        ("u2", "team", None, None, START + timedelta(seconds=20)),
    ]


# -- odd values ---------------------------------------------------------------------------------------------------


def test_values_that_do_not_fit_their_column_are_cast_or_loaded_as_null_and_counted(postgres: PostgresDatabase) -> None:
    destination = warehouse(postgres)
    deliver_all(
        destination,
        batch(order(0, total=10.5, quantity=2, note="first")),
        batch(
            order(1, total="12.25", quantity="3", note=7),  # cast cleanly
            order(2, total="n/a", quantity=1.5, note=["a"]),  # do not: NULL, counted; text takes anything
            order(3, total=True, quantity=2**63),  # past bigint
        ),
    )
    rows = postgres.query("SELECT order_id, total, quantity, note FROM tributary.order_completed ORDER BY order_id")
    assert rows == [
        ("o-0", 10.5, 2, "first"),
        ("o-1", 12.25, 3, "7"),
        ("o-2", None, None, '["a"]'),
        ("o-3", None, None, None),
    ]
    assert destination.stats.values_nulled == {
        "tributary.order_completed.total": 2,
        "tributary.order_completed.quantity": 2,
    }


def test_text_with_nul_characters_and_backslashes_loads(postgres: PostgresDatabase) -> None:
    deliver_all(warehouse(postgres), batch(order(0, note="a\x00b", path="C:\\temp\tx\n")))
    assert postgres.query("SELECT note, path FROM tributary.order_completed") == [("ab", "C:\\temp\tx\n")]


def test_a_column_of_a_type_made_by_hand_gets_the_servers_cast(postgres: PostgresDatabase) -> None:
    deliver_all(warehouse(postgres), batch(order(0)))
    postgres.execute("ALTER TABLE tributary.order_completed ALTER COLUMN total TYPE numeric(10, 2)")
    deliver_all(warehouse(postgres), batch(order(1, total=19.999)))
    rows = postgres.query("SELECT order_id, total::text FROM tributary.order_completed ORDER BY 1")
    assert rows == [("o-0", "42.50"), ("o-1", "20.00")]


def test_a_column_dropped_behind_the_destinations_back_comes_back(postgres: PostgresDatabase) -> None:
    async def scenario(destination: WarehouseDestination) -> None:
        await destination.deliver(batch(order(0, coupon="A")))
        postgres.execute("ALTER TABLE tributary.order_completed DROP COLUMN coupon")
        with pytest.raises(RetryableError, match="coupon"):
            await destination.deliver(batch(order(1, coupon="B")))
        await destination.deliver(batch(order(1, coupon="B")))  # the cache was reread: the column is made again

    run(scenario, warehouse(postgres))
    assert postgres.query("SELECT order_id, coupon FROM tributary.order_completed ORDER BY 1") == [
        ("o-0", None),
        ("o-1", "B"),
    ]


# -- outages ------------------------------------------------------------------------------------------------------


async def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def loader_waits_on_a_lock(database: PostgresDatabase) -> bool:
    rows = database.query(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tributary:warehouse-test'"
        " AND wait_event_type = 'Lock'"
    )
    return bool(rows[0][0])


@pytest.mark.parametrize("stop_mode", ["fast", "immediate"])
def test_postgres_stopped_in_the_middle_of_a_batch_loses_and_duplicates_nothing(
    postgres: PostgresDatabase, postgres_server: PostgresServer, stop_mode: str
) -> None:
    loaded = [order(seconds) for seconds in range(10)]
    interrupted = [order(100 + seconds) for seconds in range(2000)]

    async def scenario(destination: WarehouseDestination) -> None:
        await destination.deliver(batch(*loaded))
        # Another session locks the event's table: the batch's `tracks` rows are COPYed, then its COPY into
        # order_completed waits, inside the batch's transaction; that is when the server stops.
        locker = psycopg.connect(postgres.dsn)
        try:
            locker.execute("LOCK TABLE tributary.order_completed IN ACCESS EXCLUSIVE MODE")
            delivery = asyncio.create_task(destination.deliver(batch(*interrupted)))
            await wait_until(lambda: loader_waits_on_a_lock(postgres))
            await asyncio.to_thread(postgres_server.stop, stop_mode)
            with pytest.raises(RetryableError, match="order_completed"):
                await delivery
        finally:
            locker.close()
        with pytest.raises(RetryableError, match="connecting"):  # still down: refused
            await destination.deliver(batch(*interrupted))
        await asyncio.to_thread(postgres_server.start_again)
        # Nothing of the interrupted batch is there: its tracks rows went with its transaction.
        assert count(postgres, "tracks") == len(loaded)
        await destination.deliver(batch(*interrupted))  # the worker's retry
        await destination.deliver(batch(*interrupted))  # and a redelivery, say after a crash before the ack

    run(scenario, warehouse(postgres))
    expected = sorted(event["messageId"] for event in loaded + interrupted)
    assert ids(postgres, "tracks") == expected
    assert ids(postgres, "order_completed") == expected


def test_refused_connection_is_retryable(postgres: PostgresDatabase) -> None:
    with socket.socket() as unused:  # a loopback port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    destination = warehouse(postgres, dsn=f"postgresql://postgres@127.0.0.1:{port}/{postgres.name}")

    async def scenario(destination: WarehouseDestination) -> None:
        with pytest.raises(RetryableError, match="refused"):
            await destination.deliver(batch(order(0)))

    run(scenario, destination)


def test_bad_password_is_permanent(postgres: PostgresDatabase) -> None:
    postgres.create_password_role("loader", "right-password")
    dsn = postgres.server.dsn_for(postgres.name, user="loader", password="wrong-password")

    async def scenario(destination: WarehouseDestination) -> None:
        with pytest.raises(PermanentError, match="password authentication failed"):
            await destination.deliver(batch(order(0)))

    run(scenario, warehouse(postgres, dsn=dsn))


def test_a_schema_the_role_cannot_create_is_permanent(postgres: PostgresDatabase) -> None:
    postgres.execute("CREATE ROLE reader LOGIN")  # no CREATE on the database
    dsn = postgres.server.dsn_for(postgres.name, user="reader")

    async def scenario(destination: WarehouseDestination) -> None:
        with pytest.raises(PermanentError, match=r"creating schema tributary: permission denied"):
            await destination.deliver(batch(order(0)))

    run(scenario, warehouse(postgres, dsn=dsn))


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (psycopg.errors.SerializationFailure("could not serialize access"), True),
        (psycopg.errors.DeadlockDetected("deadlock detected"), True),
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),
        (psycopg.errors.DiskFull("could not extend file"), True),
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (psycopg.errors.InsufficientPrivilege("permission denied for table tracks"), False),
        (psycopg.errors.TooManyColumns("tables can have at most 1600 columns"), False),
        (psycopg.OperationalError('FATAL:  password authentication failed for user "x"'), False),
    ],
)
def test_errors_are_retryable_or_permanent(error: psycopg.Error, retryable: bool) -> None:
    classified = classify(error, "loading tributary.tracks")
    assert isinstance(classified, RetryableError if retryable else PermanentError)
    assert classified.reason.startswith("warehouse loading tributary.tracks: ")


def test_a_unix_socket_is_reached_when_allowed(postgres: PostgresDatabase) -> None:
    dsn = f"host={postgres.server.root} port={postgres.server.port} dbname={postgres.name} user=postgres"
    deliver_all(warehouse(postgres, dsn=dsn, allow=["unix"]), batch(order(0)))
    assert count(postgres, "order_completed") == 1


# -- settings -----------------------------------------------------------------------------------------------------


def config_error(settings: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        WarehouseKind().validate(settings)
    return caught.value


@pytest.mark.parametrize(
    ("settings", "field", "message"),
    [
        ({}, "settings.dsn", "required"),
        ({"dsn": ""}, "settings.dsn", "required"),
        ({"dsn": "not a dsn"}, "settings.dsn", "not a PostgreSQL connection string"),
        ({"dsn": "dbname=x"}, "settings.dsn", "must name the host"),
        ({"dsn": "postgresql://u@10.1.2.3/db"}, "settings.dsn", "settings.allow"),
        ({"dsn": "postgresql://u@127.0.0.1/db"}, "settings.dsn", "loopback"),
        ({"dsn": "postgresql://u@[::1]/db"}, "settings.dsn", "loopback"),
        ({"dsn": "postgresql://u@169.254.169.254/db"}, "settings.dsn", "cloud metadata"),
        ({"dsn": "host=0x7f000001 dbname=x"}, "settings.dsn", "(127.0.0.1) is loopback"),
        ({"dsn": "postgresql://u@localhost/db"}, "settings.dsn", "localhost"),
        ({"dsn": "host=/var/run/postgresql dbname=x"}, "settings.dsn", '"unix"'),
        ({"dsn": PUBLIC_DSN, "schema": "Bad-Name"}, "settings.schema", "identifier"),
        ({"dsn": PUBLIC_DSN, "schema": "pg_catalog"}, "settings.schema", "pg_"),
        ({"dsn": PUBLIC_DSN, "schema": "s" * 64}, "settings.schema", "63"),
        ({"dsn": PUBLIC_DSN, "allow": "10.0.0.0/8"}, "settings.allow", "list"),
        ({"dsn": PUBLIC_DSN, "allow": ["not a host!"]}, "settings.allow[0]", "not"),
        ({"dsn": PUBLIC_DSN, "table": "x"}, "settings.table", "unknown"),
    ],
)
def test_settings_errors_name_the_field(settings: dict[str, Any], field: str, message: str) -> None:
    error = config_error(settings)
    assert error.field == field
    assert message in error.message


def test_settings_are_normalised_and_private_hosts_pass_when_allowed() -> None:
    kind = WarehouseKind()
    assert kind.validate({"dsn": "postgresql://u:secret@10.1.2.3:5433/db", "allow": ["10.0.0.0/8"]}) == {
        "dsn": "postgresql://u:secret@10.1.2.3:5433/db",
        "schema": "tributary",
        "allow": ["10.0.0.0/8"],
    }
    assert kind.validate({"dsn": "host=db.internal hostaddr=192.168.1.5", "allow": ["db.internal"]})["schema"]
    assert kind.validate({"dsn": PUBLIC_DSN, "schema": "analytics"})["schema"] == "analytics"


def test_a_private_host_is_refused_at_delivery_too() -> None:
    # `create` takes settings saved before (or by hand): the address is checked again at each connection.
    destination = WarehouseKind().create("warehouse-test", {"dsn": "postgresql://u@127.0.0.1:1/db"})

    async def scenario(destination: WarehouseDestination) -> None:
        with pytest.raises(PermanentError, match=r"settings\.allow"):
            await destination.deliver(batch(order(0)))

    run(scenario, destination)
    assert "127.0.0.1" not in repr(destination)
