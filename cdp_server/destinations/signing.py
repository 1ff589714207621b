"""Standard Webhooks signatures (https://www.standardwebhooks.com), so that a receiver can check
that a webhook came from this server, unaltered, and recently.

Each request carries three headers: `webhook-id` (stable across retries: receivers deduplicate
on it), `webhook-timestamp` (integer Unix seconds: receivers refuse old ones, so a captured
request cannot be replayed later) and `webhook-signature`: `v1,<base64 HMAC-SHA256>` of
`f"{webhook_id}.{timestamp}.{body}"` under each active secret, space-separated. Two secrets are
active while one is rotated: a receiver that knows either accepts the request.

A secret is `whsec_` followed by the base64 of its random key bytes (the spec asks for 24 to 64
bytes; we make 32), the form receivers' libraries take as is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
NEW_SECRET_BYTES = 32
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
SIGNATURE_VERSION = "v1"


def new_secret() -> str:
    """A fresh random secret, `whsec_<base64 of 32 bytes>`."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(NEW_SECRET_BYTES)).decode()


def validate_secret(secret: str) -> bytes:
    """The key bytes of a `whsec_` secret; ValueError saying what is wrong with it."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"a secret is {SECRET_PREFIX!r} followed by base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"a secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {len(key)}")
    return key


def signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` entry: HMAC-SHA256 over `id.timestamp.body`, body as sent (bytes)."""
    signed_content = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed_content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def sign(secrets: Sequence[str], webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for a request whose body is exactly `body`.

    `timestamp` is whole Unix seconds (receivers compare it with their clock)."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    if not webhook_id:
        raise ValueError("a webhook id is needed to sign")
    entries = [signature(validate_secret(secret), webhook_id, int(timestamp), body) for secret in secrets]
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": " ".join(entries),
    }
