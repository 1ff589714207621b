"""`GET /metrics` on the HTTP port: Prometheus' text format with the port's requests by route and
status, their latency, and the engine's counters."""

from __future__ import annotations

import re
import urllib.request
from typing import Any

from http_client import get, post


def metrics(server: Any) -> dict[str, float]:
    """Every sample line as name{labels} → value."""
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=10) as response:
        assert response.status == 200 and "openmetrics" in response.headers["content-type"]
        text = response.read().decode()
    assert text.rstrip().endswith("# EOF")
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_count_requests_by_route_and_status_and_the_engines_events(server: Any) -> None:
    key = server.write_key
    assert post(server, "/v1/track", {"userId": "u", "event": "e"}, key=key)[0] == 200
    assert post(server, "/v1/track", {"userId": "u", "event": "e"}, key="wrong")[0] == 401
    batch = {"batch": [{"type": "track", "userId": "u", "event": "e"}, {"type": "track", "event": "no one"}]}
    assert post(server, "/v1/batch", batch, key=key)[0] == 200
    found = metrics(server)
    assert found['tributary_http_requests_total{route="/v1/track",status="200"}'] == 1
    assert found['tributary_http_requests_total{route="/v1/track",status="401"}'] == 1
    assert found['tributary_http_requests_total{route="/v1/batch",status="200"}'] == 1
    assert found['tributary_http_request_duration_seconds_count{route="/v1/batch"}'] == 1
    assert found["tributary_events_accepted_total"] == 2 and found["tributary_events_rejected_total"] == 1
    assert found["tributary_events_stored"] == 2 and found["tributary_map_bytes"] > 0
    buckets = [k for k in found if re.match(r'tributary_http_request_duration_seconds_bucket\{.*route="/v1/track"', k)]
    assert len(buckets) == 15  # 14 bounds and +Inf
    labels = 'source_id="1",field="userId",reason="userId or anonymousId is required"'
    by_reason = f"tributary_events_rejected_by_reason_total{{{labels}}}"
    assert found[by_reason] == 1


def test_profile_api_and_debugger_requests_are_counted_by_route_pattern(server: Any) -> None:
    profiles = "/v1/spaces/default/collections/users/profiles"
    assert get(server, f"{profiles}/user_id:nobody/traits", token=server.admin_token)[0] == 404
    assert get(server, f"{profiles}/user_id:other/traits", token=server.admin_token)[0] == 404
    assert get(server, "/debugger/api/events/7", bearer=server.admin_token)[0] == 404
    found = metrics(server)
    route = "/v1/spaces/{space}/collections/{collection}/profiles/{id}/traits"
    assert found[f'tributary_http_requests_total{{route="{route}",status="404"}}'] == 2
    assert found['tributary_http_requests_total{route="/debugger/api/events/{seq}",status="404"}'] == 1
