"""AudienceService: audience and computed-trait definitions and their evaluation. Every RPC is
forwarded as bytes to the engine (see `routes`); ListMembers streams the engine's pages."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
from tributary._proto.cdp.v1 import audience_pb2

from cdp_server import _core, errors
from cdp_server.auth import Caller
from cdp_server.services import access
from cdp_server.services.predictions import PredictionHandlers
from cdp_server.services.routes import Route, forwarded

SERVICE = "cdp.v1.AudienceService"

ROUTES = (
    Route("CreateAudience", _core.Engine.create_audience),
    Route("GetAudience", _core.Engine.get_audience),
    Route("ListAudiences", _core.Engine.list_audiences),
    Route("DeleteAudience", _core.Engine.delete_audience),
    Route("Preview", _core.Engine.preview_audience),
    Route("CheckMembership", _core.Engine.check_membership),
    Route("UpdateAudience", _core.Engine.update_audience),
    Route("ExplainMembership", _core.Engine.explain_membership),
)
# How long one engine call of WatchMembership waits for changes before checking the client.
_WATCH_WAIT_SECS = 0.5


class AudienceService:
    def __init__(self, engine: _core.Engine, guard: access.Guard, *, draining: threading.Event) -> None:
        self._engine = engine
        self._guard = guard
        self._draining = draining
        self.predictions = PredictionHandlers(engine)

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return self._guard.service(
            SERVICE,
            {
                "ListMembers": access.server_streaming(self.list_members),
                "WatchMembership": access.server_streaming(self.watch_membership, audience_pb2.WatchMembershipRequest),
                **forwarded(self._engine, ROUTES),
                **self.predictions.handlers(),
            },
        )

    def list_members(self, request: bytes, context: grpc.ServicerContext, caller: Caller) -> Iterator[bytes]:
        """Pages of at most 1,000 members, by id; the members are computed before the first page."""
        try:
            pages = self._engine.list_members(request)
        except _core.CoreError as exc:
            errors.abort(context, exc)
        yield from pages

    def watch_membership(
        self, request: audience_pb2.WatchMembershipRequest, context: grpc.ServicerContext, caller: Caller
    ) -> Iterator[bytes]:
        """Changes as they are written, until the client leaves or the server drains."""
        position = request.after_seq or self._engine.last_seq()
        try:
            while context.is_active() and not self._draining.is_set():
                changes, position = self._engine.watch_membership(request.key, position, wait_secs=_WATCH_WAIT_SECS)
                yield from changes
        except _core.CoreError as exc:
            errors.abort(context, exc)
