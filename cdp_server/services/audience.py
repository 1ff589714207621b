"""AudienceService: audience and computed-trait definitions and their evaluation. Every RPC is
forwarded as bytes to the engine (see `routes`); ListMembers streams the engine's pages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from cdp_server import _core, errors
from cdp_server.auth import Authenticator, Role
from cdp_server.services.routes import Route, forwarding_handlers

SERVICE = "cdp.v1.AudienceService"

ROUTES = (
    Route("CreateAudience", _core.Engine.create_audience, Role.ADMIN),
    Route("GetAudience", _core.Engine.get_audience, Role.ADMIN),
    Route("ListAudiences", _core.Engine.list_audiences, Role.ADMIN),
    Route("DeleteAudience", _core.Engine.delete_audience, Role.ADMIN),
    Route("Preview", _core.Engine.preview_audience, Role.ADMIN),
    Route("CheckMembership", _core.Engine.check_membership, Role.ADMIN),
)


class AudienceService:
    def __init__(self, engine: _core.Engine, auth: Authenticator) -> None:
        self._engine = engine
        self._auth = auth

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "ListMembers": grpc.unary_stream_rpc_method_handler(self.list_members),
                **forwarding_handlers(self._engine, self._auth, ROUTES),
            },
        )

    def list_members(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """Pages of at most 1,000 members, by id; the members are computed before the first page."""
        self._auth.require(Role.ADMIN, context)
        try:
            pages = self._engine.list_members(request)
        except _core.CoreError as exc:
            errors.abort(context, exc)
        yield from pages
