"""Deletion notices at the destinations that act on them, against real parts: the warehouse deletes every row of
the person from a real PostgreSQL (tests/postgres.py) and no row of anyone else; the webhook sends the notice's
events, signed, to a real receiver on 127.0.0.1 (tests/webhook_sink.py), checked with the independent
`standardwebhooks` package; the files and nats destinations accept no notice; bad notices are refused naming the
field."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import socket
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import psycopg
import pytest
import standardwebhooks
from webhook_sink import Reply, WebhookSink
from yarl import URL

from cdp_server.destinations.base import Batch, PermanentError, RetryableError
from cdp_server.destinations.deletion import DeletionNotice, accepts_deletion
from cdp_server.destinations.files import FilesKind
from cdp_server.destinations.nats import NatsKind
from cdp_server.destinations.signing import new_secret
from cdp_server.destinations.warehouse import WarehouseDestination, WarehouseKind
from cdp_server.destinations.webhook import WebhookDestination, WebhookSettings

if TYPE_CHECKING:
    from postgres import PostgresDatabase

# tests/postgres.py: a fresh database per test; sinks_conftest.py: a receiver on 127.0.0.1.
pytest_plugins = ["postgres", "sinks_conftest"]

T = TypeVar("T")

# The person deleted, and another who must keep every row. Distinct enough to be searched for in any column.
GONE_USER, GONE_ANONYMOUS, GONE_EMAIL = "u-gone-7c1e", "a-gone-7c1e", "gone.7c1e@example.com"
KEPT_USER, KEPT_ANONYMOUS, KEPT_EMAIL = "u-kept-2b9d", "a-kept-2b9d", "kept.2b9d@example.com"
GONE_VALUES = (GONE_USER, GONE_ANONYMOUS, GONE_EMAIL)


def notice_json(
    regulation_id: str = "17",
    user_id: str = GONE_USER,
    anonymous_id: str = GONE_ANONYMOUS,
    audiences: tuple[str, ...] = ("big_spenders", "churn_risk"),
) -> bytes:
    """A notice as the engine writes it: the person's `Audience Exited` events, then the `delete` event."""
    person = {"userId": user_id, "anonymousId": anonymous_id, "timestamp": "2024-06-01T08:00:00Z"}
    exits = [
        {
            "type": "track",
            "event": "Audience Exited",
            "messageId": f"engage-exit-{regulation_id}-{key}",
            "properties": {"audience_key": key, key: False},
            **person,
        }
        for key in audiences
    ]
    delete = {
        "type": "delete",
        "messageId": f"regulation-{regulation_id}-delete",
        "context": {"regulation": {"id": regulation_id, "type": "SUPPRESS_WITH_DELETE"}},
        **person,
    }
    identifiers = [
        {"type": "user_id", "value": user_id},
        {"type": "anonymous_id", "value": anonymous_id},
        {"type": "email", "value": GONE_EMAIL},
        {"type": "user_id", "value": user_id},  # named twice: user_ids holds it once
    ]
    return orjson.dumps({"regulationId": regulation_id, "identifiers": identifiers, "events": [*exits, delete]})


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(scenario())


# -- the notice ---------------------------------------------------------------------------------------------------


def test_a_notice_reads_its_identifiers_and_events() -> None:
    notice = DeletionNotice.from_json(notice_json(anonymous_id="a-2"))
    assert notice.regulation_id == "17"
    assert notice.user_ids == (GONE_USER,)
    assert notice.anonymous_ids == ("a-2",)
    assert ("email", GONE_EMAIL) in notice.identifiers
    events = [orjson.loads(event) for event in notice.events]
    assert [event.get("event", event["type"]) for event in events] == ["Audience Exited", "Audience Exited", "delete"]
    assert events[-1]["context"]["regulation"] == {"id": "17", "type": "SUPPRESS_WITH_DELETE"}


def test_user_and_anonymous_ids_are_sorted_and_unique() -> None:
    notice = DeletionNotice("1", (("user_id", "b"), ("anonymous_id", "z"), ("user_id", "a"), ("user_id", "b")), ())
    assert notice.user_ids == ("a", "b")
    assert notice.anonymous_ids == ("z",)


