"""HTTP calls of the tests: the Tracking API (write key by Basic auth), the Profile API (access
token by Basic auth) and the debugger's routes (admin token as Bearer), with urllib only."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any


def basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:".encode()).decode()}


Answer = tuple[int, dict[str, Any] | None, dict[str, str]]


def send(request: urllib.request.Request) -> Answer:
    """(status, JSON body or None, response headers) of a request, error statuses included."""
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw, status, got = response.read(), response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        raw, status, got = error.read(), error.code, dict(error.headers)
    return status, (json.loads(raw) if raw else None), got


def post(
    server: Any,
    path: str,
    body: bytes | dict[str, Any],
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> Answer:
    """Sends a body, with a write key (Basic) when given."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    sent = {"Content-Type": "application/json", **(headers or {}), **(basic(key) if key is not None else {})}
    return send(urllib.request.Request(server.http_url + path, data=data, headers=sent, method=method))


def get(server: Any, path: str, *, token: str | None = None, bearer: str | None = None) -> Answer:
    """GETs `path` with an access token (Basic) or an admin token (Bearer)."""
    headers = basic(token) if token is not None else {}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    return send(urllib.request.Request(server.http_url + path, headers=headers))
