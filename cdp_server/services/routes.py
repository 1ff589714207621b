"""Unary RPCs the engine answers from the request bytes alone: each service lists them in one
table of (RPC name, engine method, who may call it), and `forwarding_handlers` turns a table into
gRPC handlers that authenticate the call, hand the bytes to the engine (which releases the GIL)
and map engine errors to status codes. No per-RPC handler code, no Python message objects."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc

from cdp_server import _core, errors
from cdp_server.auth import Authenticator, Role


@dataclass(frozen=True)
class Route:
    rpc: str
    engine_method: Callable[[_core.Engine, bytes], bytes]
    role: Role


def forwarding_handlers(
    engine: _core.Engine, auth: Authenticator, routes: Iterable[Route]
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """gRPC method handlers (bytes in, bytes out) for a table of routes."""
    return {route.rpc: grpc.unary_unary_rpc_method_handler(_forward(engine, auth, route)) for route in routes}


def _forward(engine: _core.Engine, auth: Authenticator, route: Route) -> Callable[[bytes, grpc.ServicerContext], bytes]:
    def forward(request: bytes, context: grpc.ServicerContext) -> bytes:
        auth.require(route.role, context)
        try:
            return route.engine_method(engine, request)
        except _core.CoreError as exc:
            errors.abort(context, exc)

    forward.__name__ = route.rpc
    return forward
