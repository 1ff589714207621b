"""`cdp audience …` and `cdp trait …` against a real server: what a marketer types, what they see."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from rpc import IDENTIFY, Rpc, track, ts
from test_cli import admin, cdp, cli_env, json_out
from tributary._proto.cdp.v1 import event_pb2, ingest_pb2, profile_pb2

if TYPE_CHECKING:
    from conftest import ServerProcess

DAY_MS = 86_400_000
NOW_MS = 1_748_779_200_000  # 2025-06-01T12:00:00Z
AT = ["--at", "2025-06-01T12:00:00Z"]


def seed(server: ServerProcess) -> None:
    """u0..u5: even users are on 'pro'; user n ordered n times, every 7 days back from now."""
    events = []
    for n in range(6):
        plan = "pro" if n % 2 == 0 else "free"
        events.append(
            event_pb2.Event(
                type=IDENTIFY,
                message_id=f"id-{n}",
                user_id=f"u{n}",
                traits=json.dumps({"plan": plan}).encode(),
                timestamp=ts(NOW_MS - 100 * DAY_MS),
            )
        )
        for k in range(n):
            events.append(
                track(
                    f"o-{n}-{k}", user_id=f"u{n}", properties={"price": 10 * k}, timestamp=ts(NOW_MS - 7 * k * DAY_MS)
                )
            )
    rpc = Rpc(server)
    try:
        results = rpc.send(events).results
        assert [r.status for r in results] == [ingest_pb2.EVENT_STATUS_ACCEPTED] * len(events)
    finally:
        rpc.close()


def user_ids(server: ServerProcess, profile_ids: list[str]) -> set[str]:
    rpc = Rpc(server)
    try:
        found = set()
        for profile_id in profile_ids:
            request = profile_pb2.GetProfileRequest(identifier=profile_id)
            reply = rpc.profile.GetProfile(request, metadata=server.admin_metadata, timeout=30)
            found |= {i.value for i in reply.profile.identifiers if i.type == "user_id"}
        return found
    finally:
        rpc.close()


def test_a_marketer_previews_saves_lists_and_reads_an_audience(server: ServerProcess) -> None:
    seed(server)
    query = "trait('plan') = 'pro' AND event('Order Completed').within(30 days).count() >= 3"
    preview = cdp("audience", "preview", "-q", query, *AT, "--json", *admin(server))
    assert preview.returncode == 0, preview.stderr
    found = json_out(preview)
    # u4 ordered at 0, 7, 14, 21 days back (4 in 30 days) and is on pro; u2 has only 2 orders.
    assert found["count"] == 1
    assert user_ids(server, [m["id"] for m in found["sample"]]) == {"u4"}

    created = cdp("audience", "create", "loyal_pro", "-q", query, "--name", "Loyal pro", *admin(server))
    assert created.returncode == 0, created.stderr
    assert "Created audience loyal_pro" in created.stderr
    listed = json_out(cdp("audience", "list", "--json", *admin(server)))
    assert [(d["key"], d["type"], d["name"]) for d in listed] == [("loyal_pro", "audience", "Loyal pro")]

    members = cdp("audience", "members", "loyal_pro", *AT, *admin(server))
    assert members.returncode == 0, members.stderr
    assert user_ids(server, members.stdout.split()) == {"u4"}
    yes = cdp("audience", "check", "loyal_pro", "user_id:u4", *AT, "--json", *admin(server))
    no = cdp("audience", "check", "loyal_pro", "user_id:u5", *AT, "--json", *admin(server))
    assert (json_out(yes)["member"], json_out(no)["member"]) == (True, False)
    # A year later nobody has ordered in the last 30 days.
    later = cdp("audience", "check", "loyal_pro", "user_id:u4", "--at", "2026-06-01T12:00:00Z", *admin(server))
    assert "is not a member of loyal_pro" in later.stdout

    deleted = cdp("audience", "delete", "loyal_pro", *admin(server))
    assert deleted.returncode == 0, deleted.stderr
    gone = cdp("audience", "show", "loyal_pro", *admin(server))
    assert gone.returncode == 1 and 'no audience or computed trait keyed "loyal_pro"' in gone.stderr


def test_a_computed_trait_reports_a_value_per_profile(server: ServerProcess) -> None:
    seed(server)
    created = cdp("trait", "create", "spend", "-q", "event('Order Completed').sum(property('price'))", *admin(server))
    assert created.returncode == 0, created.stderr
    value = cdp("audience", "check", "spend", "user_id:u3", "--json", *admin(server))
    assert json_out(value)["value"] == 30.0  # 0 + 10 + 20
    # Another definition reads it as a trait.
    rich = cdp("audience", "preview", "-q", "trait('spend') >= 60", "--json", *admin(server))
    assert user_ids(server, [m["id"] for m in json_out(rich)["sample"]]) == {"u4", "u5"}


def test_a_query_error_is_shown_with_a_caret_under_its_column(server: ServerProcess) -> None:
    result = cdp("audience", "create", "broken", "-q", "trait('plan') = 'pro' AND event('X').count(", *admin(server))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert "line 1, column 44" in lines[0], result.stderr
    assert lines[-2:] == ["trait('plan') = 'pro' AND event('X').count(", " " * 43 + "^"]
    assert json_out(cdp("audience", "list", "--json", *admin(server))) == [], "nothing half-valid is stored"


def test_at_must_be_a_time_with_a_zone(server: ServerProcess) -> None:
    result = cdp("audience", "preview", "-q", "trait('a').exists()", "--at", "2025-06-01T12:00:00", *admin(server))
    assert result.returncode == 1
    assert "--at" in result.stderr and "no time zone" in result.stderr


def test_why_shows_each_condition_with_its_numbers_and_events(server: ServerProcess) -> None:
    seed(server)
    query = "trait('plan') = 'pro' AND event('Order Completed').within(30 days).count() >= 3"
    assert cdp("audience", "create", "loyal", "-q", query, *admin(server)).returncode == 0
    found = json_out(cdp("audience", "why", "loyal", "user_id:u4", *AT, "--json", *admin(server)))
    assert found["member"] is True
    root, plan, orders = found["conditions"]
    assert (root["depth"], root["holds"]) == (0, True)
    assert (plan["query"], plan["value"], plan["operand"], plan["holds"]) == (
        "trait('plan') = 'pro'",
        "pro",
        "pro",
        True,
    )
    # u4 ordered 0, 7, 14 and 21 days before AT: 4 in 30 days, with their message ids.
    assert (orders["value"], orders["operand"], orders["events_total"]) == (4, 3, 4)
    assert orders["message_ids"] == ["o-4-3", "o-4-2", "o-4-1", "o-4-0"]
    no = json_out(cdp("audience", "why", "loyal", "user_id:u3", *AT, "--json", *admin(server)))
    assert no["member"] is False
    assert [c["holds"] for c in no["conditions"]] == [False, False, True]
    text = cdp("audience", "why", "loyal", "user_id:u3", *AT, *admin(server)).stdout
    assert "is not a member of loyal" in text and '(value "free", compared with "pro")' in text


def test_update_re_evaluates_and_watch_streams_the_changes(server: ServerProcess) -> None:
    seed(server)
    assert (
        cdp("audience", "create", "buyers", "-q", "event('Order Completed').count() >= 5", *admin(server)).returncode
        == 0
    )
    watcher = subprocess.Popen(
        [sys.executable, "-m", "cdp_server", "audience", "watch", "buyers", "--json", *admin(server)],
        env=cli_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # the watch is listening
        updated = cdp("audience", "update", "buyers", "-q", "event('Order Completed').count() >= 4", *admin(server))
        assert updated.returncode == 0, updated.stderr
        assert watcher.stdout is not None
        line = json.loads(watcher.stdout.readline())
        assert (line["event"], line["key"], line["identifier"]) == ("Audience Entered", "buyers", "user_id:u4")
    finally:
        watcher.terminate()
        watcher.communicate(timeout=10)
    shown = json_out(cdp("audience", "show", "buyers", "--json", *admin(server)))
    assert shown["query"] == "event('Order Completed').count() >= 4"
