"""AudienceService: audience and computed-trait definitions and their evaluation. Every RPC is
forwarded as bytes to the engine (see `routes`); ListMembers streams the engine's pages."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
from tributary._proto.cdp.v1 import audience_pb2

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
    Route("UpdateAudience", _core.Engine.update_audience, Role.ADMIN),
    Route("ExplainMembership", _core.Engine.explain_membership, Role.ADMIN),
)
# How long one engine call of WatchMembership waits for changes before checking the client.
_WATCH_WAIT_SECS = 0.5


class AudienceService:
    def __init__(self, engine: _core.Engine, auth: Authenticator, *, draining: threading.Event) -> None:
        self._engine = engine
        self._auth = auth
        self._draining = draining

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "ListMembers": grpc.unary_stream_rpc_method_handler(self.list_members),
                "WatchMembership": grpc.unary_stream_rpc_method_handler(
                    self.watch_membership, request_deserializer=audience_pb2.WatchMembershipRequest.FromString
                ),
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

    def watch_membership(
        self, request: audience_pb2.WatchMembershipRequest, context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        """Changes as they are written, until the client leaves or the server drains."""
        self._auth.require(Role.ADMIN, context)
        position = request.after_seq or self._engine.last_seq()
        try:
            while context.is_active() and not self._draining.is_set():
                changes, position = self._engine.watch_membership(request.key, position, wait_secs=_WATCH_WAIT_SECS)
                yield from changes
        except _core.CoreError as exc:
            errors.abort(context, exc)
