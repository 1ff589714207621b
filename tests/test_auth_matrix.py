"""The auth matrix: every credential by every RPC of every service and every HTTP route.

Exactly the allowed cells get past authorization (their answer may still be NOT_FOUND or
INVALID_ARGUMENT: the requests are minimal); every other cell is refused with the right code:
UNAUTHENTICATED / 401 for no usable credential (missing, garbage, a retired key, a revoked
token), PERMISSION_DENIED / 403 for a valid credential the call does not take. A refused read
says nothing about whether what it asked for exists. One server for the module.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from http_client import send
from rpc import batch, track
from tributary._proto.cdp.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    audience_pb2,
    audience_pb2_grpc,
    destination_pb2,
    governance_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    profile_pb2,
    profile_pb2_grpc,
)

from cdp_server.services.access import RULES, Need

CODE = grpc.StatusCode
MAPPINGS = '[{"trigger": {}, "mapping": {"type": "track", "event": "Hook", "userId": "hook-user"}}]'


def basic(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", "Basic " + base64.b64encode(f"{secret}:".encode()).decode()),)


def bearer(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


class World:
    """The server, its credentials by name (gRPC metadata and the raw secret), and stubs."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.channel = server.channel()
        self.ingest = ingest_pb2_grpc.IngestServiceStub(self.channel)
        self.profile = profile_pb2_grpc.ProfileServiceStub(self.channel)
        self.audience = audience_pb2_grpc.AudienceServiceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)
        configured = bearer(server.admin_token)

        def source(name: str) -> admin_pb2.CreateSourceResponse:
            return self.admin.CreateSource(admin_pb2.CreateSourceRequest(name=name), metadata=configured)

        def token(role: str, name: str) -> admin_pb2.CreateTokenResponse:
            request = admin_pb2.CreateTokenRequest(role=role, name=name)
            return self.admin.CreateToken(request, metadata=configured)

        key_a, key_b = source("alpha").write_key, source("beta").write_key
        retired = source("gamma").write_key
        self.admin.RotateWriteKey(
            admin_pb2.RotateWriteKeyRequest(source="gamma", revoke_previous=True), metadata=configured
        )
        revoked = token("read", "gone")
        self.admin.RevokeToken(admin_pb2.RevokeTokenRequest(id=revoked.info.id), metadata=configured)
        hook = self.admin.CreateSource(
            admin_pb2.CreateSourceRequest(name="hook", kind=admin_pb2.SOURCE_KIND_WEBHOOK, mappings=MAPPINGS),
            metadata=configured,
        )
        self.hook_key = hook.write_key
        # name → (gRPC metadata, the secret as sent over HTTP, None for no header)
        self.secrets: dict[str, str | None] = {
            "none": None,
            "garbage": "not-a-credential",
            "write key A": key_a,
            "write key B": key_b,
            "retired write key": retired,
            "read token": token("read", "reader").token,
            "audiences token": token("audiences", "marketer").token,
            "admin token": token("admin", "operator").token,
            "configured admin token": server.admin_token,
            "revoked token": revoked.token,
        }

    def metadata(self, credential: str) -> tuple[tuple[str, str], ...]:
        secret = self.secrets[credential]
        if secret is None:
            return ()
        # Each credential as its users send it: write keys as Basic, tokens as Bearer.
        return basic(secret) if "key" in credential or credential == "garbage" else bearer(secret)


ALLOWED: dict[Need, set[str]] = {
    Need.WRITE_KEY: {"write key A", "write key B"},
    Need.READ: {"read token", "admin token", "configured admin token"},
    Need.AUDIENCES: {"audiences token", "admin token", "configured admin token"},
    Need.ADMIN: {"admin token", "configured admin token"},
}
UNAUTHENTICATED = {"none", "garbage", "retired write key", "revoked token"}
CREDENTIALS = [
    "none",
    "garbage",
    "write key A",
    "write key B",
    "retired write key",
    "read token",
    "audiences token",
    "admin token",
    "configured admin token",
    "revoked token",
]


def expected_code(need: Need, credential: str) -> CODE | None:
    """None: allowed (past authorization)."""
    if credential in ALLOWED[need]:
        return None
    return CODE.UNAUTHENTICATED if credential in UNAUTHENTICATED else CODE.PERMISSION_DENIED


