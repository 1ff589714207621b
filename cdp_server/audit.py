"""The audit log's Python entry point: `AuditLog.record` appends one record (who, what, on
what, outcome, a summary) to the engine's append-only, hash-chained log (see the engine's
`audit` module for the chain). Every audited RPC is recorded by the route table's guard
(`services.access`) through `record_call`; other actions that must be audited (deletion
requests, ...) call `record` directly.

A record never holds a secret: `describe` takes a request's identifying fields as the target
and its other short scalar fields as the summary, leaving out secrets (write keys' and tokens'
digests, signing secrets, destination settings) and bytes. Nor a person's identifier: the log is
append-only and kept for ever, while a person may be deleted, so identifiers (`email:…`) are
written as the start of their SHA-256 (`sha256:1f2e…`), enough to check a known one against.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from cdp_server import _core
from cdp_server.auth import Caller

log = logging.getLogger(__name__)

# Fields that name what a request acts on.
_TARGET_FIELDS = ("source", "name", "key", "id", "number", "profile", "identifier", "a", "b")
# Fields never written to the log, wherever they appear.
_SECRET_FIELDS = frozenset(
    {"signing_secret", "token_digest", "key_digest", "settings", "secret", "secrets", "password", "token"}
)
_MAX_VALUE_CHARS = 200
# Fields that hold a person's identifier (type:value) or profile.
_PERSONAL_FIELDS = frozenset({"identifier", "profile", "a", "b"})
_PERSONAL_HEX_CHARS = 16


class AuditLog:
    def __init__(self, engine: _core.Engine) -> None:
        self._engine = engine

    def record(self, actor: str, action: str, target: str, outcome: str, summary: str = "") -> int:
        """Appends a record (durably) and returns its sequence number. No argument may hold a
        secret."""
        return self._engine.append_audit(actor, action, target, outcome, summary)

    def record_call(self, method: str, caller: Caller, request: Any, outcome: str) -> None:
        """Records an RPC (its request a message, or the bytes a forwarded RPC got). A failure
        to record is logged, not raised: the call's own outcome stands."""
        if isinstance(request, bytes):
            try:
                request = request_class(method).FromString(request)
            except DecodeError:
                request = None
        target, summary = describe(request) if isinstance(request, Message) else ("", "")
        try:
            self.record(caller.actor, method.removeprefix("/cdp.v1."), target, outcome, summary)
        except _core.CoreError as exc:
            log.error("could not write the audit record of %s: %s", method, exc)


def request_class(method: str) -> Any:
    """The request message class of a full method name ("/cdp.v1.Service/Rpc")."""
    service, _, rpc = method.removeprefix("/").partition("/")
    found = descriptor_pool.Default().FindServiceByName(service).FindMethodByName(rpc)
    return message_factory.GetMessageClass(found.input_type)


def describe(request: Message) -> tuple[str, str]:
    """(target, summary) of a request, without secrets."""
    target: list[str] = []
    summary: list[str] = []
    for field, value in _fields(request, ""):
        short = field.rsplit(".", 1)[-1]
        (target if short in _TARGET_FIELDS else summary).append(f"{field}={value}")
    return " ".join(target), " ".join(summary)


def _fields(message: Message, prefix: str) -> list[tuple[str, str]]:
    shown: list[tuple[str, str]] = []
    for field, value in message.ListFields():
        if field.name in _SECRET_FIELDS or field.type == FieldDescriptor.TYPE_BYTES:
            continue
        name = prefix + field.name
        if field.is_repeated:
            shown.append((name, f"[{len(value)} items]"))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            shown.extend(_fields(value, name + "."))
        elif field.name in _PERSONAL_FIELDS and isinstance(value, str):
            shown.append((name, "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:_PERSONAL_HEX_CHARS]))
        else:
            text = repr(value) if isinstance(value, str) else str(value)
            shown.append((name, text if len(text) <= _MAX_VALUE_CHARS else text[:_MAX_VALUE_CHARS] + "…"))
    return shown
