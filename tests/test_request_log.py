"""Logs: with `--log-requests` every HTTP request gets one line (method, path, status, duration)
carrying the Request-Id its response had; `--log-format text` writes lines for people."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from http_client import get, post

from cdp_server import logs


def request_lines(server: Any) -> list[dict[str, Any]]:
    entries = []
    for line in server.log_path.read_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "tributary.http":
                entries.append(entry)
    return entries


def test_each_request_is_logged_as_json_with_its_request_id(server_factory: Any) -> None:
    server = server_factory({"TRIBUTARY_LOG_REQUESTS": "true"})
    status, _, headers = post(server, "/v1/track", {"userId": "u", "event": "Clicked"}, key=server.write_key)
    assert status == 200
    missing = get(server, "/v1/spaces/default/collections/users/profiles/user_id:nobody/traits", token="bad")
    deadline = time.monotonic() + 5
    while len(request_lines(server)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    track, profile = request_lines(server)[-2:]
    assert (track["method"], track["path"], track["status"]) == ("POST", "/v1/track", 200)
    assert track["request_id"] == headers["request-id"] and track["duration_ms"] >= 0
    assert (profile["status"], profile["request_id"]) == (401, missing[2]["request-id"])


def test_requests_are_not_logged_unless_asked(server: Any) -> None:
    assert post(server, "/v1/track", {"userId": "u", "event": "Clicked"}, key=server.write_key)[0] == 200
    time.sleep(0.2)
    assert request_lines(server) == []


def test_the_text_format_is_one_readable_line_with_the_fields() -> None:
    record = logging.makeLogRecord({"name": "cdp", "levelname": "INFO", "msg": "serving", "grpc": "127.0.0.1:1"})
    line = logs.TextFormatter().format(record)
    assert line.endswith(" INFO cdp: serving grpc=127.0.0.1:1") and "\n" not in line
