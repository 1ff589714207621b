"""Unary RPCs the engine answers from the request bytes alone: each service lists them in one
table of (RPC name, engine method), and `forwarded` turns a table into handlers that hand the
bytes to the engine (which releases the GIL) and map engine errors to status codes. Who may
call them is the access table's business (`services.access`), checked before they run. No
per-RPC handler code, no Python message objects."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc

from cdp_server import _core, errors
from cdp_server.auth import Caller
from cdp_server.services import access


@dataclass(frozen=True)
class Route:
    rpc: str
    engine_method: Callable[[_core.Engine, bytes], bytes]


def forwarded(engine: _core.Engine, routes: Iterable[Route]) -> dict[str, access.Handler]:
    """Handlers (bytes in, bytes out) for a table of routes."""
    return {route.rpc: access.unary(_forward(engine, route)) for route in routes}


def _forward(engine: _core.Engine, route: Route) -> Callable[[bytes, grpc.ServicerContext, Caller], bytes]:
    def forward(request: bytes, context: grpc.ServicerContext, caller: Caller) -> bytes:
        try:
            return route.engine_method(engine, request)
        except _core.CoreError as exc:
            errors.abort(context, exc)

    forward.__name__ = route.rpc
    return forward
