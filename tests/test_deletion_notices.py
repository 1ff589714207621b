"""Deletion notices as the engine hands them to destinations: read from JSON, bad ones refused naming the field."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from cdp_server.destinations.deletion import DeletionNotice

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
