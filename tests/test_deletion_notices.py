"""Deletion notices at the destinations that act on them, against real parts: the webhook sends the notice's events,
signed, to a real receiver on 127.0.0.1 (tests/webhook_sink.py), checked with the independent `standardwebhooks`
package; bad notices are refused naming the field."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import orjson
import pytest
import standardwebhooks
from webhook_sink import Reply, WebhookSink
from yarl import URL

from cdp_server.destinations.base import PermanentError, RetryableError
from cdp_server.destinations.deletion import DeletionNotice
from cdp_server.destinations.signing import new_secret
from cdp_server.destinations.webhook import WebhookDestination, WebhookSettings

# sinks_conftest.py: a receiver on 127.0.0.1.
pytest_plugins = ["sinks_conftest"]

T = TypeVar("T")

GONE_USER, GONE_ANONYMOUS, GONE_EMAIL = "u-gone-7c1e", "a-gone-7c1e", "gone.7c1e@example.com"


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
