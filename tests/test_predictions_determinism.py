"""A prediction is a function of the events, the definition and the evaluation time: the same events sent
into two fresh data directories, by two processes (with different hash seeds), give the same model bytes,
the same report, the same kept scores and the same traits on every person."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from cdp_server import _core
from cdp_server.predictions.definitions import Definition, check
from cdp_server.predictions.pipeline import Predictions
from tests import prediction_workload as w

ROOT = Path(__file__).resolve().parent.parent
PEOPLE = 1_500
AT = w.day_end(330)
KEY = "buy"


def events(seed: int) -> list[w.Event]:
    rng = np.random.default_rng(seed)
    rate = np.exp(rng.normal(np.log(1 / 60), 0.9, PEOPLE))
    spend = np.exp(rng.normal(np.log(40.0), 0.6, PEOPLE))
    joined = w.START_MS + 1_000 + (rng.random(PEOPLE) * 150 * w.DAY_MS).astype(np.int64)
    found = w.poisson(rng, "Order Completed", rate, joined, AT, revenue=spend)
    found += w.poisson(rng, "Page Viewed", 3 * rate, joined, AT)
    return found


def child(events_path: str, data_dir: str, out_path: str) -> None:
    """One process's run: send the events, train and score at AT, and write what came of it."""
    engine = _core.Engine(data_dir, unsafe_no_sync=True, snapshots=False)
    try:
        w.send(engine, [w.Event(**e) for e in json.loads(Path(events_path).read_text())])
        predictions = Predictions(engine)
        predictions.save(check(Definition(key=KEY, goals=["event('Order Completed')"], horizon_days=30)))
        outcome = predictions.refresh(KEY, AT)
        model = engine.prediction_records(f"{KEY}/model")
        snapshot = predictions.record(KEY, f"snapshot/{AT:016d}")
        assert snapshot is not None
        with np.load(io.BytesIO(snapshot), allow_pickle=False) as kept:
            # Profile ids are drawn per data directory: the kept scores are compared by person.
            owners = w.person_of(engine, PEOPLE)
            people = [owners[p] for p in engine.profile_ids(kept["ids"].tobytes())]
            scores = dict(zip(people, kept["predicted"].tolist(), strict=True))
        result = {
            "outcome": outcome,
            "model": [(k, v.decode()) for k, v in model],
            "report": predictions.report(KEY),
            "kept": sorted(scores.items()),
            "traits": sorted(w.traits_of(engine, PEOPLE).items()),
        }
        Path(out_path).write_text(json.dumps(result, sort_keys=True))
    finally:
        engine.close()


def test_the_same_events_give_the_same_model_and_traits_in_another_process(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text(json.dumps([asdict(e) for e in events(31)]))
    runs = []
    for run, hash_seed in (("a", "1"), ("b", "2")):
        code = "import sys; from tests.test_predictions_determinism import child; child(*sys.argv[1:])"
        command = [sys.executable, "-c", code, str(path), str(tmp_path / run / "data"), str(tmp_path / f"{run}.json")]
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        runs.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for process in runs:
        output, _ = process.communicate(timeout=240)
        assert process.returncode == 0, output.decode()[-4000:]
    a, b = (json.loads((tmp_path / f"{run}.json").read_text()) for run in ("a", "b"))

    assert a["outcome"]["state"] == "ready", a["outcome"]
    (key, model), *_ = a["model"]
    assert key == f"{KEY}/model" and len(a["model"]) == 1
    assert hashlib.sha256(model.encode()).hexdigest() == hashlib.sha256(b["model"][0][1].encode()).hexdigest()
    assert a["model"] == b["model"]
    assert a["report"] == b["report"]
    assert a["kept"] == b["kept"] and len(a["kept"]) >= 0.95 * PEOPLE
    assert a["traits"] == b["traits"]
    written = [t for _, t in a["traits"] if f"{KEY}_probability" in t]
    assert len(written) == len(a["kept"])
    assert a["outcome"]["scores"] == b["outcome"]["scores"]
