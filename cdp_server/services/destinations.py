"""AdminService's Connections RPCs: destinations, their delivery statistics, replays and dead
letters.

The engine keeps the definitions, cursors and dead letters; this layer adds what only Python
knows: each kind checks its settings when a destination is saved (and mappings are compiled),
secrets are never sent back, the delivery manager is told about every change, and replays are
queued on the destination's worker.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import grpc
import orjson
from tributary._proto.cdp.v1 import destination_pb2

from cdp_server import _core, errors
from cdp_server.auth import Caller
from cdp_server.destinations.base import ConfigError
from cdp_server.destinations.kinds import kind_named
from cdp_server.destinations.manager import DeliveryManager
from cdp_server.destinations.mappings import apply_mappings, compile_mappings
from cdp_server.services import access
from cdp_server.services.routes import Route

# Forwarded as bytes to the engine (nothing to check or hide).
ROUTES = (
    Route("DeliveryStats", _core.Engine.delivery_stats),
    Route("ListDeadLetters", _core.Engine.list_dead_letters),
    Route("DiscardDeadLetters", _core.Engine.discard_dead_letters),
)

# Settings never sent back: keys holding secrets, and passwords inside connection URLs.
_SECRET_KEYS = {"secrets", "secret", "password", "auth_token", "token", "api_key"}
_URL_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]+@")
REDACTED = "(hidden)"


def redact(settings: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for key, value in settings.items():
        if key in _SECRET_KEYS:
            shown[key] = [REDACTED] * len(value) if isinstance(value, list) else REDACTED
        elif isinstance(value, str):
            shown[key] = _URL_PASSWORD.sub(rf"\g<1>{REDACTED}@", value)
        else:
            shown[key] = value
    return shown


class DestinationAdmin:
    def __init__(self, engine: _core.Engine, manager: DeliveryManager) -> None:
        self._engine = engine
        self._manager = manager

    def handlers(self) -> dict[str, access.Handler]:
        pb = destination_pb2

        def unary(method: Callable[[Any, grpc.ServicerContext, Caller], Any], request: type[Any]) -> access.Handler:
            return access.unary(method, request, access.serialized)

        return {
            "CreateDestination": unary(self.create, pb.CreateDestinationRequest),
            "UpdateDestination": unary(self.update, pb.UpdateDestinationRequest),
            "GetDestination": unary(self.get, pb.GetDestinationRequest),
            "ListDestinations": unary(self.list, pb.ListDestinationsRequest),
            "DeleteDestination": unary(self.delete, pb.DeleteDestinationRequest),
            "SetDestinationPaused": unary(self.set_paused, pb.SetDestinationPausedRequest),
            "Replay": unary(self.replay, pb.ReplayRequest),
            "ReplayDeadLetters": unary(self.replay_dead_letters, pb.DeadLettersRequest),
            "TestDestination": unary(self.test, pb.TestDestinationRequest),
        }

    # Each handler: engine errors and ConfigError become status codes (who may call: access.RULES).

    @errors.unary
    def create(
        self, request: destination_pb2.CreateDestinationRequest, context: grpc.ServicerContext, caller: Caller
    ) -> destination_pb2.DestinationResponse:
        self._check(request.destination)
        response = destination_pb2.DestinationResponse.FromString(
            self._engine.create_destination(request.SerializeToString())
        )
        self._manager.reload()
        # Shown once, with any secret the kind made (as a write key is).
        return response

    @errors.unary
    def update(
        self, request: destination_pb2.UpdateDestinationRequest, context: grpc.ServicerContext, caller: Caller
    ) -> destination_pb2.DestinationResponse:
        destination = request.destination
        if not destination.settings:
            # Settings left out: keep the saved ones (they hold secrets a client never saw).
            destination.settings = self._saved(destination.name).settings
        self._check(destination)
        response = destination_pb2.DestinationResponse.FromString(
            self._engine.update_destination(request.SerializeToString())
        )
        self._manager.reload()
        return self._shown(response)

    @errors.unary
    def get(
        self, request: destination_pb2.GetDestinationRequest, context: grpc.ServicerContext, caller: Caller
    ) -> destination_pb2.DestinationResponse:
        return self._shown(
            destination_pb2.DestinationResponse.FromString(self._engine.get_destination(request.SerializeToString()))
        )

    @errors.unary
    def list(
        self, request: destination_pb2.ListDestinationsRequest, context: grpc.ServicerContext, caller: Caller
    ) -> destination_pb2.ListDestinationsResponse:
        listed = destination_pb2.ListDestinationsResponse.FromString(
            self._engine.list_destinations(request.SerializeToString())
        )
        for destination in listed.destinations:
            _hide_secrets(destination)
        return listed

    @errors.unary
    def delete(
        self, request: destination_pb2.DeleteDestinationRequest, context: grpc.ServicerContext, caller: Caller
    ) -> destination_pb2.DeleteDestinationResponse:
        response = destination_pb2.DeleteDestinationResponse.FromString(
            self._engine.delete_destination(request.SerializeToString())
        )
        self._manager.reload()
        return response

    @errors.unary
    def set_paused(
        self, request: destination_pb2.SetDestinationPausedRequest, context: grpc.ServicerContext, caller: Caller
    ) -> destination_pb2.DestinationResponse:
        response = destination_pb2.DestinationResponse.FromString(
            self._engine.set_destination_paused(request.SerializeToString())
        )
        self._manager.reload()
        return self._shown(response)

    @errors.unary
    def replay(
        self, request: destination_pb2.ReplayRequest, context: grpc.ServicerContext, caller: Caller
    ) -> destination_pb2.ReplayResponse:
        if not request.message_ids and request.end_ms and request.end_ms <= request.start_ms:
            raise ConfigError("end_ms", "must be after start_ms (or 0: until now)")
        id, seqs = self._engine.replay_selection(
            request.name, request.start_ms, request.end_ms, list(request.message_ids)
        )
        if seqs:
            self._manager.replay(id, request.name, seqs, dead_letters=False)
        return destination_pb2.ReplayResponse(queued=len(seqs) // 8)

    @errors.unary
    def replay_dead_letters(
        self, request: destination_pb2.DeadLettersRequest, context: grpc.ServicerContext, caller: Caller
    ) -> destination_pb2.DeadLettersResponse:
        only = b"".join(seq.to_bytes(8, "little") for seq in request.seqs)
        id, seqs = self._engine.dead_letter_seqs(request.name, only)
        if seqs:
            self._manager.replay(id, request.name, seqs, dead_letters=True)
        return destination_pb2.DeadLettersResponse(count=len(seqs) // 8)

    @errors.unary
    def test(
        self, request: destination_pb2.TestDestinationRequest, context: grpc.ServicerContext, caller: Caller
    ) -> destination_pb2.TestDestinationResponse:
        """What the destination would be sent for one event: its mappings applied, nothing sent."""
        destination = self._saved(request.name)
        try:
            event = orjson.loads(request.event)
        except orjson.JSONDecodeError as err:
            raise ConfigError("event", f"not JSON: {err}") from None
        if not isinstance(event, dict):
            raise ConfigError("event", "must be a JSON object (one Segment-Spec event)")
        mappings = compile_mappings(orjson.loads(destination.mappings)) if destination.mappings else None
        outputs = apply_mappings(mappings, event) if mappings is not None else [event]
        return destination_pb2.TestDestinationResponse(
            routed=bool(outputs),
            reason="" if outputs else "no mapping's trigger matches the event",
            output=orjson.dumps(outputs),
        )

    def _saved(self, name: str) -> destination_pb2.Destination:
        request = destination_pb2.GetDestinationRequest(name=name)
        return destination_pb2.DestinationResponse.FromString(
            self._engine.get_destination(request.SerializeToString())
        ).destination

    @staticmethod
    def _check(destination: destination_pb2.Destination) -> None:
        """The kind checks (and completes) the settings; mappings must compile."""
        kind = kind_named(destination.kind)
        try:
            settings = orjson.loads(destination.settings or b"{}")
        except orjson.JSONDecodeError as err:
            raise ConfigError("destination.settings", f"not JSON: {err}") from None
        if not isinstance(settings, dict):
            raise ConfigError("destination.settings", "must be a JSON object")
        try:
            checked = kind.validate(settings)
        except ConfigError as err:
            raise ConfigError(f"destination.{err.field}", err.message) from None
        destination.settings = orjson.dumps(checked)
        if destination.mappings:
            try:
                compile_mappings(orjson.loads(destination.mappings))
            except orjson.JSONDecodeError as err:
                raise ConfigError("destination.mappings", f"not JSON: {err}") from None

    @staticmethod
    def _shown(response: destination_pb2.DestinationResponse) -> destination_pb2.DestinationResponse:
        _hide_secrets(response.destination)
        return response


def _hide_secrets(destination: destination_pb2.Destination) -> None:
    if destination.settings:
        destination.settings = orjson.dumps(redact(orjson.loads(destination.settings)))
