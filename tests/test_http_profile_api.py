"""Segment's Profile API on the HTTP port of a real `cdp serve`: every route in Segment's shapes,
its parameters, paging, a read token made by `cdp token create`, and each error status with
Segment's error body and a Request-Id header."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
from typing import Any

import pytest
from http_client import get, post

USERS = "/v1/spaces/default/collections/users/profiles"


def send(server: Any, path: str, body: dict[str, Any]) -> None:
    status, reply, _ = post(server, path, body, key=server.write_key)
    assert (status, reply) == (200, {"success": True}), reply


def shop(server: Any) -> None:
    """Ann browses anonymously, signs up, orders twice and joins an account."""
    send(server, "/v1/page", {"anonymousId": "anon-1", "name": "Home", "timestamp": "2026-01-01T10:00:00Z"})
    send(
        server,
        "/v1/identify",
        {
            "anonymousId": "anon-1",
            "userId": "ann",
            "traits": {"email": "ann@shop.test", "plan": "pro", "age": 41, "city": "Oslo"},
            "timestamp": "2026-01-02T10:00:00Z",
        },
    )
    for day, revenue in ((3, 10), (4, 25)):
        send(
            server,
            "/v1/track",
            {
                "userId": "ann",
                "event": "Order Completed",
                "properties": {"revenue": revenue},
                "timestamp": f"2026-01-0{day}T10:00:00Z",
            },
        )
    send(server, "/v1/group", {"userId": "ann", "groupId": "acme", "traits": {"name": "Acme", "seats": 5}})


def test_traits_as_segment_returns_them_with_include_verbose_and_pages(server: Any) -> None:
    shop(server)
    token = server.admin_token
    status, body, headers = get(server, f"{USERS}/user_id:ann/traits", token=token)
    assert status == 200 and headers.get("request-id")
    assert body == {
        "traits": {"age": 41, "city": "Oslo", "email": "ann@shop.test", "plan": "pro"},
        "cursor": {"url": f"{USERS}/user_id:ann/traits", "has_more": False, "next": "", "limit": 10},
    }
    # Any identifier of the profile finds it, and so does its id.
    by_email = get(server, f"{USERS}/email:ann@shop.test/traits?include=plan,age", token=token)[1]
    assert by_email is not None and by_email["traits"] == {"age": 41, "plan": "pro"}
    verbose = get(server, f"{USERS}/anonymous_id:anon-1/traits?include=plan&verbose=true", token=token)[1]
    assert verbose is not None
    assert verbose["traits"]["plan"]["value"] == "pro"
    assert verbose["traits"]["plan"]["source_id"] == "1"
    assert verbose["traits"]["plan"]["updated_at"] == "2026-01-02T10:00:00Z"
    # Pages of two traits, in name order.
    first = get(server, f"{USERS}/user_id:ann/traits?limit=2", token=token)[1]
    assert first is not None and list(first["traits"]) == ["age", "city"]
    assert first["cursor"]["has_more"] and first["cursor"]["next"] == "city"
    second = get(server, f"{USERS}/user_id:ann/traits?limit=2&next=city", token=token)[1]
    assert second is not None and list(second["traits"]) == ["email", "plan"]
    assert not second["cursor"]["has_more"]
    # No audiences or computed traits exist yet: those classes are empty, not an error.
    audiences = get(server, f"{USERS}/user_id:ann/traits?class=audience", token=token)[1]
    assert audiences is not None and audiences["traits"] == {}


def test_events_newest_first_with_sort_filters_time_window_and_cursor(server: Any) -> None:
    shop(server)
    token = server.admin_token
    status, body, _ = get(server, f"{USERS}/user_id:ann/events", token=token)
    assert status == 200 and body is not None
    kinds = [(e["type"], e.get("event")) for e in body["data"]]
    # Newest first by the events' own time; the page call is named as Engage names it.
    assert kinds[1:] == [
        ("track", "Order Completed"),
        ("track", "Order Completed"),
        ("identify", None),
        ("page", "Page Viewed"),
    ]
    order = body["data"][1]
    assert order["properties"] == {"revenue": 25} and order["source_id"] == "1"
    assert order["timestamp"] == "2026-01-04T10:00:00Z" and order["user_id"] == "ann"
    ascending = get(server, f"{USERS}/user_id:ann/events?sort=asc&limit=2", token=token)[1]
    assert ascending is not None
    assert [e["type"] for e in ascending["data"]] == ["page", "identify"]
    assert ascending["cursor"]["has_more"]
    rest = get(server, f"{USERS}/user_id:ann/events?sort=asc&limit=2&next={ascending['cursor']['next']}", token=token)[
        1
    ]
    assert rest is not None and [e.get("event") for e in rest["data"]] == ["Order Completed", "Order Completed"]
    only = get(server, f"{USERS}/user_id:ann/events?include=Order%20Completed", token=token)[1]
    assert only is not None and len(only["data"]) == 2
    window = urllib.parse.urlencode({"start": "2026-01-02T00:00:00Z", "end": "2026-01-04T00:00:00Z"})
    between = get(server, f"{USERS}/user_id:ann/events?{window}", token=token)[1]
    assert between is not None
    assert [e["timestamp"] for e in between["data"]] == ["2026-01-03T10:00:00Z", "2026-01-02T10:00:00Z"]


def test_external_ids_links_metadata_and_accounts(server: Any) -> None:
    shop(server)
    token = server.admin_token
    ids = get(server, f"{USERS}/user_id:ann/external_ids?verbose=true", token=token)[1]
    assert ids is not None
    found = {(i["type"], i["id"]) for i in ids["data"]}
    assert found == {("anonymous_id", "anon-1"), ("user_id", "ann"), ("email", "ann@shop.test")}
    first = next(i for i in ids["data"] if i["type"] == "anonymous_id")
    assert first["collection"] == "users" and first["encoding"] == "none" and first["source_id"] == "1"
    assert first["created_at"] == "2026-01-01T10:00:00Z" and first["first_message_id"]
    emails = get(server, f"{USERS}/user_id:ann/external_ids?include=email", token=token)[1]
    assert emails is not None and [i["type"] for i in emails["data"]] == ["email"]

    links = get(server, f"{USERS}/user_id:ann/links", token=token)[1]
    assert links is not None
    assert links["data"][0]["to_collection"] == "accounts"
    assert links["data"][0]["external_ids"][0]["id"] == "acme"
    assert links["data"][0]["traits"] == {"name": "Acme", "seats": 5}

    metadata = get(server, f"{USERS}/user_id:ann/metadata", token=token)[1]
    assert metadata is not None
    meta = metadata["metadata"]
    assert meta["first_source_id"] == "1" and meta["created_at"] <= meta["updated_at"]
    assert meta["first_message_id"] != meta["last_message_id"]

    accounts = "/v1/spaces/default/collections/accounts/profiles/group_id:acme"
    account_traits = get(server, f"{accounts}/traits", token=token)[1]
    assert account_traits is not None and account_traits["traits"] == {"name": "Acme", "seats": 5}
    users = get(server, f"{accounts}/links", token=token)[1]
    assert users is not None
    assert {(i["type"], i["id"]) for i in users["data"][0]["external_ids"]} == found


def test_a_read_token_from_cdp_token_create_reads_profiles_and_nothing_else(server: Any) -> None:
    shop(server)
    made = subprocess.run(
        [sys.executable, "-m", "cdp_server", "token", "create", "--role", "read", "--target", server.target],
        env={"TRIBUTARY_ADMIN_TOKEN": server.admin_token, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    read_token = made.stdout.strip()
    assert read_token.startswith("ta_")
    assert get(server, f"{USERS}/user_id:ann/traits", token=read_token)[0] == 200
    # A read token is not an admin token: not for the debugger (403: a valid token without the
    # role), not for gRPC administration.
    assert get(server, "/debugger/api/sources", bearer=read_token)[0] == 403
    listed = subprocess.run(
        [sys.executable, "-m", "cdp_server", "token", "list", "--json", "--target", server.target],
        env={"TRIBUTARY_ADMIN_TOKEN": read_token, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert listed.returncode != 0 and "needs an admin token; this token's role is read" in listed.stderr
    as_admin = subprocess.run(
        [sys.executable, "-m", "cdp_server", "token", "list", "--json", "--target", server.target],
        env={"TRIBUTARY_ADMIN_TOKEN": server.admin_token, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert [(t["name"], t["role"]) for t in json.loads(as_admin.stdout)] == [("read", "read")]


@pytest.mark.parametrize(
    ("path", "token", "status", "code"),
    [
        (f"{USERS}/user_id:ann/traits", None, 401, "authentication_error"),
        (f"{USERS}/user_id:ann/traits", "wrong-token", 401, "authentication_error"),
        (f"{USERS}/user_id:nobody/traits", "ADMIN", 404, "not_found"),
        (f"{USERS}/tp_00000000000000000000000000/events", "ADMIN", 404, "not_found"),
        ("/v1/spaces/other/collections/users/profiles/user_id:ann/traits", "ADMIN", 404, "not_found"),
        ("/v1/spaces/default/collections/robots/profiles/user_id:ann/traits", "ADMIN", 404, "not_found"),
        (f"{USERS}/user_id:ann/favourites", "ADMIN", 404, "not_found"),
        (f"{USERS}/user_id:ann/traits?limit=0", "ADMIN", 400, "validation_error"),
        (f"{USERS}/user_id:ann/traits?limit=201", "ADMIN", 400, "validation_error"),
        (f"{USERS}/user_id:ann/traits?class=robots", "ADMIN", 400, "validation_error"),
        (f"{USERS}/user_id:ann/events?sort=sideways", "ADMIN", 400, "validation_error"),
        (f"{USERS}/user_id:ann/events?start=yesterday", "ADMIN", 400, "validation_error"),
        (f"{USERS}/user_id:ann/events?next=not-a-cursor", "ADMIN", 400, "validation_error"),
        (f"{USERS}/no-colon/traits", "ADMIN", 400, "validation_error"),
        ("/v1/spaces/default/collections/accounts/profiles/user_id:ann/traits", "ADMIN", 400, "validation_error"),
    ],
)
def test_errors_have_segments_status_code_and_body(
    server: Any, path: str, token: str | None, status: int, code: str
) -> None:
    shop(server)
    got, body, headers = get(server, path, token=server.admin_token if token == "ADMIN" else token)
    assert (got, body is not None and body["error"]["code"]) == (status, code), body
    assert body is not None and body["error"]["message"]
    assert headers.get("request-id")


def test_past_the_rate_limit_the_answer_is_429_with_retry_after(server_factory: Any) -> None:
    server = server_factory({"TRIBUTARY_HTTP_RATE_LIMIT": "5"})
    shop(server)
    statuses = [get(server, f"{USERS}/user_id:ann/traits", token=server.admin_token) for _ in range(12)]
    limited = [(body, headers) for status, body, headers in statuses if status == 429]
    assert limited, [s for s, _, _ in statuses]
    body, headers = limited[0]
    assert body is not None and body["error"]["code"] == "rate_limit_error"
    assert int(headers["retry-after"]) >= 1
