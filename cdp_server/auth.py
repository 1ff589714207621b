"""Credentials: source write keys for ingest (HTTP Basic, as Segment's API) and admin bearer
tokens for everything else: the configured ones, and tokens of role "admin" made by
`AdminService.CreateToken`. Keys and tokens are only ever held as SHA-256 digests."""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import secrets
import threading
from typing import NoReturn, assert_never

import grpc

from cdp_server import _core


class Role(enum.Enum):
    """Who may call an RPC (ingest calls carry a source write key instead)."""

    ADMIN = "admin"  # a configured admin token: `authorization: Bearer <token>`


def key_digest(write_key: str) -> bytes:
    return hashlib.sha256(write_key.encode()).digest()


def new_write_key() -> str:
    return "tk_" + secrets.token_urlsafe(24)


def new_access_token() -> str:
    return "ta_" + secrets.token_urlsafe(24)


def _header(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata():
        if key == "authorization":
            return value if isinstance(value, str) else value.decode()
    return ""


def _deny(context: grpc.ServicerContext, message: str) -> NoReturn:
    context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
    raise AssertionError("context.abort returns only by raising")


def write_key_from_header(header: str) -> str | None:
    """The write key of `Basic base64(key:)` (the colon may be missing, as Segment allows)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    key = decoded.split(":", 1)[0]
    return key or None


class Authenticator:
    """Resolves credentials of incoming calls. Known key digests are cached: sources are never
    deleted in this version, so a cached digest cannot go stale."""

    def __init__(self, engine: _core.Engine, admin_tokens: tuple[str, ...]) -> None:
        self._engine = engine
        self._admin_digests = [key_digest(token) for token in admin_tokens]
        self._sources: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def source_id(self, context: grpc.ServicerContext) -> int:
        """The source of an ingest call, or aborts UNAUTHENTICATED naming what is wrong."""
        header = _header(context)
        if not header:
            _deny(context, "missing write key: send metadata 'authorization: Basic base64(<write key>:)'")
        write_key = write_key_from_header(header)
        if write_key is None:
            _deny(context, "malformed authorization: expected 'Basic base64(<write key>:)'")
        digest = key_digest(write_key)
        with self._lock:
            cached = self._sources.get(digest)
        if cached is not None:
            return cached
        source = self._engine.events_source_for_key(digest)
        if source is None:
            _deny(context, "invalid write key: no source has this key")
        with self._lock:
            self._sources[digest] = source
        return source

    def require(self, role: Role, context: grpc.ServicerContext) -> None:
        """Aborts UNAUTHENTICATED unless the call carries the credential `role` needs."""
        match role:
            case Role.ADMIN:
                self.require_admin(context)
            case _:
                assert_never(role)

    def require_admin(self, context: grpc.ServicerContext) -> None:
        """Aborts UNAUTHENTICATED unless the call carries a configured admin token or one of role admin."""
        scheme, _, token = _header(context).partition(" ")
        if scheme.lower() != "bearer" or not token:
            _deny(context, "missing admin token: send metadata 'authorization: Bearer <token>'")
        digest = key_digest(token.strip())
        if any(hmac.compare_digest(digest, known) for known in self._admin_digests):
            return
        if self._engine.token_role(digest) != "admin":
            if not self._admin_digests:
                _deny(context, "invalid admin token (none is configured on this server: set TRIBUTARY_ADMIN_TOKEN)")
            _deny(context, "invalid admin token")
