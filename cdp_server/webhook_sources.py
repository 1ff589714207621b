"""Webhook sources: a SaaS tool's JSON payloads turned into Segment events by the source's mappings.

The HTTP port (Rust) receives a payload, checks the source's write key or signature, and calls
`map_payload`, which returns a Tracking API batch for the engine's JSON entry point: the events
then get the same validation, deduplication and acknowledgement as any other. A payload that is a
JSON array is a list of payloads (tools such as SendGrid post their events that way). Each payload
yields one event per mapping whose trigger it matches, as a destination's mappings do
(docs/mappings.md); one that matches none yields nothing and is answered 200, so that the tool
does not deliver it again.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson

from cdp_server.destinations import signing
from cdp_server.destinations.base import ConfigError
from cdp_server.destinations.mappings import CompiledMapping, apply_mappings, compile_mappings

FIELD = "mappings"


def check_mappings(text: str) -> str:
    """A webhook source's mappings as saved (compact JSON); ConfigError names the bad place."""
    if not text.strip():
        raise ConfigError(FIELD, "a webhook source needs mappings: a list of {trigger, mapping}")
    try:
        spec = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(FIELD, f"not JSON: {exc}") from None
    compile_mappings(spec, FIELD)
    return orjson.dumps(spec).decode()


def check_signing_secret(secret: str) -> str:
    """A Standard Webhooks secret ("whsec_" + base64) as saved; ConfigError if it is not one."""
    try:
        signing.validate_secret(secret.strip())
    except ValueError as exc:
        raise ConfigError("signing_secret", str(exc)) from None
    return secret.strip()


@functools.lru_cache(maxsize=64)
def _compiled(mappings: str) -> list[CompiledMapping]:
    # Keyed by the saved text: an updated source's new mappings compile on their first payload.
    return compile_mappings(orjson.loads(mappings), FIELD)


def map_payload(source: str, mappings: str, payload: bytes) -> tuple[bytes, int]:
    """The Tracking API batch (JSON) a payload becomes, and its event count. ValueError: the
    payload cannot be mapped (the HTTP port answers 400 with the message)."""
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the payload is not JSON: {exc}") from None
    compiled = _compiled(mappings)
    events: list[Any] = []
    for position, item in enumerate(document if isinstance(document, list) else [document]):
        if not isinstance(item, dict):
            raise ValueError(f"payload item {position} is not a JSON object")
        for event in apply_mappings(compiled, item):
            if not isinstance(event, dict):
                raise ValueError(
                    f"source {source!r}: a mapping made {orjson.dumps(event).decode()[:100]} of payload item "
                    f"{position}, not an event object"
                )
            events.append(event)
    return orjson.dumps({"batch": events}), len(events)