def notice_with(**fields: Any) -> bytes:
    valid = orjson.loads(notice_json())
    return orjson.dumps({**valid, **fields})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "deletion notice: not JSON"),
        (b"[]", "deletion notice: must be a JSON object"),
        (notice_with(regulationId=None), "regulationId: must be a non-empty string"),
        (notice_with(regulationId=17), "regulationId: must be a non-empty string"),
        (notice_with(identifiers={"user_id": "u"}), "identifiers: must be a list of objects"),
        (notice_with(identifiers=["user_id:u"]), "identifiers[0]: must be an object"),
        (notice_with(identifiers=[{"type": "user_id"}]), "identifiers[0].value: must be a non-empty string"),
        (notice_with(identifiers=[{"type": "", "value": "u"}]), "identifiers[0].type: must be a non-empty string"),
        (notice_with(events=None), "events: must be a list of objects"),
        (notice_with(events=[]), "events: must hold at least the delete event"),
        (notice_with(events=[{"type": "delete"}]), "events[0].messageId: must be a non-empty string"),
        (notice_with(events=[{"type": "delete", "messageId": "m"}, 3]), "events[1]: must be an object"),
    ],
)
def test_a_bad_notice_is_refused_naming_the_field(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        DeletionNotice.from_json(data)


# -- the webhook --------------------------------------------------------------------------------------------------


def webhook_to(sink: WebhookSink, secret: str) -> WebhookDestination:
    settings = WebhookSettings(url=URL(sink.url), secrets=(secret,), timeout_secs=2.0, allow_entries=("127.0.0.1",))
    return WebhookDestination("hooks", settings)


def send(destination: WebhookDestination, *notices: DeletionNotice) -> list[Exception | None]:
    """Sends the notices in turn on one loop; None for each one delivered."""

    async def scenario() -> list[Exception | None]:
        outcomes: list[Exception | None] = []
        try:
            for notice in notices:
                try:
                    await destination.delete(notice)
                    outcomes.append(None)
                except (RetryableError, PermanentError) as error:
                    outcomes.append(error)
        finally:
            await destination.close()
        return outcomes

    return run(scenario)


def test_the_receiver_gets_the_audience_exits_then_the_delete_event_signed(webhook_sink: WebhookSink) -> None:
    secret = new_secret()
    notice = DeletionNotice.from_json(notice_json())
    assert send(webhook_to(webhook_sink, secret), notice) == [None]
    (request,) = webhook_sink.requests
    received = standardwebhooks.Webhook(secret).verify(request.body, request.headers)
    assert received == [orjson.loads(event) for event in notice.events]
    assert [(event["type"], event.get("event")) for event in received] == [
        ("track", "Audience Exited"),
        ("track", "Audience Exited"),
        ("delete", None),
    ]
    assert received[-1]["userId"] == GONE_USER and received[-1]["anonymousId"] == GONE_ANONYMOUS
    assert request.headers["content-type"] == "application/json"


def test_a_500_is_retryable_and_the_retry_keeps_the_webhook_id(webhook_sink: WebhookSink) -> None:
    webhook_sink.script([Reply(500, body=b"down")])
    notice = DeletionNotice.from_json(notice_json())
    failed, retried = send(webhook_to(webhook_sink, new_secret()), notice, notice)
    assert isinstance(failed, RetryableError) and failed.reason == f"HTTP 500 from {webhook_sink.address}: down"
    assert retried is None
    first, second = webhook_sink.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]  # the receiver can deduplicate
    assert first.body == second.body


def test_a_400_is_permanent(webhook_sink: WebhookSink) -> None:
    webhook_sink.respond(Reply(400, body=b"unknown user"))
    (error,) = send(webhook_to(webhook_sink, new_secret()), DeletionNotice.from_json(notice_json()))
    assert type(error) is PermanentError
    assert error.reason == f"HTTP 400 from {webhook_sink.address}: unknown user"


def test_a_413_sends_the_events_again_in_halves_the_delete_event_still_last(webhook_sink: WebhookSink) -> None:
    secret = new_secret()
    webhook_sink.script([413])
    notice = DeletionNotice.from_json(notice_json())
    assert send(webhook_to(webhook_sink, secret), notice) == [None]
    refused, *accepted = webhook_sink.requests
    assert refused.reply.status == 413
    received = [
        event
        for request in accepted
        for event in standardwebhooks.Webhook(secret).verify(request.body, request.headers)
    ]
    assert received == [orjson.loads(event) for event in notice.events]
    assert len(accepted) == 2


def test_a_single_event_too_large_is_permanent(webhook_sink: WebhookSink) -> None:
    webhook_sink.respond(413)
    (error,) = send(webhook_to(webhook_sink, new_secret()), DeletionNotice.from_json(notice_json(audiences=())))
    assert type(error) is PermanentError
    assert error.reason.startswith(f"HTTP 413 from {webhook_sink.address}")
    assert len(webhook_sink.requests) == 1


