"""The background refresh: a new prediction trains and scores at the next round, scores are
refreshed once a day and models retrained once a week (`PredictionHandlers.run_due`, which the
scheduler thread calls every few minutes)."""

from __future__ import annotations

import json
from pathlib import Path

from cdp_server import _core
from cdp_server.predictions.definitions import DAY_MS, Definition, check
from cdp_server.predictions.pipeline import Predictions
from cdp_server.services.predictions import PredictionHandlers
from tests.test_predictions_delivery import purchase_history

# Day 360 of the history ends.
AT = 1_704_067_200_000 + 360 * DAY_MS - 1
HOUR_MS = 3_600_000


def test_new_predictions_train_scores_refresh_daily_and_models_weekly(tmp_path: Path) -> None:
    engine = _core.Engine(tmp_path / "data")
    try:
        history = purchase_history()
        for start in range(0, len(history), 1_000):
            outcome = engine.send_json(1, json.dumps({"batch": history[start : start + 1_000]}).encode())
            assert not outcome.rejections
        predictions = Predictions(engine)
        predictions.save(check(Definition(key="buy", goals=["event('Order Completed')"], horizon_days=30)))
        handlers = PredictionHandlers(engine)

        def state() -> tuple[str, int, int, int]:
            found = predictions.get("buy")
            assert found is not None
            return found.state, found.version, found.trained_ms, found.scored_ms

        handlers.run_due(AT)
        assert state() == ("ready", 1, AT, AT), "a new prediction trains and scores at once"
        handlers.run_due(AT + HOUR_MS)
        assert state() == ("ready", 1, AT, AT), "scored an hour ago: nothing to do"
        handlers.run_due(AT + DAY_MS)
        assert state() == ("ready", 1, AT, AT + DAY_MS), "a day later: scored again with the same model"
        handlers.run_due(AT + 7 * DAY_MS)
        assert state() == ("ready", 2, AT + 7 * DAY_MS, AT + 7 * DAY_MS), "a week later: a new model"
    finally:
        engine.close()
