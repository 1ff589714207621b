"""No credential and no personal value in the server's logs, at any level: a server logging at
DEBUG with a line per HTTP request takes write keys (gRPC, HTTP Basic, a webhook source's URL),
tokens and events carrying canary PII through accepted, refused and failing paths; none of those
values may appear anywhere in its output."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import grpc
from http_client import post
from rpc import Rpc, track
from tributary._proto.cdp.v1 import admin_pb2, profile_pb2

CANARY_EMAIL = "canary.7f3a9@example.com"
CANARY_PHONE = "+44 7700 900461"
CANARY_NAME = "Zebedee Canaryfield"


def test_credentials_and_canary_pii_never_reach_the_logs(server_factory: Any) -> None:
    server = server_factory(env={"TRIBUTARY_LOG_LEVEL": "DEBUG", "TRIBUTARY_LOG_REQUESTS": "1"})
    rpc = Rpc(server)
    try:
        pii = {"email": CANARY_EMAIL, "phone": CANARY_PHONE, "name": CANARY_NAME}
        # Accepted over gRPC and HTTP, and refused (no userId nor anonymousId) with the PII inside.
        rpc.send([track("log-1", user_id="canary-user", properties=pii)])
        assert post(server, "/v1/identify", {"userId": "canary-user", "traits": pii}, key=server.write_key)[0] == 200
        assert post(server, "/v1/track", {"event": "No One", "properties": pii}, key=server.write_key)[0] == 200
        # Wrong credentials.
        assert post(server, "/v1/track", {"userId": "u", "event": "E"}, key="wrong-key-canary-4411")[0] == 401
        with contextlib.suppress(grpc.RpcError):
            rpc.profile.GetProfile(
                profile_pb2.GetProfileRequest(identifier=f"email:{CANARY_EMAIL}"),
                metadata=(("authorization", "Bearer wrong-token-canary-9921"),),
            )
        # A profile read by its email, and a webhook source's key in its URL.
        rpc.profile.GetProfile(
            profile_pb2.GetProfileRequest(identifier=f"email:{CANARY_EMAIL}"), metadata=server.admin_metadata
        )
        created = rpc.admin.CreateSource(
            admin_pb2.CreateSourceRequest(
                name="hooked",
                kind=admin_pb2.SOURCE_KIND_WEBHOOK,
                mappings=json.dumps(
                    [{"mapping": {"type": "identify", "userId": "w", "traits": {"email": {"@path": "$.e"}}}}]
                ),
            ),
            metadata=server.admin_metadata,
        )
        assert post(server, created.webhook_path, {"e": CANARY_EMAIL})[0] == 200
        assert post(server, created.webhook_path, b"{not json " + CANARY_EMAIL.encode())[0] == 400
    finally:
        rpc.close()
    assert server.stop() == 0
    logged = server.log_path.read_text()
    assert "/v1/webhook/hooked/***" in logged, "the request log ran"
    for secret in (
        server.write_key,
        server.admin_token,
        created.write_key,
        "wrong-key-canary-4411",
        "wrong-token-canary-9921",
        CANARY_EMAIL,
        CANARY_PHONE,
        CANARY_NAME,
    ):
        assert secret not in logged, f"{secret!r} is in the server's log"