# A minimal request of every RPC; streaming responses are marked (they are read differently).
PRO = "trait('plan') = 'pro'"
REQUESTS: dict[str, Any] = {
    "IngestService/Send": ingest_pb2.SendRequest(batch=batch([track("m-send")])),
    "IngestService/Stream": ingest_pb2.StreamRequest(sequence=1, batch=batch([track("m-stream")])),
    "ProfileService/GetProfile": profile_pb2.GetProfileRequest(identifier="user_id:u1"),
    "ProfileService/BatchGetProfiles": profile_pb2.BatchGetProfilesRequest(identifiers=["user_id:u1"]),
    "ProfileService/GetMergeHistory": profile_pb2.GetMergeHistoryRequest(identifier="user_id:u1"),
    "ProfileService/ExplainLink": profile_pb2.ExplainLinkRequest(a="user_id:u1", b="user_id:u2"),
    "ProfileService/ListEvents": profile_pb2.ListEventsRequest(identifier="user_id:u1"),
    "ProfileService/ListIdentifiers": profile_pb2.ListIdentifiersRequest(identifier="user_id:u1"),
    "ProfileService/ListLinks": profile_pb2.ListLinksRequest(identifier="user_id:u1"),
    "AudienceService/CreateAudience": audience_pb2.CreateAudienceRequest(key="matrix", query=PRO),
    "AudienceService/GetAudience": audience_pb2.GetAudienceRequest(key="matrix"),
    "AudienceService/UpdateAudience": audience_pb2.UpdateAudienceRequest(key="missing", query=PRO),
    "AudienceService/ListAudiences": audience_pb2.ListAudiencesRequest(),
    "AudienceService/DeleteAudience": audience_pb2.DeleteAudienceRequest(key="missing"),
    "AudienceService/Preview": audience_pb2.PreviewRequest(query=PRO),
    "AudienceService/ListMembers": audience_pb2.ListMembersRequest(key="missing"),
    "AudienceService/CheckMembership": audience_pb2.CheckMembershipRequest(key="matrix", identifier="user_id:u1"),
    "AudienceService/ExplainMembership": audience_pb2.ExplainMembershipRequest(key="matrix", identifier="user_id:u1"),
    "AudienceService/WatchMembership": audience_pb2.WatchMembershipRequest(key="matrix"),
    "AudienceService/CreatePrediction": audience_pb2.CreatePredictionRequest(
        prediction=audience_pb2.Prediction(key="matrix_p", goals=["event('Order Completed')"], horizon_days=30)
    ),
    "AudienceService/GetPrediction": audience_pb2.GetPredictionRequest(key="matrix_p"),
    "AudienceService/ListPredictions": audience_pb2.ListPredictionsRequest(),
    "AudienceService/DeletePrediction": audience_pb2.DeletePredictionRequest(key="matrix_p"),
    "AudienceService/RefreshPrediction": audience_pb2.RefreshPredictionRequest(key="matrix_p"),
    "AudienceService/GetPredictionReport": audience_pb2.GetPredictionRequest(key="matrix_p"),
    "AudienceService/ExplainPrediction": audience_pb2.ExplainPredictionRequest(key="matrix_p", profile="user_id:u1"),
    "AdminService/CreateSource": admin_pb2.CreateSourceRequest(name="alpha"),  # exists: refused after auth
    "AdminService/ListSources": admin_pb2.ListSourcesRequest(),
    "AdminService/UpdateWebhookSource": admin_pb2.UpdateWebhookSourceRequest(name="missing", mappings="[]"),
    "AdminService/Tail": admin_pb2.TailRequest(),
    "AdminService/ListRejected": admin_pb2.ListRejectedRequest(),
    "AdminService/CreateToken": admin_pb2.CreateTokenRequest(role="read", name="made-in-the-matrix"),
    "AdminService/ListTokens": admin_pb2.ListTokensRequest(),
    "AdminService/RevokeToken": admin_pb2.RevokeTokenRequest(id=999_999),
    "AdminService/RotateWriteKey": admin_pb2.RotateWriteKeyRequest(source="missing"),
    "AdminService/RevokeWriteKey": admin_pb2.RevokeWriteKeyRequest(source="missing", number=1),
    "AdminService/ListAuditLog": admin_pb2.ListAuditLogRequest(limit=1),
    "AdminService/VerifyAuditLog": admin_pb2.VerifyAuditLogRequest(),
    "AdminService/RemoveIdentifier": admin_pb2.RemoveIdentifierRequest(
        profile="user_id:missing", identifier="user_id:missing", dry_run=True
    ),
    "AdminService/SplitProfile": admin_pb2.SplitProfileRequest(
        profile="user_id:missing", a="user_id:missing", b="email:missing", dry_run=True
    ),
    "AdminService/ListSeparations": admin_pb2.ListSeparationsRequest(),
    "AdminService/WithdrawSeparation": admin_pb2.WithdrawSeparationRequest(a="user_id:missing", dry_run=True),
    "AdminService/GetIdentityRules": admin_pb2.GetIdentityRulesRequest(),
    "AdminService/UpdateIdentityRules": admin_pb2.UpdateIdentityRulesRequest(dry_run=True),
    "AdminService/GetIdentityRulesProgress": admin_pb2.GetIdentityRulesProgressRequest(),
    "AdminService/CreateDestination": destination_pb2.CreateDestinationRequest(
        destination=destination_pb2.Destination(name="matrix", kind="no-such-kind")
    ),
    "AdminService/UpdateDestination": destination_pb2.UpdateDestinationRequest(
        destination=destination_pb2.Destination(name="missing", kind="no-such-kind")
    ),
    "AdminService/GetDestination": destination_pb2.GetDestinationRequest(name="missing"),
    "AdminService/ListDestinations": destination_pb2.ListDestinationsRequest(),
    "AdminService/DeleteDestination": destination_pb2.DeleteDestinationRequest(name="missing"),
    "AdminService/SetDestinationPaused": destination_pb2.SetDestinationPausedRequest(name="missing"),
    "AdminService/DeliveryStats": destination_pb2.DeliveryStatsRequest(),
    "AdminService/Replay": destination_pb2.ReplayRequest(name="missing"),
    "AdminService/ListDeadLetters": destination_pb2.ListDeadLettersRequest(name="missing"),
    "AdminService/ReplayDeadLetters": destination_pb2.DeadLettersRequest(name="missing"),
    "AdminService/DiscardDeadLetters": destination_pb2.DeadLettersRequest(name="missing"),
    "AdminService/TestDestination": destination_pb2.TestDestinationRequest(name="missing", event=b"{}"),
    "AdminService/PutTrackingPlan": governance_pb2.PutTrackingPlanRequest(name="matrix", document="{}"),
    "AdminService/GetTrackingPlan": governance_pb2.GetTrackingPlanRequest(name="missing"),
    "AdminService/ListTrackingPlans": governance_pb2.ListTrackingPlansRequest(),
    "AdminService/SetSourcePolicy": governance_pb2.SetSourcePolicyRequest(
        policy=governance_pb2.SourcePolicy(source="missing")
    ),
    "AdminService/GetSourcePolicy": governance_pb2.GetSourcePolicyRequest(source="missing"),
    "AdminService/ListViolations": governance_pb2.ListViolationsRequest(),
    "AdminService/GetPiiSettings": governance_pb2.GetPiiSettingsRequest(),
    "AdminService/SetPiiSettings": governance_pb2.SetPiiSettingsRequest(),
    "AdminService/ListPiiInventory": governance_pb2.ListPiiInventoryRequest(),
    "AdminService/CreateRegulation": governance_pb2.CreateRegulationRequest(
        type=governance_pb2.REGULATION_TYPE_UNSUPPRESS, identifiers=["user_id:matrix-nobody"]
    ),
    "AdminService/GetRegulation": governance_pb2.GetRegulationRequest(id=999_999),
    "AdminService/ListRegulations": governance_pb2.ListRegulationsRequest(),
}
# Streams that run until the client leaves: allowed once their headers come.
ENDLESS = {"AdminService/Tail", "AudienceService/WatchMembership"}


