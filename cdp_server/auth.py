"""Credentials: who an incoming call is.

Three kinds of secret, each known to the server only by its SHA-256 digest:
- a source's **write key** (sent as `authorization: Basic base64(<key>:)`, as Segment's API
  takes it): it only sends events; a webhook source's key opens its webhook route only;
- an **access token** made by `AdminService.CreateToken`, with a role: "read", "audiences" or
  "admin" (sent as `authorization: Bearer <token>`; Basic works too, as on the Profile API);
- one of the server's **configured admin tokens** (`admin_tokens`), role admin.

`Authenticator.caller` resolves a call's secret (aborting UNAUTHENTICATED when it is missing,
malformed, unknown, revoked or retired); whether that caller may make the call is decided by
the route table (`cdp_server.services.access`). Stored credentials are looked up through the
engine, whose cache forgets every answer when a token is revoked or a key retired, so a revoked
credential stops working at once; nothing is cached here.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import hashlib
import hmac
import secrets
from typing import NoReturn

import grpc

from cdp_server import _core


class Kind(enum.Enum):
    WRITE_KEY = "write key"
    WEBHOOK_KEY = "webhook source key"
    TOKEN = "access token"
    CONFIGURED = "configured admin token"


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who made a call: `id` is the source's id for a key, the token's id for a token."""

    kind: Kind
    role: str = ""  # "read", "audiences" or "admin" for tokens
    id: int = 0
    name: str = ""

    @property
    def actor(self) -> str:
        """How the audit log names the caller (never the secret)."""
        match self.kind:
            case Kind.TOKEN:
                return f"token {self.name} (id {self.id}, role {self.role})"
            case Kind.CONFIGURED:
                return "configured admin token"
            case _:
                return f"{self.kind.value} of source {self.id}"


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


def deny(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
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


def secret_from_header(header: str) -> str | None:
    """The secret of `Bearer <secret>` or `Basic base64(<secret>:)`; None when malformed."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    return write_key_from_header(header)


class Authenticator:
    def __init__(self, engine: _core.Engine, admin_tokens: tuple[str, ...]) -> None:
        self._engine = engine
        self._admin_digests = [key_digest(token) for token in admin_tokens]

    def caller(self, context: grpc.ServicerContext, wanted: str) -> Caller:
        """Who made the call, or aborts UNAUTHENTICATED; `wanted` names the credential the call
        needs, for the messages ("a source write key", "an access token of role read")."""
        header = _header(context)
        how = (
            "'authorization: Basic base64(<write key>:)'"
            if "write key" in wanted
            else "'authorization: Bearer <token>'"
        )
        if not header:
            missing = "missing write key" if "write key" in wanted else "missing access token"
            deny(context, grpc.StatusCode.UNAUTHENTICATED, f"{missing}: this call needs {wanted}; send metadata {how}")
        secret = secret_from_header(header)
        if secret is None:
            deny(context, grpc.StatusCode.UNAUTHENTICATED, f"malformed authorization: expected {how}")
        digest = key_digest(secret)
        if any(hmac.compare_digest(digest, known) for known in self._admin_digests):
            return Caller(Kind.CONFIGURED, role="admin")
        found = self._engine.credential(digest)
        if found is None:
            what = "access token"
            if "write key" in wanted:
                what = "write key: no source has this key"
            elif "admin token" in wanted:
                what = "admin token"
            hint = (
                ""
                if self._admin_digests
                else " (no admin token is configured on this server: set TRIBUTARY_ADMIN_TOKEN)"
            )
            deny(context, grpc.StatusCode.UNAUTHENTICATED, f"invalid {what} (unknown, revoked or retired){hint}")
        kind_or_role, id, name = found
        if kind_or_role == "write_key":
            return Caller(Kind.WRITE_KEY, id=id)
        if kind_or_role == "webhook_key":
            return Caller(Kind.WEBHOOK_KEY, id=id)
        return Caller(Kind.TOKEN, role=kind_or_role, id=id, name=name)
