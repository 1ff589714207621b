"""`GET /health` on the HTTP port: no credentials, 200 while serving, and how far storage and the
identifier index have got."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from test_http_tracking import post


def health(server: Any) -> tuple[int, dict[str, Any]]:
    with urllib.request.urlopen(server.http_url + "/health", timeout=10) as response:
        return response.status, json.loads(response.read())


def test_health_answers_without_credentials_and_counts_stored_events(server: Any) -> None:
    status, before = health(server)
    assert status == 200 and before["status"] == "serving" and before["ingest"] == "ok"
    batch = {"batch": [{"type": "track", "userId": "u", "event": "e"} for _ in range(3)]}
    assert post(server, "/v1/batch", batch, key=server.write_key)[0] == 200
    _, after = health(server)
    assert after["storage"]["events"] == before["storage"]["events"] + 3
    assert after["storage"]["map_bytes"] > 0
    assert 0 <= after["index"]["unflushed_events"] <= after["storage"]["events"]
