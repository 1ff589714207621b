"""AdminService: sources (their write keys, webhook sources' mappings), the live tail of accepted
events, and identity administration."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
from tributary._proto.cdp.v1 import admin_pb2

from cdp_server import _core, errors, webhook_sources
from cdp_server.auth import Authenticator, Role, key_digest, new_access_token, new_write_key
from cdp_server.destinations.base import ConfigError
from cdp_server.destinations.manager import DeliveryManager
from cdp_server.services import destinations, governance
from cdp_server.services.routes import Route, forwarding_handlers

SERVICE = "cdp.v1.AdminService"
_TAIL_WAIT_SECS = 0.5

# The RPCs forwarded as bytes to the engine; CreateSource and CreateToken (which make the secret
# here), UpdateWebhookSource (mappings are checked here) and Tail (a stream) have handlers of
# their own below.
ROUTES = (
    Route("ListSources", _core.Engine.list_sources, Role.ADMIN),
    Route("ListRejected", _core.Engine.list_rejected, Role.ADMIN),
    Route("ListTokens", _core.Engine.list_tokens, Role.ADMIN),
    Route("RemoveIdentifier", _core.Engine.remove_identifier, Role.ADMIN),
    Route("SplitProfile", _core.Engine.split_profile, Role.ADMIN),
    Route("ListSeparations", _core.Engine.list_separations, Role.ADMIN),
    Route("WithdrawSeparation", _core.Engine.withdraw_separation, Role.ADMIN),
    Route("GetIdentityRules", _core.Engine.get_identity_rules, Role.ADMIN),
    Route("UpdateIdentityRules", _core.Engine.update_identity_rules, Role.ADMIN),
    Route("GetIdentityRulesProgress", _core.Engine.get_identity_rules_progress, Role.ADMIN),
)


class AdminService:
    def __init__(
        self,
        engine: _core.Engine,
        auth: Authenticator,
        *,
        max_tails: int,
        draining: threading.Event,
        delivery: DeliveryManager,
    ) -> None:
        self._engine = engine
        self._destinations = destinations.DestinationAdmin(engine, auth, delivery)
        self._auth = auth
        self._tails = threading.BoundedSemaphore(max_tails)
        self._max_tails = max_tails
        self._draining = draining

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "CreateSource": grpc.unary_unary_rpc_method_handler(
                    self.create_source,
                    request_deserializer=admin_pb2.CreateSourceRequest.FromString,
                    response_serializer=admin_pb2.CreateSourceResponse.SerializeToString,
                ),
                "UpdateWebhookSource": grpc.unary_unary_rpc_method_handler(
                    self.update_webhook_source,
                    request_deserializer=admin_pb2.UpdateWebhookSourceRequest.FromString,
                    response_serializer=admin_pb2.Source.SerializeToString,
                ),
                "CreateToken": grpc.unary_unary_rpc_method_handler(
                    self.create_token,
                    request_deserializer=admin_pb2.CreateTokenRequest.FromString,
                    response_serializer=admin_pb2.CreateTokenResponse.SerializeToString,
                ),
                "Tail": grpc.unary_stream_rpc_method_handler(
                    self.tail, request_deserializer=admin_pb2.TailRequest.FromString
                ),
                **forwarding_handlers(self._engine, self._auth, ROUTES),
                **forwarding_handlers(self._engine, self._auth, destinations.ROUTES),
                **forwarding_handlers(self._engine, self._auth, governance.ROUTES),
                **self._destinations.handlers(),
            },
        )

    @errors.unary
    def create_source(
        self, request: admin_pb2.CreateSourceRequest, context: grpc.ServicerContext
    ) -> admin_pb2.CreateSourceResponse:
        self._auth.require_admin(context)
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
        self, request: admin_pb2.UpdateWebhookSourceRequest, context: grpc.ServicerContext
    ) -> admin_pb2.Source:
        self._auth.require_admin(context)
        mappings = webhook_sources.check_mappings(request.mappings)
        return admin_pb2.Source.FromString(self._engine.update_webhook_source(request.name, mappings))

    @errors.unary
    def create_token(
        self, request: admin_pb2.CreateTokenRequest, context: grpc.ServicerContext
    ) -> admin_pb2.CreateTokenResponse:
        self._auth.require_admin(context)
        token = new_access_token()
        request.token_digest = key_digest(token)
        info = admin_pb2.AccessToken.FromString(self._engine.create_token(request.SerializeToString()))
        return admin_pb2.CreateTokenResponse(info=info, token=token)

    @errors.streaming
    def tail(self, request: admin_pb2.TailRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
        """Streams events committed after the call began, until the client leaves."""
        self._auth.require_admin(context)
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
