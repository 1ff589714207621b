"""ProfileService: profiles (by any identifier or by id), their events, identifiers and account
links. Every RPC is forwarded as bytes to the engine (see `routes`), but for a verbose
GetProfile, which also explains the profile's prediction scores (`cdp_server.predictions`)."""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc
from tributary._proto.cdp.v1 import profile_pb2

from cdp_server import _core, errors
from cdp_server.auth import Caller
from cdp_server.predictions.pipeline import NotReady, Predictions
from cdp_server.services import access
from cdp_server.services.access import Guard
from cdp_server.services.routes import Route, forwarded

log = logging.getLogger(__name__)
SERVICE = "cdp.v1.ProfileService"

ROUTES = (
    Route("BatchGetProfiles", _core.Engine.batch_get_profiles),
    Route("GetMergeHistory", _core.Engine.get_merge_history),
    Route("ExplainLink", _core.Engine.explain_link),
    Route("ListEvents", _core.Engine.list_events),
    Route("ListIdentifiers", _core.Engine.list_identifiers),
    Route("ListLinks", _core.Engine.list_links),
)


class ProfileService:
    def __init__(self, engine: _core.Engine, guard: Guard) -> None:
        self._engine = engine
        self._guard = guard
        self._predictions = Predictions(engine)

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return self._guard.service(
            SERVICE, {"GetProfile": access.unary(self.get_profile), **forwarded(self._engine, ROUTES)}
        )

    def get_profile(self, request: bytes, context: grpc.ServicerContext, caller: Caller) -> bytes:
        try:
            reply = self._engine.get_profile(request)
        except _core.CoreError as exc:
            errors.abort(context, exc)
        if not profile_pb2.GetProfileRequest.FromString(request).verbose:
            return reply
        answer = profile_pb2.GetProfileResponse.FromString(reply)
        now = int(time.time() * 1000)
        for definition in self._predictions.all():
            if definition.state != "ready":
                continue
            try:
                found = self._predictions.explain(definition.key, answer.profile.id, now)
            except (NotReady, LookupError):
                continue  # no model, or the profile has none of the events it reads
            answer.profile.predictions.append(
                profile_pb2.ScoreExplanation(
                    key=definition.key,
                    score=found["score"],
                    raw_score=found["raw_score"],
                    expected_value=found["expected_value"],
                    reasons=[
                        profile_pb2.ScoreReason(
                            feature=r["feature"],
                            value=float("nan") if r["value"] is None else r["value"],
                            contribution=r["contribution"],
                        )
                        for r in found["contributions"]
                    ],
                )
            )
        return answer.SerializeToString()
