"""`GET /metrics` on the HTTP port: Prometheus' text format with the port's requests by route and
status, their latency, and the engine's counters."""

from __future__ import annotations

import re
import urllib.request
from typing import Any

from test_http_tracking import post


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
