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


def post(
    server: Any,
    path: str,
    body: bytes | dict[str, Any],
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
    """Sends a request; returns (status, JSON body or None, response headers)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    sent = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        sent["Authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    request = urllib.request.Request(server.http_url + path, data=data, headers=sent, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw, status, got = response.read(), response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        raw, status, got = error.read(), error.code, dict(error.headers)
    return status, (json.loads(raw) if raw else None), got


def get(
    server: Any, path: str, *, token: str | None = None, bearer: str | None = None
) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
    """GETs `path` with an access token (Basic) or an admin token (Bearer); returns (status,
    JSON body or None, response headers)."""
    headers = basic(token) if token is not None else {}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    request = urllib.request.Request(server.http_url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw, status, got = response.read(), response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        raw, status, got = error.read(), error.code, dict(error.headers)
    return status, (json.loads(raw) if raw else None), got
