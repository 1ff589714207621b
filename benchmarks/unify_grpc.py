"""Profile lookups over gRPC: ``cdp serve`` on a preloaded data directory against the do-nothing
unary server, both driven by ``benchmarks.unify_client`` in a separate process.

The data directory is filled in-process first (the engine, then closed: one process per data
directory), so the server only serves lookups while it is measured.
"""

from __future__ import annotations

import json
import random
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tributary._proto.cdp.v1 import profile_pb2

from benchmarks.process import free_port, running_server
from benchmarks.systems import REPO_ROOT
from benchmarks.unify_client import BATCH_GET_PROFILES, GET_PROFILE, UnaryOutcome, save_requests
from benchmarks.unify_engine import batch_requests, ingest, open_engine
from benchmarks.unify_workload import UnifyWorkload

ADMIN_TOKEN_ENV = "TRIBUTARY_ADMIN_TOKEN"
DISTINCT_REQUESTS = 20_000
BATCH_REQUESTS = 200
BATCH_IN_FLIGHT = 2  # one per core: more only queues
# Short alternating rounds, the median of each side kept: on a 2-CPU VM one round's rate can
# be 50 % off the next (client and server share the cores), and the median resists that.
ROUNDS = 5


@dataclass(frozen=True)
class GrpcSettings:
    seconds: float  # of one measured round
    in_flight: int
    warmup_s: float
    cdp: Path
    tmp_root: Path | None
    seed: int
    rounds: int = ROUNDS


@dataclass(frozen=True)
class GrpcRuns:
    tributary: UnaryOutcome
    baseline: UnaryOutcome
    batch: UnaryOutcome
    # One call at a time: the latency of a lone call, which 32 in flight hides (Little's law).
    sequential: UnaryOutcome
    preload: dict[str, Any]
    # calls/s of every GetProfile round, in the order run; each side's median round is kept.
    rounds: dict[str, list[float]]


def _run_client(
    port: int, method: str, requests: Path, *, in_flight: int, seconds: float, settings: GrpcSettings, token: str | None
) -> UnaryOutcome:
    argv = [
        sys.executable, "-m", "benchmarks.unify_client",
        "--target", f"127.0.0.1:{port}",
        "--method", method,
        "--requests", str(requests),
        "--in-flight", str(in_flight),
        "--seconds", str(seconds),
        "--warmup", str(settings.warmup_s),
    ]  # fmt: skip
    if token:
        argv += ["--token", token]
    budget = settings.warmup_s + seconds + 60
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=budget)
    if done.returncode != 0:
        raise RuntimeError(f"client failed ({done.returncode}): {done.stderr.strip().splitlines()[-3:]}")
    outcome = UnaryOutcome(**json.loads(done.stdout))
    if outcome.errors:
        raise RuntimeError(f"{outcome.errors} calls failed, first: {outcome.first_error}")
    return outcome


def _preload(work: UnifyWorkload, data_dir: Path) -> dict[str, Any]:
    with open_engine(data_dir) as (engine, source_id):
        run = ingest(engine, source_id, work.batches)
    if run.accepted != work.n_events:
        raise RuntimeError(f"preload accepted {run.accepted} of {work.n_events} events")
    return {"people": work.n_profiles, "events": run.events, "seconds": round(run.seconds, 3)}


def measure_grpc(work: UnifyWorkload, settings: GrpcSettings, *, settle: Callable[[], None]) -> GrpcRuns:
    """GetProfile against ``cdp serve`` and the baseline, both serving at once (an idle grpcio
    server costs nothing) in alternating rounds; then a lone-call run and BatchGetProfiles."""
    if not settings.cdp.exists():
        raise FileNotFoundError(f"{settings.cdp} not found: is the server installed?")
    rng = random.Random(settings.seed)
    token = "bench-" + secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="bench-unify-grpc-", dir=settings.tmp_root) as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        preload = _preload(work, data_dir)
        get_requests, batch_file = root / "get.bin", root / "batch.bin"
        save_requests(
            get_requests,
            [
                profile_pb2.GetProfileRequest(identifier=identifier).SerializeToString()
                for identifier in rng.choices(work.graph.nodes, k=DISTINCT_REQUESTS)
            ],
        )
        save_requests(batch_file, batch_requests(work.graph.nodes, batches=BATCH_REQUESTS, seed=settings.seed))
        settle()
        port, empty_port = free_port(), free_port()
        argv = [
            str(settings.cdp), "serve",
            "--data-dir", str(data_dir),
            "--host", "127.0.0.1",
            "--grpc-port", str(port),
            "--http-port", str(free_port()),
        ]  # fmt: skip
        empty_argv = [sys.executable, "-m", "benchmarks.unify_empty_server", "--port", str(empty_port)]
        with (
            running_server(
                argv, port=port, log_path=root / "server.log", env={ADMIN_TOKEN_ENV: token}, health_check=True
            ),
            running_server(empty_argv, port=empty_port, log_path=root / "empty.log"),
        ):

            def get(target: int, in_flight: int, seconds: float, with_token: bool) -> UnaryOutcome:
                return _run_client(
                    target,
                    GET_PROFILE,
                    get_requests,
                    in_flight=in_flight,
                    seconds=seconds,
                    settings=settings,
                    token=token if with_token else None,
                )

            # Alternating: a slow moment of the machine hits both sides alike.
            tributary, baseline = [], []
            for _ in range(settings.rounds):
                tributary.append(get(port, settings.in_flight, settings.seconds, True))
                baseline.append(get(empty_port, settings.in_flight, settings.seconds, False))
            sequential = get(port, 1, min(3.0, settings.seconds), True)
            batch = _run_client(
                port,
                BATCH_GET_PROFILES,
                batch_file,
                in_flight=BATCH_IN_FLIGHT,
                seconds=settings.seconds,
                settings=settings,
                token=token,
            )
    return GrpcRuns(
        tributary=_median(tributary),
        baseline=_median(baseline),
        batch=batch,
        sequential=sequential,
        preload=preload,
        rounds={"tributary": [_rate(r) for r in tributary], "baseline": [_rate(r) for r in baseline]},
    )


def _rate(outcome: UnaryOutcome) -> float:
    return outcome.calls_per_s


def _median(rounds: list[UnaryOutcome]) -> UnaryOutcome:
    """The round of median rate (its latencies with it, so they stay one run's)."""
    return sorted(rounds, key=_rate)[len(rounds) // 2]
