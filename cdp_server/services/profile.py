"""ProfileService: profiles (by any identifier or by id) and the events of an identifier."""

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
            SERVICE,
            {
                "GetProfile": grpc.unary_unary_rpc_method_handler(self.get_profile),
                "BatchGetProfiles": grpc.unary_unary_rpc_method_handler(self.batch_get_profiles),
                "GetMergeHistory": grpc.unary_unary_rpc_method_handler(self.get_merge_history),
                "ExplainLink": grpc.unary_unary_rpc_method_handler(self.explain_link),
                "ListEvents": grpc.unary_unary_rpc_method_handler(self.list_events),
                "ListIdentifiers": grpc.unary_unary_rpc_method_handler(self.list_identifiers),
                "ListLinks": grpc.unary_unary_rpc_method_handler(self.list_links),
            },
        )

    @errors.unary
    def get_profile(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._auth.require_admin(context)
        return self._engine.get_profile(request)

    @errors.unary
    def batch_get_profiles(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._auth.require_admin(context)
        return self._engine.batch_get_profiles(request)

    @errors.unary
    def get_merge_history(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._auth.require_admin(context)
        return self._engine.get_merge_history(request)

    @errors.unary
    def explain_link(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._auth.require_admin(context)
        return self._engine.explain_link(request)

    @errors.unary
    def list_events(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._auth.require_admin(context)
        return self._engine.list_events(request)

    @errors.unary
    def list_identifiers(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._auth.require_admin(context)
        return self._engine.list_identifiers(request)

    @errors.unary
    def list_links(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._auth.require_admin(context)
        return self._engine.list_links(request)
