"""Segment's own Python SDK (segment-analytics-python) and RudderStack's (rudder-sdk-python),
pointed at Tributary's HTTP port by their `host` setting and nothing else: every call they make
is stored, with gzip on and off, and the profiles merge as the identity rules say (read back
over gRPC, and through Segment's Profile API); a wrong write key reaches the SDK's own error
with our message."""

from __future__ import annotations

import json
from typing import Any

import pytest
from http_client import get
from rpc import Rpc
from rudderstack.analytics import Client as RudderClient
from rudderstack.analytics.request import APIError as RudderAPIError
from segment.analytics import Client as SegmentClient
from segment.analytics.request import APIError as SegmentAPIError
from tributary._proto.cdp.v1 import profile_pb2


def profile(server: Any, identifier: str) -> profile_pb2.Profile:
    reply = Rpc(server).profile.GetProfile(
        profile_pb2.GetProfileRequest(identifier=identifier), metadata=server.admin_metadata
    )
    return reply.profile


SDKS = {"segment": (SegmentClient, SegmentAPIError), "rudderstack": (RudderClient, RudderAPIError)}


@pytest.mark.parametrize("sdk", sorted(SDKS))
@pytest.mark.parametrize("gzip", [False, True])
def test_the_sdks_send_every_call(server: Any, sdk: str, gzip: bool) -> None:
    errors: list[Exception] = []
    client = SDKS[sdk][0](
        server.write_key,
        host=server.http_url,
        gzip=gzip,
        sync_mode=True,  # each call posts /v1/batch before returning (no consumer thread to stop)
        max_retries=0,
        on_error=lambda error, _batch: errors.append(error),
    )
    person = f"{sdk}-{int(gzip)}"
    client.page(anonymous_id=f"{person}-anon", name="Pricing", properties={"path": "/pricing"})
    client.identify(
        user_id=person, anonymous_id=f"{person}-anon", traits={"email": f"{person}@shop.test", "plan": "pro"}
    )
    client.track(user_id=person, event="Order Completed", properties={"revenue": 42})
    client.screen(user_id=person, name="Cart")
    client.group(user_id=person, group_id="acme", traits={"name": "Acme"})
    client.alias(previous_id=f"{person}-anon", user_id=person)
    client.flush()
    assert errors == []
    found = profile(server, f"anonymous_id:{person}-anon")
    identifiers = {f"{i.type}:{i.value}" for i in found.identifiers}
    assert {f"anonymous_id:{person}-anon", f"user_id:{person}", f"email:{person}@shop.test"} <= identifiers
    assert json.loads(found.traits) == {"email": f"{person}@shop.test", "plan": "pro"}
    events = Rpc(server).profile.ListEvents(
        profile_pb2.ListEventsRequest(identifier=f"user_id:{person}", limit=50, profile=True),
        metadata=server.admin_metadata,
    )
    assert len(events.events) == 6, [e.type for e in events.events]

    # Segment's Profile API answers what the SDK sent.
    base = f"/v1/spaces/default/collections/users/profiles/user_id:{person}"
    traits = get(server, f"{base}/traits", token=server.admin_token)[1]
    assert traits is not None and traits["traits"] == {"email": f"{person}@shop.test", "plan": "pro"}
    listed = get(server, f"{base}/events?limit=10", token=server.admin_token)[1]
    assert listed is not None
    assert sorted(e["type"] for e in listed["data"]) == ["alias", "group", "identify", "page", "screen", "track"]
    order = next(e for e in listed["data"] if e["type"] == "track")
    assert order["event"] == "Order Completed" and order["properties"] == {"revenue": 42}
    external = get(server, f"{base}/external_ids", token=server.admin_token)[1]
    assert external is not None and {f"{i['type']}:{i['id']}" for i in external["data"]} == identifiers
    links = get(server, f"{base}/links", token=server.admin_token)[1]
    assert links is not None and [link["external_ids"][0]["id"] for link in links["data"]] == ["acme"]


@pytest.mark.parametrize("sdk", sorted(SDKS))
def test_a_wrong_write_key_is_the_sdks_api_error_with_our_message(server: Any, sdk: str) -> None:
    client_class, api_error = SDKS[sdk]
    client = client_class("not-a-key", host=server.http_url, sync_mode=True, max_retries=0)
    with pytest.raises(api_error) as caught:
        client.track(user_id="u", event="Clicked")
    # The SDK parses Segment's error body: our code and message reach its exception.
    assert caught.value.status == 401 and caught.value.code == "unauthorized"
    assert "invalid write key" in caught.value.message
