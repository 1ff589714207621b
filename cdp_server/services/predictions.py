"""The AudienceService's prediction RPCs: definitions, refreshes, reports and explanations
(`cdp_server.predictions`). Training and scoring run on the caller's thread for RefreshPrediction
and in `PredictionScheduler` otherwise."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, NoReturn

import grpc
from tributary._proto.cdp.v1 import audience_pb2 as pb

from cdp_server import _core, errors
from cdp_server.auth import Caller
from cdp_server.predictions.definitions import DAY_MS, Definition, DefinitionError, check
from cdp_server.predictions.pipeline import NotReady, Predictions, run_in_background
from cdp_server.services import access

log = logging.getLogger(__name__)
# Scores are refreshed at least this often, and models retrained weekly (`pipeline`).
REFRESH_EVERY_MS = DAY_MS
_SCHEDULER_PERIOD_SECS = 600.0


def _at_ms(at: Any, present: bool) -> int:
    return int(at.ToMilliseconds()) if present else int(time.time() * 1000)


def to_message(definition: Definition) -> pb.Prediction:
    message = pb.Prediction(
        key=definition.key,
        goals=definition.goals,
        horizon_days=definition.horizon_days,
        churn=definition.churn,
        ltv=definition.ltv,
        population=definition.population or "",
        state=definition.state,
        reason=definition.reason,
        version=definition.version,
        traits=definition.trait_names(),
        trait_features=definition.trait_features,
    )
    if definition.trained_ms:
        message.trained_at.FromMilliseconds(definition.trained_ms)
    if definition.scored_ms:
        message.scored_at.FromMilliseconds(definition.scored_ms)
    return message


def _invalid(context: grpc.ServicerContext, exc: Exception) -> NoReturn:
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    raise AssertionError("context.abort returns only by raising")


class PredictionHandlers:
    def __init__(self, engine: _core.Engine) -> None:
        self._predictions = Predictions(engine)
        # One training or scoring at a time per server: each takes both cores for a while.
        self._busy = threading.Lock()

    def handlers(self) -> dict[str, access.Handler]:
        s = access.serialized
        return {
            "CreatePrediction": access.unary(self.create, pb.CreatePredictionRequest, s),
            "GetPrediction": access.unary(self.get, pb.GetPredictionRequest, s),
            "ListPredictions": access.unary(self.list, pb.ListPredictionsRequest, s),
            "DeletePrediction": access.unary(self.delete, pb.DeletePredictionRequest, s),
            "RefreshPrediction": access.unary(self.refresh, pb.RefreshPredictionRequest, s),
            "GetPredictionReport": access.unary(self.report, pb.GetPredictionRequest, s),
            "ExplainPrediction": access.unary(self.explain, pb.ExplainPredictionRequest, s),
        }

    def _definition(self, key: str, context: grpc.ServicerContext) -> Definition:
        definition = self._predictions.get(key)
        if definition is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"key: no prediction {key!r}")
            raise AssertionError("unreachable")
        return definition

    @errors.unary
    def create(
        self, request: pb.CreatePredictionRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.Prediction:
        given = request.prediction
        definition = Definition(
            key=given.key,
            goals=list(given.goals),
            horizon_days=given.horizon_days,
            churn=given.churn,
            ltv=given.ltv,
            population=given.population or None,
            trait_features=list(given.trait_features),
            created_ms=int(time.time() * 1000),
        )
        try:
            check(definition)
        except DefinitionError as exc:
            _invalid(context, exc)
        if self._predictions.get(definition.key) is not None:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, f"key: a prediction {definition.key!r} exists")
        self._predictions.save(definition)
        return to_message(definition)

    @errors.unary
    def get(self, request: pb.GetPredictionRequest, context: grpc.ServicerContext, caller: Caller) -> pb.Prediction:
        return to_message(self._definition(request.key, context))

    @errors.unary
    def list(
        self, request: pb.ListPredictionsRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.ListPredictionsResponse:
        return pb.ListPredictionsResponse(predictions=[to_message(d) for d in self._predictions.all()])

    @errors.unary
    def delete(
        self, request: pb.DeletePredictionRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.DeletePredictionResponse:
        self._definition(request.key, context)
        with self._busy:
            self._predictions.delete(request.key)
        return pb.DeletePredictionResponse()

    @errors.unary
    def refresh(
        self, request: pb.RefreshPredictionRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.RefreshPredictionResponse:
        self._definition(request.key, context)
        at = _at_ms(request.at, request.HasField("at"))
        with self._busy:
            outcome = self._predictions.refresh(request.key, at, retrain=request.retrain or None)
        return pb.RefreshPredictionResponse(outcome_json=json.dumps(outcome, sort_keys=True))

    @errors.unary
    def report(
        self, request: pb.GetPredictionRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.PredictionReport:
        self._definition(request.key, context)
        records: dict[str, bytes] = dict(self._predictions.records_of(request.key))
        prefix = f"{request.key}/"
        return pb.PredictionReport(
            report_json=records.get(f"{prefix}report", b"").decode(),
            calibration_png=records.get(f"{prefix}chart/calibration", b""),
            gains_png=records.get(f"{prefix}chart/gains", b""),
            backtests_json=[v.decode() for k, v in records.items() if k.startswith(f"{prefix}backtest/")],
        )

    @errors.unary
    def explain(
        self, request: pb.ExplainPredictionRequest, context: grpc.ServicerContext, caller: Caller
    ) -> pb.PredictionExplanation:
        self._definition(request.key, context)
        try:
            found = self._predictions.explain(request.key, request.profile, _at_ms(request.at, request.HasField("at")))
        except NotReady as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"key: not ready: {exc}")
        except LookupError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, f"profile: {exc}")
        return pb.PredictionExplanation(explanation_json=json.dumps(found, sort_keys=True))

    def run_due(self, now_ms: int) -> None:
        """Refreshes every prediction whose scores are a day old (retraining weekly)."""
        for definition in self._predictions.all():
            if now_ms - definition.scored_ms < REFRESH_EVERY_MS and definition.state != "new":
                continue
            with self._busy:
                try:
                    self._predictions.refresh(definition.key, now_ms)
                except (_core.CoreError, ValueError, KeyError) as exc:
                    log.warning("prediction %s: refresh failed: %s", definition.key, exc)


class PredictionScheduler:
    """Refreshes predictions in the background: daily scores, weekly models."""

    def __init__(self, handlers: PredictionHandlers, stop: threading.Event) -> None:
        self._handlers = handlers
        self._stop = stop
        self._thread = threading.Thread(target=self._run, name="predictions", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        run_in_background()
        while not self._stop.wait(_SCHEDULER_PERIOD_SECS):
            self._handlers.run_due(int(time.time() * 1000))
