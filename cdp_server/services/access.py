"""Who may call which RPC: `RULES`, the one table of every RPC of every service and the
credential it needs, and `Guard`, which builds each service's gRPC handlers from its servicer
methods so that every call is checked against the table before the method runs (a method
without an entry makes the server fail at start-up; a test walks the proto descriptors and
fails if any RPC is missing here).

Needs: a source's write key (ingest only: a write key reads nothing), or an access token of
role `read` (profiles), `audiences` (audiences and computed traits) or `admin` (everything, and
AdminService); the configured admin tokens have role admin. A call without a usable credential
(missing, malformed, unknown, revoked) is refused UNAUTHENTICATED; a valid credential the RPC
does not take, PERMISSION_DENIED, naming what it needs. Messages never echo the secret.

Audited RPCs (every one that changes something) are written to the audit log after they run,
with their outcome: `cdp_server.audit`.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from cdp_server import audit
from cdp_server.auth import Authenticator, Caller, Kind, deny


class Need(enum.Enum):
    WRITE_KEY = "a source write key"
    READ = "an access token of role read (or admin)"
    AUDIENCES = "an access token of role audiences (or admin)"
    ADMIN = "an admin token"

    def allows(self, caller: Caller) -> bool:
        if self is Need.WRITE_KEY:
            return caller.kind is Kind.WRITE_KEY
        if caller.kind not in (Kind.TOKEN, Kind.CONFIGURED):
            return False
        return caller.role == "admin" or caller.role == self.name.lower()


@dataclass(frozen=True)
class Rule:
    need: Need
    audited: bool = False


_WRITE_KEY = Rule(Need.WRITE_KEY)
_READ = Rule(Need.READ)
_AUDIENCES = Rule(Need.AUDIENCES)
_AUDIENCES_CHANGE = Rule(Need.AUDIENCES, audited=True)
_ADMIN = Rule(Need.ADMIN)
_ADMIN_CHANGE = Rule(Need.ADMIN, audited=True)

# Every RPC of every service, by full method name.
RULES: Mapping[str, Rule] = {
    "/cdp.v1.IngestService/Send": _WRITE_KEY,
    "/cdp.v1.IngestService/Stream": _WRITE_KEY,
    "/cdp.v1.ProfileService/GetProfile": _READ,
    "/cdp.v1.ProfileService/BatchGetProfiles": _READ,
    "/cdp.v1.ProfileService/GetMergeHistory": _READ,
    "/cdp.v1.ProfileService/ExplainLink": _READ,
    "/cdp.v1.ProfileService/ListEvents": _READ,
    "/cdp.v1.ProfileService/ListIdentifiers": _READ,
    "/cdp.v1.ProfileService/ListLinks": _READ,
    "/cdp.v1.AudienceService/CreateAudience": _AUDIENCES_CHANGE,
    "/cdp.v1.AudienceService/GetAudience": _AUDIENCES,
    "/cdp.v1.AudienceService/UpdateAudience": _AUDIENCES_CHANGE,
    "/cdp.v1.AudienceService/ListAudiences": _AUDIENCES,
    "/cdp.v1.AudienceService/DeleteAudience": _AUDIENCES_CHANGE,
    "/cdp.v1.AudienceService/Preview": _AUDIENCES,
    "/cdp.v1.AudienceService/ListMembers": _AUDIENCES,
    "/cdp.v1.AudienceService/CheckMembership": _AUDIENCES,
    "/cdp.v1.AudienceService/ExplainMembership": _AUDIENCES,
    "/cdp.v1.AudienceService/WatchMembership": _AUDIENCES,
    "/cdp.v1.AudienceService/CreatePrediction": _AUDIENCES_CHANGE,
    "/cdp.v1.AudienceService/GetPrediction": _AUDIENCES,
    "/cdp.v1.AudienceService/ListPredictions": _AUDIENCES,
    "/cdp.v1.AudienceService/DeletePrediction": _AUDIENCES_CHANGE,
    "/cdp.v1.AudienceService/RefreshPrediction": _AUDIENCES_CHANGE,
    "/cdp.v1.AudienceService/GetPredictionReport": _AUDIENCES,
    "/cdp.v1.AudienceService/ExplainPrediction": _AUDIENCES,
    "/cdp.v1.AdminService/CreateSource": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/ListSources": _ADMIN,
    "/cdp.v1.AdminService/UpdateWebhookSource": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/Tail": _ADMIN,
    "/cdp.v1.AdminService/ListRejected": _ADMIN,
    "/cdp.v1.AdminService/CreateToken": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/ListTokens": _ADMIN,
    "/cdp.v1.AdminService/RevokeToken": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/RotateWriteKey": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/RevokeWriteKey": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/ListAuditLog": _ADMIN,
    "/cdp.v1.AdminService/VerifyAuditLog": _ADMIN,
    "/cdp.v1.AdminService/RemoveIdentifier": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/SplitProfile": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/ListSeparations": _ADMIN,
    "/cdp.v1.AdminService/WithdrawSeparation": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/GetIdentityRules": _ADMIN,
    "/cdp.v1.AdminService/UpdateIdentityRules": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/GetIdentityRulesProgress": _ADMIN,
    "/cdp.v1.AdminService/CreateDestination": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/UpdateDestination": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/GetDestination": _ADMIN,
    "/cdp.v1.AdminService/ListDestinations": _ADMIN,
    "/cdp.v1.AdminService/DeleteDestination": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/SetDestinationPaused": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/DeliveryStats": _ADMIN,
    "/cdp.v1.AdminService/Replay": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/ListDeadLetters": _ADMIN,
    "/cdp.v1.AdminService/ReplayDeadLetters": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/DiscardDeadLetters": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/TestDestination": _ADMIN,
    "/cdp.v1.AdminService/PutTrackingPlan": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/GetTrackingPlan": _ADMIN,
    "/cdp.v1.AdminService/ListTrackingPlans": _ADMIN,
    "/cdp.v1.AdminService/SetSourcePolicy": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/GetSourcePolicy": _ADMIN,
    "/cdp.v1.AdminService/ListViolations": _ADMIN,
    "/cdp.v1.AdminService/GetPiiSettings": _ADMIN,
    "/cdp.v1.AdminService/SetPiiSettings": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/ListPiiInventory": _ADMIN,
    "/cdp.v1.AdminService/CreateRegulation": _ADMIN_CHANGE,
    "/cdp.v1.AdminService/GetRegulation": _ADMIN,
    "/cdp.v1.AdminService/ListRegulations": _ADMIN,
}

# A servicer method: the request (a message, or bytes without a deserializer), the context and
# the checked caller.
Behavior = Callable[[Any, grpc.ServicerContext, Caller], Any]


@dataclass(frozen=True)
class Handler:
    """How one RPC is served: its method and its shape."""

    behavior: Behavior
    request_streaming: bool = False
    response_streaming: bool = False
    request_deserializer: Callable[[bytes], Any] | None = None
    response_serializer: Callable[[Any], bytes] | None = None


def unary(
    behavior: Behavior,
    request: type[Any] | None = None,
    response: Callable[[Any], bytes] | None = None,
) -> Handler:
    """A unary RPC; with `request` the method gets that message, else the request's bytes."""
    return Handler(
        behavior,
        request_deserializer=request.FromString if request is not None else None,
        response_serializer=response,
    )


