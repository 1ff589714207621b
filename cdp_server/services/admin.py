"""AdminService: sources (their write keys and their rotation, webhook sources' mappings),
access tokens, the audit log, the live tail of accepted events, identity administration and
destinations (`destinations`). Who may call what: `services.access`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
from tributary._proto.cdp.v1 import admin_pb2

from cdp_server import _core, errors, webhook_sources
from cdp_server.auth import Caller, key_digest, new_access_token, new_write_key
from cdp_server.destinations.base import ConfigError
from cdp_server.destinations.manager import DeliveryManager
from cdp_server.services import access, destinations, governance
from cdp_server.services.routes import Route, forwarded

SERVICE = "cdp.v1.AdminService"
_TAIL_WAIT_SECS = 0.5

# The RPCs forwarded as bytes to the engine; CreateSource, CreateToken and RotateWriteKey (which
# make the secret here), UpdateWebhookSource (mappings are checked here) and Tail (a stream)
# have handlers of their own below.
ROUTES = (
    Route("ListSources", _core.Engine.list_sources),
    Route("ListRejected", _core.Engine.list_rejected),
    Route("ListTokens", _core.Engine.list_tokens),
    Route("RevokeToken", _core.Engine.revoke_token),
    Route("RevokeWriteKey", _core.Engine.revoke_write_key),
    Route("ListAuditLog", _core.Engine.list_audit_log),
    Route("VerifyAuditLog", _core.Engine.verify_audit_log),
    Route("RemoveIdentifier", _core.Engine.remove_identifier),
    Route("SplitProfile", _core.Engine.split_profile),
    Route("ListSeparations", _core.Engine.list_separations),
    Route("WithdrawSeparation", _core.Engine.withdraw_separation),
    Route("GetIdentityRules", _core.Engine.get_identity_rules),
    Route("UpdateIdentityRules", _core.Engine.update_identity_rules),
    Route("GetIdentityRulesProgress", _core.Engine.get_identity_rules_progress),
)


class AdminService:
    def __init__(
        self,
        engine: _core.Engine,
        guard: access.Guard,
        *,
        max_tails: int,
        draining: threading.Event,
        delivery: DeliveryManager,
    ) -> None:
        self._engine = engine
        self._destinations = destinations.DestinationAdmin(engine, delivery)
        self._guard = guard
        self._tails = threading.BoundedSemaphore(max_tails)
        self._max_tails = max_tails
        self._draining = draining

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        pb = admin_pb2
        return self._guard.service(
            SERVICE,
            {
                "CreateSource": access.unary(self.create_source, pb.CreateSourceRequest, access.serialized),
                "UpdateWebhookSource": access.unary(
                    self.update_webhook_source, pb.UpdateWebhookSourceRequest, access.serialized
                ),
                "CreateToken": access.unary(self.create_token, pb.CreateTokenRequest, access.serialized),
                "RotateWriteKey": access.unary(self.rotate_write_key, pb.RotateWriteKeyRequest, access.serialized),
                "Tail": access.server_streaming(self.tail, pb.TailRequest),
                **forwarded(self._engine, ROUTES),
                **forwarded(self._engine, destinations.ROUTES),
                **forwarded(self._engine, governance.ROUTES),
                **self._destinations.handlers(),
            },
        )

    @errors.unary
    def create_source(
        self, request: admin_pb2.CreateSourceRequest, context: grpc.ServicerContext, caller: Caller
    ) -> admin_pb2.CreateSourceResponse:
        write_key = new_write_key()
        if request.kind == admin_pb2.SOURCE_KIND_WEBHOOK:
            created = self._engine.create_source(
                request.name,
                key_digest(write_key),
                webhook_mappings=webhook_sources.check_mappings(request.mappings),
                signing_secret=webhook_sources.check_signing_secret(request.signing_secret)
                if request.signing_secret
                else "",
            )
            source = admin_pb2.Source.FromString(created)
            path = f"/v1/webhook/{source.name}/{write_key}"
            return admin_pb2.CreateSourceResponse(source=source, write_key=write_key, webhook_path=path)
        for field in ("mappings", "signing_secret"):
            if getattr(request, field):
                raise ConfigError(field, "only a webhook source (kind SOURCE_KIND_WEBHOOK) takes it")
        source = admin_pb2.Source.FromString(self._engine.create_source(request.name, key_digest(write_key)))
        return admin_pb2.CreateSourceResponse(source=source, write_key=write_key)

    @errors.unary
    def update_webhook_source(
        self, request: admin_pb2.UpdateWebhookSourceRequest, context: grpc.ServicerContext, caller: Caller
    ) -> admin_pb2.Source:
        mappings = webhook_sources.check_mappings(request.mappings)
        return admin_pb2.Source.FromString(self._engine.update_webhook_source(request.name, mappings))

    @errors.unary
    def create_token(
        self, request: admin_pb2.CreateTokenRequest, context: grpc.ServicerContext, caller: Caller
    ) -> admin_pb2.CreateTokenResponse:
        token = new_access_token()
        request.token_digest = key_digest(token)
        info = admin_pb2.AccessToken.FromString(self._engine.create_token(request.SerializeToString()))
        return admin_pb2.CreateTokenResponse(info=info, token=token)

    @errors.unary
    def rotate_write_key(
        self, request: admin_pb2.RotateWriteKeyRequest, context: grpc.ServicerContext, caller: Caller
    ) -> admin_pb2.RotateWriteKeyResponse:
        write_key = new_write_key()
        request.key_digest = key_digest(write_key)
        reply = admin_pb2.RotateWriteKeyResponse.FromString(self._engine.rotate_write_key(request.SerializeToString()))
        reply.write_key = write_key
        if reply.source.kind == admin_pb2.SOURCE_KIND_WEBHOOK:
            reply.webhook_path = f"/v1/webhook/{reply.source.name}/{write_key}"
        return reply

    @errors.streaming
    def tail(self, request: admin_pb2.TailRequest, context: grpc.ServicerContext, caller: Caller) -> Iterator[bytes]:
        """Streams events committed after the call began, until the client leaves."""
        if not self._tails.acquire(blocking=False):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"too many live tails (limit {self._max_tails})")
        try:
            position = self._engine.last_seq()
            types = [int(t) for t in request.types]
            names = list(request.event_names)
            while context.is_active() and not self._draining.is_set():
                events, position = self._engine.tail(
                    position, types=types, event_names=names, wait_secs=_TAIL_WAIT_SECS
                )
                yield from events
        finally:
            self._tails.release()