# -- the warehouse ------------------------------------------------------------------------------------------------


_message_numbers = itertools.count(1)


def call(call_type: str, at: int, **fields: Any) -> dict[str, Any]:
    """A Segment-Spec call as the engine stores it."""
    when = f"2024-05-01T12:00:{at:02d}Z"
    event = {
        "type": call_type,
        "messageId": f"msg-{next(_message_numbers)}",
        "timestamp": when,
        "receivedAt": when,
        "context": {"library": {"name": "analytics.js"}, "ip": "203.0.113.7"},
    }
    return event | fields


def load_two_people(database: PostgresDatabase) -> WarehouseDestination:
    """Both people's calls in every kind of table, loaded by the destination itself (three batches): the person to
    delete known by a user id and an anonymous id, some of their calls carrying only the anonymous id."""
    gone = {"userId": GONE_USER, "anonymousId": GONE_ANONYMOUS}
    kept = {"userId": KEPT_USER, "anonymousId": KEPT_ANONYMOUS}
    batches = [
        [
            call("identify", 0, **gone, traits={"email": GONE_EMAIL, "plan": "pro"}),
            call("identify", 1, **kept, traits={"email": KEPT_EMAIL, "plan": "free"}),
            call("page", 2, anonymousId=GONE_ANONYMOUS, name="Home", properties={"path": "/"}),
            call("page", 3, anonymousId=KEPT_ANONYMOUS, name="Home", properties={"path": "/"}),
        ],
        [
            call("track", 4, userId=GONE_USER, event="Order Completed", properties={"total": 42.5}),
            call("track", 5, userId=KEPT_USER, event="Order Completed", properties={"total": 9.5}),
            call("track", 6, anonymousId=GONE_ANONYMOUS, event="Signed Up", properties={"plan": "pro"}),
            call("screen", 7, **kept, name="Dashboard"),
            call("group", 8, userId=GONE_USER, groupId="g-1", traits={"name": "Initech"}),
            call("alias", 9, userId=GONE_USER, previousId=GONE_ANONYMOUS),
        ],
        [
            call("identify", 10, userId=GONE_USER, traits={"company": "Initech"}),
            call("track", 11, **kept, event="Signed Up", properties={"plan": "free"}),
        ],
    ]
    kind = WarehouseKind()
    destination = kind.create("warehouse-test", kind.validate({"dsn": database.dsn, "allow": ["127.0.0.1"]}))

    async def deliver() -> None:
        for events in batches:
            await destination.deliver(Batch.of_events("warehouse-test", events, [e["messageId"] for e in events]))

    run(deliver)
    # A table made by hand with no column naming a person: left as it is.
    database.execute("CREATE TABLE tributary.notes (id text PRIMARY KEY, body text)")
    database.execute("INSERT INTO tributary.notes VALUES ('n-1', 'quarterly review')")
    return destination


def every_row(database: PostgresDatabase) -> dict[str, Counter[str]]:
    """Table → each row of it as text (every column, whatever its type), for every table of the schema."""
    return {
        table: Counter(text for (text,) in database.query(f'SELECT r::text FROM tributary."{table}" AS r'))
        for table in sorted(database.tables())
    }


def names_the_gone_person(row: str) -> bool:
    return any(value in row for value in GONE_VALUES)


def delete_with(destination: WarehouseDestination, notice: DeletionNotice) -> dict[str, int]:
    async def delete() -> dict[str, int]:
        try:
            await destination.delete(notice)
            return destination.last_deletion
        finally:
            await destination.close()

    return run(delete)


def test_deleting_a_person_removes_their_rows_from_every_table_and_no_one_elses(postgres: PostgresDatabase) -> None:
    destination = load_two_people(postgres)
    before = every_row(postgres)
    gone_rows = {
        table: sum(n for row, n in rows.items() if names_the_gone_person(row)) for table, rows in before.items()
    }
    # Every kind of table holds some of the person, the users table included (by its id only).
    assert {table for table, count in gone_rows.items() if count} == {
        "identifies", "users", "pages", "tracks", "order_completed", "signed_up", "groups", "aliases",
    }  # fmt: skip

    deleted = delete_with(destination, DeletionNotice.from_json(notice_json()))

    after = every_row(postgres)
    for table, rows in before.items():
        kept = Counter({row: n for row, n in rows.items() if not names_the_gone_person(row)})
        assert after[table] == kept, f"{table}: exactly the other person's rows are left"
    assert any(KEPT_USER in row for row in after["users"])
    assert deleted == {table: count for table, count in gone_rows.items() if table != "notes"}