def server_streaming(behavior: Behavior, request: type[Any] | None = None) -> Handler:
    return Handler(
        behavior,
        response_streaming=True,
        request_deserializer=request.FromString if request is not None else None,
    )


def bidi_streaming(behavior: Behavior) -> Handler:
    return Handler(behavior, request_streaming=True, response_streaming=True)


def serialized(message: Any) -> bytes:
    """The response serializer of methods that answer messages."""
    return bytes(message.SerializeToString())


class Guard:
    """Builds services whose every call is checked against `RULES` (and audited)."""

    def __init__(self, auth: Authenticator, audit_log: audit.AuditLog) -> None:
        self._auth = auth
        self._audit = audit_log

    def authorize(self, method: str, rule: Rule, context: grpc.ServicerContext) -> Caller:
        caller = self._auth.caller(context, rule.need.value)
        if not rule.need.allows(caller):
            deny(context, grpc.StatusCode.PERMISSION_DENIED, _refusal(method, rule.need, caller))
        return caller

    def service(self, service: str, handlers: Mapping[str, Handler]) -> grpc.GenericRpcHandler[Any, Any]:
        methods: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        for rpc, handler in handlers.items():
            method = f"/{service}/{rpc}"
            rule = RULES.get(method)
            if rule is None:
                raise RuntimeError(f"{method} is not in the access table (cdp_server.services.access.RULES)")
            methods[rpc] = self._checked(method, rule, handler)
        return grpc.method_handlers_generic_handler(service, methods)

    def _checked(self, method: str, rule: Rule, handler: Handler) -> grpc.RpcMethodHandler[Any, Any]:
        behavior = handler.behavior
        options: dict[str, Any] = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.response_streaming:

            def streamed(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                caller = self.authorize(method, rule, context)
                # Headers at once: a client learns that a long-lived stream was admitted
                # before its first message.
                context.send_initial_metadata(())
                yield from behavior(request, context, caller)

            functools.update_wrapper(streamed, behavior)
            if handler.request_streaming:
                return grpc.stream_stream_rpc_method_handler(streamed, **options)
            return grpc.unary_stream_rpc_method_handler(streamed, **options)

        def answered(request: Any, context: grpc.ServicerContext) -> Any:
            caller = self.authorize(method, rule, context)
            if not rule.audited:
                return behavior(request, context, caller)
            try:
                result = behavior(request, context, caller)
            except BaseException:
                code = context.code()  # type: ignore[attr-defined]  # grpcio has it; its stubs do not
                outcome = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
                self._audit.record_call(method, caller, request, outcome)
                raise
            self._audit.record_call(method, caller, request, "ok")
            return result

        functools.update_wrapper(answered, behavior)
        return grpc.unary_unary_rpc_method_handler(answered, **options)


def _refusal(method: str, need: Need, caller: Caller) -> str:
    rpc = method.removeprefix("/cdp.v1.")
    match caller.kind:
        case Kind.WRITE_KEY if need is not Need.WRITE_KEY:
            return f"{rpc} needs {need.value}: a write key only sends events"
        case Kind.WEBHOOK_KEY:
            return f"{rpc} needs {need.value}: a webhook source's key opens its webhook route (/v1/webhook/...) only"
        case Kind.TOKEN | Kind.CONFIGURED if need is Need.WRITE_KEY:
            return (
                f"{rpc} needs a source write key ('authorization: Basic base64(<write key>:)'): "
                "an access token does not send events"
            )
        case _:
            return f"{rpc} needs {need.value}; this token's role is {caller.role}"
