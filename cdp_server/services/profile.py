"""ProfileService: events of an identifier (profiles themselves come with identity resolution)."""

from __future__ import annotations

from typing import Any

import grpc

from cdp_server import _core, errors
from cdp_server.auth import Authenticator

SERVICE = "cdp.v1.ProfileService"


class ProfileService:
    def __init__(self, engine: _core.Engine, auth: Authenticator) -> None:
        self._engine = engine
        self._auth = auth

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return grpc.method_handlers_generic_handler(
            SERVICE, {"ListEvents": grpc.unary_unary_rpc_method_handler(self.list_events)}
        )

    @errors.unary
    def list_events(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._auth.require_admin(context)
        return self._engine.list_events(request)
