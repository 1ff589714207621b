"""The destination kinds a server knows: the built-in ones, and custom ones found through the
entry point group `tributary.destinations`.

A custom kind is a class with one method, `deliver(batch)` (a coroutine function, or a plain
function that the worker runs in a thread). It is built as `Kind(settings)` from the
destination's settings; an optional class method `validate(settings) -> dict` checks them when
the destination is saved (raising `ConfigError`). It gets the same retries, dead letters and
metrics as the built-in kinds: raise `RetryableError`, `PermanentError` or `PayloadTooLarge`
from `cdp_server.destinations.base`; any other exception counts as retryable.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from cdp_server.destinations.base import ConfigError, Destination, DestinationKind, JsonObject

ENTRY_POINT_GROUP = "tributary.destinations"

# Built-in kinds by name: module paths, imported on first use (each brings its client library).
_BUILT_IN = {
    "webhook": "cdp_server.destinations.webhook",
    "warehouse": "cdp_server.destinations.warehouse",
    "files": "cdp_server.destinations.files",
    "nats": "cdp_server.destinations.nats",
}


class CustomKind:
    """A kind from an entry point: a class with `deliver(batch)`."""

    def __init__(self, name: str, cls: type[Any]) -> None:
        self.name = name
        self._cls = cls

    def validate(self, settings: Mapping[str, Any]) -> JsonObject:
        check = getattr(self._cls, "validate", None)
        if check is None:
            return dict(settings)
        checked: JsonObject = check(dict(settings))
        return checked

    def create(self, name: str, settings: Mapping[str, Any]) -> Destination:
        destination: Destination = self._cls(dict(settings))
        return destination


def kind_named(name: str) -> DestinationKind:
    """The kind called `name`; ConfigError (on `destination.kind`) when there is none."""
    module_name = _BUILT_IN.get(name)
    if module_name is not None:
        module = importlib.import_module(module_name)
        kind: DestinationKind = module.KIND
        return kind
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            return CustomKind(name, entry.load())
    known = sorted({*_BUILT_IN, *(e.name for e in entry_points(group=ENTRY_POINT_GROUP))})
    raise ConfigError("destination.kind", f"unknown kind {name!r} (known: {', '.join(known)})")