@pytest.fixture(scope="module")
def world(module_server: Any) -> World:
    return World(module_server)


def outcome(world: World, rpc: str, credential: str) -> CODE | None:
    """The status of one cell: None when the call got past authorization."""
    service, method = rpc.split("/")
    stub = {
        "IngestService": world.ingest,
        "ProfileService": world.profile,
        "AudienceService": world.audience,
        "AdminService": world.admin,
    }[service]
    call = getattr(stub, method)
    request, metadata = REQUESTS[rpc], world.metadata(credential)
    refused = {CODE.UNAUTHENTICATED, CODE.PERMISSION_DENIED}
    try:
        if rpc == "IngestService/Stream":
            list(call(iter([request]), metadata=metadata, timeout=30))
        elif rpc in ENDLESS:
            started = call(request, metadata=metadata, timeout=30)
            # The guard sends headers once a stream is authorized; a refused one ends at once.
            started.initial_metadata()
            if not started.done():
                started.cancel()
                return None
            code = started.code()
            return code if code in refused else None
        elif rpc == "AudienceService/ListMembers":
            list(call(request, metadata=metadata, timeout=30))
        else:
            call(request, metadata=metadata, timeout=30)
    except grpc.RpcError as error:
        code = error.code()  # type: ignore[attr-defined]
        return code if code in refused else None
    return None


