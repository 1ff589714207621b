"""ProfileService: profiles (by any identifier or by id), their events, identifiers and account
links. Every RPC is forwarded as bytes to the engine (see `routes`)."""

from __future__ import annotations

from typing import Any

import grpc

from cdp_server import _core
from cdp_server.services.access import Guard
from cdp_server.services.routes import Route, forwarded

SERVICE = "cdp.v1.ProfileService"

ROUTES = (
    Route("GetProfile", _core.Engine.get_profile),
    Route("BatchGetProfiles", _core.Engine.batch_get_profiles),
    Route("GetMergeHistory", _core.Engine.get_merge_history),
    Route("ExplainLink", _core.Engine.explain_link),
    Route("ListEvents", _core.Engine.list_events),
    Route("ListIdentifiers", _core.Engine.list_identifiers),
    Route("ListLinks", _core.Engine.list_links),
)


class ProfileService:
    def __init__(self, engine: _core.Engine, guard: Guard) -> None:
        self._engine = engine
        self._guard = guard

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return self._guard.service(SERVICE, forwarded(self._engine, ROUTES))