def test_deleting_again_deletes_nothing_more(postgres: PostgresDatabase) -> None:
    destination = load_two_people(postgres)
    notice = DeletionNotice.from_json(notice_json())
    first = delete_with(destination, notice)
    left = every_row(postgres)
    second = delete_with(destination, notice)
    assert sum(first.values()) > 0
    assert second == dict.fromkeys(first, 0)
    assert every_row(postgres) == left


def test_a_deletion_logs_counts_never_identifiers(postgres: PostgresDatabase, caplog: pytest.LogCaptureFixture) -> None:
    destination = load_two_people(postgres)
    caplog.set_level(logging.DEBUG)
    delete_with(destination, DeletionNotice.from_json(notice_json()))
    assert "regulation 17 deleted rows" in caplog.text
    for value in GONE_VALUES:
        assert value not in caplog.text


LOADER = "application_name = 'tributary:warehouse-test'"


async def wait_for_loader_on_a_lock(database: PostgresDatabase) -> None:
    for _ in range(1000):
        waiting = database.query(f"SELECT count(*) FROM pg_stat_activity WHERE {LOADER} AND wait_event_type = 'Lock'")
        if waiting[0][0]:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the delivery never waited on the lock")


def test_a_deletion_waits_for_the_delivery_in_progress_and_outlives_its_failure(postgres: PostgresDatabase) -> None:
    # The worker's delivery and the deletion share the destination's one connection. The delivery is held inside
    # its transaction (its COPY waits on a table locked by another session), the deletion is asked for then, and the
    # delivery's connection is killed: the deletion, had it joined that transaction, would fail with it.
    destination = load_two_people(postgres)
    order = call("track", 12, userId=KEPT_USER, event="Order Completed", properties={"total": 1.0})

    async def scenario() -> None:
        locker = await psycopg.AsyncConnection.connect(postgres.dsn)
        try:
            await locker.execute("LOCK TABLE tributary.order_completed IN ACCESS EXCLUSIVE MODE")
            delivery = asyncio.create_task(
                destination.deliver(Batch.of_events("warehouse-test", [order], [order["messageId"]]))
            )
            await wait_for_loader_on_a_lock(postgres)
            deletion = asyncio.create_task(destination.delete(DeletionNotice.from_json(notice_json())))
            await asyncio.sleep(0.1)  # the deletion starts, and waits
            postgres.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {LOADER}")
            with pytest.raises(RetryableError, match="order_completed"):
                await delivery
            await locker.commit()  # the deletion (on a fresh connection) deletes from it too
            await asyncio.wait_for(deletion, timeout=20)
        finally:
            await locker.close()
            await destination.close()

    run(scenario)
    assert not any(names_the_gone_person(row) for rows in every_row(postgres).values() for row in rows)


def test_a_refused_connection_is_retryable(postgres: PostgresDatabase) -> None:
    with socket.socket() as unused:  # a loopback port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    kind = WarehouseKind()
    dsn = f"postgresql://postgres@127.0.0.1:{port}/{postgres.name}"
    destination = kind.create("warehouse-test", kind.validate({"dsn": dsn, "allow": ["127.0.0.1"]}))
    with pytest.raises(RetryableError, match=r"warehouse connecting: .*refused"):
        delete_with(destination, DeletionNotice.from_json(notice_json()))
    assert destination.last_deletion == {}


# -- which destinations accept one ----------------------------------------------------------------------------------


def test_webhook_and_warehouse_accept_notices_files_and_nats_do_not(tmp_path: Path) -> None:
    webhook = WebhookDestination(
        "hooks", WebhookSettings(url=URL("https://hooks.example.com/"), secrets=(new_secret(),))
    )
    warehouse = WarehouseKind().create("wh", {"dsn": "postgresql://u@8.8.8.8/db"})
    files = FilesKind().create("files", {"directory": str(tmp_path)})
    nats = NatsKind().create("nats", {"url": "nats://127.0.0.1:4222", "allow": ["127.0.0.1"]})
    assert accepts_deletion(webhook) and accepts_deletion(warehouse)
    assert not accepts_deletion(files) and not accepts_deletion(nats)

    class BlockingDelete:
        def delete(self, notice: DeletionNotice) -> None: ...

    assert not accepts_deletion(BlockingDelete())  # the delivery loop awaits `delete`: a plain function is not one