def test_every_rpc_of_every_service_is_in_the_access_table_and_the_matrix() -> None:
    methods = {
        f"/{service.full_name}/{method.name}"
        for module in (ingest_pb2, profile_pb2, audience_pb2, admin_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert set(RULES) == methods
    assert {f"/cdp.v1.{rpc}" for rpc in REQUESTS} == methods


def test_exactly_the_allowed_credentials_get_past_authorization_on_every_rpc(world: World) -> None:
    wrong = []
    for rpc in REQUESTS:
        need = RULES[f"/cdp.v1.{rpc}"].need
        for credential in CREDENTIALS:
            got, expected = outcome(world, rpc, credential), expected_code(need, credential)
            if got != expected:
                wrong.append(f"{rpc} with {credential}: {got} (expected {expected or 'allowed'})")
    assert wrong == []


def test_a_refusal_names_what_is_needed_and_never_echoes_the_secret(world: World) -> None:
    cases = [
        ("ProfileService/GetProfile", "write key A", "role read"),
        ("AudienceService/ListAudiences", "read token", "role audiences"),
        ("AdminService/ListSources", "audiences token", "an admin token"),
        ("IngestService/Send", "admin token", "source write key"),
        ("AdminService/ListSources", "revoked token", "invalid admin token"),
        ("ProfileService/GetProfile", "revoked token", "invalid access token"),
        ("IngestService/Send", "retired write key", "invalid write key"),
    ]
    for rpc, credential, needle in cases:
        service, method = rpc.split("/")
        stub = {"IngestService": world.ingest, "ProfileService": world.profile}.get(service)
        stub = stub or {"AudienceService": world.audience, "AdminService": world.admin}[service]
        with pytest.raises(grpc.RpcError) as caught:
            getattr(stub, method)(REQUESTS[rpc], metadata=world.metadata(credential), timeout=30)
        details = caught.value.details()  # type: ignore[attr-defined]
        secret = world.secrets[credential]
        assert needle in details and (secret is None or secret not in details), (rpc, credential, details)


# Every HTTP route (rust_core/http/src/access.rs lists them) with a request and who may use it
# ("public": everyone; "write key": the Tracking API's; "hook": only the webhook source's key).
PROFILE = "/v1/spaces/default/collections/users/profiles/user_id:u1/traits"
HTTP_ROUTES: list[tuple[str, str, str]] = [
    ("POST", "/v1/track", "write key"),
    ("OPTIONS", "/v1/track", "public"),
    ("POST", "/v1/webhook/hook/{key}", "hook"),
    ("POST", "/v1/webhook/hook", "hook"),
    ("GET", PROFILE, "read"),
    ("GET", "/debugger", "public"),
    ("GET", "/debugger/debugger.js", "public"),
    ("GET", "/debugger/debugger.css", "public"),
    ("GET", "/debugger/debugger-audiences.js", "public"),
    ("GET", "/debugger/debugger-violations.js", "public"),
    ("GET", "/debugger/debugger-predictions.js", "public"),
    ("GET", "/debugger/api/stream", "admin"),
    ("GET", "/debugger/api/sources", "admin"),
    ("GET", "/debugger/api/rejected", "admin"),
    ("GET", "/debugger/api/events/1", "admin"),
    ("GET", "/debugger/api/audiences", "admin"),
    ("GET", "/debugger/api/violations", "admin"),
    ("GET", "/debugger/api/predictions", "admin"),
    ("GET", "/debugger/api/predictions/p1/report", "admin"),
    ("GET", "/debugger/api/predictions/p1/calibration.png", "admin"),
    ("GET", "/debugger/api/predictions/p1/gains.png", "admin"),
    ("GET", "/health", "public"),
    ("GET", "/metrics", "public"),
]


def http_status(world: World, method: str, path: str, credential: str) -> int:
    secret = world.secrets[credential]
    headers = {"Content-Type": "application/json"}
    if "{key}" in path:
        path = path.replace("{key}", secret or "")  # the key rides in the path
    elif secret is not None:
        headers["Authorization"] = (
            "Basic " + base64.b64encode(f"{secret}:".encode()).decode()
            if method == "POST" or path.startswith("/v1/")
            else f"Bearer {secret}"
        )
    body = b'{"userId": "http-user", "event": "Matrix"}' if method == "POST" else None
    request = urllib.request.Request(world.server.http_url + path, data=body, headers=headers, method=method)
    # The status is all a cell needs (the debugger's stream never ends: its body is not read).
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def http_expected(who: str, credential: str) -> set[int]:
    """The statuses a cell may answer."""
    if who == "public":
        return {200, 204}
    if who == "hook":
        return {200} if credential == "hook key" else {401}
    need = {"write key": Need.WRITE_KEY, "read": Need.READ, "admin": Need.ADMIN}[who]
    code = expected_code(need, credential)
    if code is None:
        return {200, 404}  # past authorization (a missing profile or event is 404)
    return {401} if code == CODE.UNAUTHENTICATED else {403}


def test_exactly_the_allowed_credentials_get_past_authorization_on_every_http_route(world: World) -> None:
    world.secrets["hook key"] = world.hook_key
    wrong = []
    for method, path, who in HTTP_ROUTES:
        for credential in [*CREDENTIALS, "hook key"]:
            if path == "/v1/webhook/hook" and credential != "none":
                continue  # its proof is a signature, not a credential: refused without one
            if "{key}" in path and credential == "none":
                continue  # no key, no such path: that is the unsigned route above
            got = http_status(world, method, path, credential)
            if got not in http_expected(who, credential):
                wrong.append(f"{method} {path} with {credential}: {got}")
    assert wrong == []


def test_a_refused_read_says_nothing_about_whether_the_thing_exists(world: World) -> None:
    configured = bearer(world.server.admin_token)
    world.ingest.Send(
        ingest_pb2.SendRequest(batch=batch([track("m-secret", user_id="a-user")])),
        metadata=world.metadata("write key A"),
    )
    assert world.profile.GetProfile(profile_pb2.GetProfileRequest(identifier="user_id:a-user"), metadata=configured)

    def refusal(call: Callable[..., Any], request: Any, credential: str) -> tuple[Any, str]:
        with pytest.raises(grpc.RpcError) as caught:
            call(request, metadata=world.metadata(credential), timeout=30)
        return caught.value.code(), caught.value.details()  # type: ignore[attr-defined]

    for credential in ["write key A", "write key B", "audiences token", "garbage", "revoked token"]:
        for call, make in [
            (world.profile.GetProfile, lambda who: profile_pb2.GetProfileRequest(identifier=f"user_id:{who}")),
            (world.profile.ListEvents, lambda who: profile_pb2.ListEventsRequest(identifier=f"user_id:{who}")),
        ]:
            existing = refusal(call, make("a-user"), credential)
            missing = refusal(call, make("nobody-at-all"), credential)
            assert existing == missing, (credential, existing, missing)
        # The same over HTTP: the Profile API.
        answers = set()
        for who in ["a-user", "nobody-at-all"]:
            request = urllib.request.Request(
                world.server.http_url + PROFILE.replace("u1", who), headers=http_basic(world.secrets[credential])
            )
            status, body, _ = send(request)
            answers.add((status, json.dumps(body, sort_keys=True)))
        assert len(answers) == 1, (credential, answers)


def http_basic(secret: str | None) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{secret}:".encode()).decode()}
