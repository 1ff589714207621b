"""A destination's mappings, as the worker applies them: a JSON list of
`{"trigger": …, "mapping": …}` (docs/mappings.md). Each event yields one output per mapping
whose trigger it matches (no trigger: every event), as Segment's Actions do; an event that
matches none is not sent. Checked when the destination is saved (`compile_mappings`).
"""

from __future__ import annotations

import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from tributary._proto.cdp.v1 import destination_pb2

from cdp_server.destinations.base import Batch, ConfigError, JsonObject
from cdp_server.destinations.mapping import Mapping, compile_mapping
from cdp_server.destinations.mapping_trigger import Trigger, compile_trigger

# Segment's limit per destination.
MAX_MAPPINGS = 50


@dataclass(frozen=True)
class CompiledMapping:
    trigger: Trigger | None
    mapping: Mapping

    def applies_to(self, event: JsonObject) -> bool:
        return self.trigger is None or self.trigger.matches(event)


def compile_mappings(spec: Any, field: str = "destination.mappings") -> list[CompiledMapping]:
    """The mappings of a destination (or a webhook source), checked; ConfigError names the bad
    place under `field`."""
    if not isinstance(spec, list):
        raise ConfigError(field, "must be a list of {trigger, mapping}")
    if len(spec) > MAX_MAPPINGS:
        raise ConfigError(field, f"at most {MAX_MAPPINGS} mappings")
    compiled = []
    for i, entry in enumerate(spec):
        where = f"{field}[{i}]"
        if not isinstance(entry, dict) or "mapping" not in entry or set(entry) - {"trigger", "mapping"}:
            raise ConfigError(where, 'must be an object with "mapping" and optionally "trigger"')
        trigger = entry.get("trigger")
        compiled.append(
            CompiledMapping(
                compile_trigger(trigger, field=f"{where}.trigger") if trigger is not None else None,
                compile_mapping(entry["mapping"], field=f"{where}.mapping"),
            )
        )
    return compiled


def apply_mappings(mappings: list[CompiledMapping], event: JsonObject) -> list[Any]:
    """What one event becomes: one output per mapping that applies."""
    return [m.mapping.apply(event) for m in mappings if m.applies_to(event)]


def transform_for(
    definition: destination_pb2.Destination,
) -> Callable[[Batch, array.array[int]], tuple[Batch, array.array[int]]] | None:
    """The worker's transform for a destination with mappings (None: events go as they are)."""
    if not definition.mappings:
        return None
    mappings = compile_mappings(orjson.loads(definition.mappings))

    def transform(batch: Batch, seqs: array.array[int]) -> tuple[Batch, array.array[int]]:
        outputs: list[Any] = []
        ids: list[str] = []
        out_seqs = array.array("Q")
        for event, message_id, seq in zip(batch.events, batch.message_ids, seqs, strict=True):
            for output in apply_mappings(mappings, event):
                outputs.append(output)
                ids.append(message_id)
                out_seqs.append(seq)
        return Batch.of_events(batch.destination, outputs, ids), out_seqs

    return transform
