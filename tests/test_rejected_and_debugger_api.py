"""The rejected store and the debugger's routes on a real `cdp serve`: events Segment would drop
after a 200 are kept with their reason, counted per source and reason, listed by `cdp rejected
list` and kept across a restart; the debugger's stream carries stored and rejected events live,
and an event's detail says which profile it landed in and why."""

from __future__ import annotations

import json
import queue
import threading
import urllib.request
from typing import Any

from cli_runner import cdp
from http_client import get, post

BAD_BATCH = {
    "batch": [
        {"type": "track", "userId": "u1", "event": "Fine"},
        {"type": "track", "event": "Nobody", "messageId": "m-nobody", "properties": {"x": 1}},
        {"type": "track", "userId": "u1", "messageId": "m-nameless"},
        {"type": "identify", "anonymousId": "a1", "messageId": "m-nobody-2"},
        "not an object",
    ]
}


def test_refused_events_are_kept_counted_listed_and_survive_a_restart(server: Any) -> None:
    other_key = cdp(server, "source", "create", "mobile").stdout.strip()
    status, body, _ = post(server, "/v1/batch", BAD_BATCH, key=server.write_key)
    assert status == 200 and body is not None and len(body["rejected"]) == 3
    # The identify has an anonymousId: it is fine. The other source sends one refused event.
    assert post(server, "/v1/track", {"event": "Nobody either"}, key=other_key)[0] == 200

    listed = json.loads(cdp(server, "rejected", "list", "--json").stdout)
    rows = [(r["source"], r["field"], r["message_id"]) for r in listed["rejected"]]
    web = "development"  # the source of the test server's write key
    assert rows == [
        ("mobile", "userId", ""),
        (web, "message", ""),
        (web, "event", "m-nameless"),
        (web, "userId", "m-nobody"),
    ]
    kept = listed["rejected"][3]
    assert kept["event"]["properties"] == {"x": 1} and kept["reason"] == "userId or anonymousId is required"
    assert listed["rejected"][1]["raw"] == '"not an object"'
    counts = {(c["source"], c["field"], c["count"]) for c in listed["counts"]}
    assert counts == {(web, "userId", 1), (web, "event", 1), (web, "message", 1), ("mobile", "userId", 1)}

    only_mobile = json.loads(cdp(server, "rejected", "list", "--source", "mobile", "--json").stdout)
    assert [r["source"] for r in only_mobile["rejected"]] == ["mobile"]
    assert [c["count"] for c in only_mobile["counts"]] == [1]
    unknown = cdp(server, "rejected", "list", "--source", "nope", check=False)
    assert unknown.returncode != 0 and "no source 'nope'" in unknown.stderr
    table = cdp(server, "rejected", "list").stdout
    assert "userId or anonymousId is required" in table

    server.stop()
    server.start()
    again = json.loads(cdp(server, "rejected", "list", "--json").stdout)
    assert again == listed


def read_stream(server: Any, into: queue.Queue[tuple[str, dict[str, Any]]], stop: threading.Event) -> None:
    """Parses the debugger's server-sent events into (event name, data) until `stop`."""
    request = urllib.request.Request(
        server.http_url + "/debugger/api/stream", headers={"Authorization": f"Bearer {server.admin_token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        name, data = "message", ""
        for raw in response:
            line = raw.decode().rstrip("\n")
            if stop.is_set():
                return
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data += line[len("data: ") :]
            elif line == "" and data:
                into.put((name, json.loads(data)))
                name, data = "message", ""


def test_the_stream_carries_stored_and_rejected_events_and_details_explain_identity(server: Any) -> None:
    key = server.write_key
    # Identity follows the events' own times (ties by messageId): these two are in order.
    identify = {"anonymousId": "anon-9", "traits": {"plan": "pro"}, "timestamp": "2026-03-01T10:00:00Z"}
    assert post(server, "/v1/identify", identify, key=key)[0] == 200
    events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    stop = threading.Event()
    reader = threading.Thread(target=read_stream, args=(server, events, stop), daemon=True)
    reader.start()
    # The backlog comes first: the identify sent before the page opened.
    name, first = events.get(timeout=10)
    assert name == "event" and first["event"]["anonymousId"] == "anon-9" and first["seq"] == 1
    # Then live: a login that merges, and a refused event.
    login = {
        "anonymousId": "anon-9",
        "userId": "zoe",
        "event": "Signed In",
        "messageId": "login-1",
        "timestamp": "2026-03-01T10:05:00Z",
    }
    assert post(server, "/v1/track", login, key=key)[0] == 200
    assert post(server, "/v1/track", {"event": "Ghost"}, key=key)[0] == 200
    seen = [events.get(timeout=10) for _ in range(2)]
    stop.set()
    by_name = {name: data for name, data in seen}
    assert by_name["event"]["event"]["messageId"] == "login-1" and by_name["event"]["source"]
    assert by_name["rejected"]["field"] == "userId" and by_name["rejected"]["event"]["event"] == "Ghost"

    status, detail, _ = get(server, f"/debugger/api/events/{by_name['event']['seq']}", bearer=server.admin_token)
    assert status == 200 and detail is not None
    identity = detail["identity"]
    assert identity["profile_id"].startswith("tp_")
    assert identity["new_identifiers"] == ["user_id:zoe"]
    assert {(i["type"], i["value"]) for i in identity["identifiers"]} == {
        ("anonymous_id", "anon-9"),
        ("user_id", "zoe"),
    }
    assert identity["decision"].startswith("Added user_id:zoe to tp_")
    assert detail["deliveries"] == []

    sources = get(server, "/debugger/api/sources", bearer=server.admin_token)[1]
    assert sources is not None
    assert [(s["received"], s["rejected"]) for s in sources["sources"]] == [(2, 1)]
    rejected = get(server, "/debugger/api/rejected?limit=5", bearer=server.admin_token)[1]
    assert rejected is not None and [r["event"]["event"] for r in rejected["rejected"]] == ["Ghost"]
    assert rejected["counts"][0]["count"] == 1


def test_debugger_routes_need_an_admin_token_and_the_page_needs_none(server: Any) -> None:
    for path in ("/debugger/api/stream", "/debugger/api/sources", "/debugger/api/rejected", "/debugger/api/events/1"):
        status, body, _ = get(server, path)
        assert status == 401 and body is not None and body["error"]["code"] == "authentication_error", path
        assert get(server, path, bearer="wrong")[0] == 401
    assert get(server, "/debugger/api/events/99", bearer=server.admin_token)[0] == 404
    assert get(server, "/debugger/api/events/x", bearer=server.admin_token)[0] == 400
    assert get(server, "/debugger/api/rejected?limit=lots", bearer=server.admin_token)[0] == 400
    with urllib.request.urlopen(server.http_url + "/debugger", timeout=10) as page:
        assert page.headers["content-type"].startswith("text/html")
        assert b"debugger.js" in page.read()
