"""ProfileService: profiles (by any identifier or by id), their events, identifiers and account
links. Every RPC is forwarded as bytes to the engine (see `routes`)."""

from __future__ import annotations

from typing import Any

import grpc

from cdp_server import _core
from cdp_server.auth import Authenticator, Role
from cdp_server.services.routes import Route, forwarding_handlers

SERVICE = "cdp.v1.ProfileService"

ROUTES = (
    Route("GetProfile", _core.Engine.get_profile, Role.ADMIN),
    Route("BatchGetProfiles", _core.Engine.batch_get_profiles, Role.ADMIN),
    Route("GetMergeHistory", _core.Engine.get_merge_history, Role.ADMIN),
    Route("ExplainLink", _core.Engine.explain_link, Role.ADMIN),
    Route("ListEvents", _core.Engine.list_events, Role.ADMIN),
    Route("ListIdentifiers", _core.Engine.list_identifiers, Role.ADMIN),
    Route("ListLinks", _core.Engine.list_links, Role.ADMIN),
)


class ProfileService:
    def __init__(self, engine: _core.Engine, auth: Authenticator) -> None:
        self._engine = engine
        self._auth = auth

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return grpc.method_handlers_generic_handler(SERVICE, forwarding_handlers(self._engine, self._auth, ROUTES))
