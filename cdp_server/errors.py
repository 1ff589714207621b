"""The one mapping from engine exceptions to gRPC status codes."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

import grpc

from cdp_server import _core
from cdp_server.auth import Caller
from cdp_server.destinations.base import ConfigError

log = logging.getLogger(__name__)

_CODES: dict[type[BaseException], grpc.StatusCode] = {
    _core.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    _core.NotFound: grpc.StatusCode.NOT_FOUND,
    _core.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    _core.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    _core.StorageFull: grpc.StatusCode.RESOURCE_EXHAUSTED,
    _core.ShutDown: grpc.StatusCode.UNAVAILABLE,
    _core.StorageFault: grpc.StatusCode.INTERNAL,
}


def status_for(exc: BaseException) -> grpc.StatusCode:
    for kind, code in _CODES.items():
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


def abort(context: grpc.ServicerContext, exc: _core.CoreError) -> NoReturn:
    code = status_for(exc)
    if code == grpc.StatusCode.INTERNAL:
        log.error("engine fault: %s", exc)
    context.abort(code, str(exc))
    raise AssertionError("context.abort returns only by raising")


S = TypeVar("S")
Q = TypeVar("Q")
R = TypeVar("R")


def unary(
    handler: Callable[[S, Q, grpc.ServicerContext, Caller], R],
) -> Callable[[S, Q, grpc.ServicerContext, Caller], R]:
    """Maps engine errors raised by a unary handler to its status code."""

    @functools.wraps(handler)
    def wrapped(self: S, request: Q, context: grpc.ServicerContext, caller: Caller) -> R:
        try:
            return handler(self, request, context, caller)
        except _core.CoreError as exc:
            abort(context, exc)
        except ConfigError as exc:  # a destination's settings or mappings, naming the field
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    return wrapped


def streaming(
    handler: Callable[[S, Q, grpc.ServicerContext, Caller], Iterator[bytes]],
) -> Callable[[S, Q, grpc.ServicerContext, Caller], Iterator[bytes]]:
    """Maps engine errors raised while a response stream is produced to its status code."""

    @functools.wraps(handler)
    def wrapped(self: S, request: Q, context: grpc.ServicerContext, caller: Caller) -> Iterator[bytes]:
        try:
            yield from handler(self, request, context, caller)
        except _core.CoreError as exc:
            abort(context, exc)

    return wrapped
