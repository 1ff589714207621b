"""Start-up time to SERVING against the size of the log.

One data directory is filled in steps with the ingest workload's events, in-process through the
engine (not measured; without fsync, since only the files matter). After each step ``cdp serve``
is started three times on it and timed from the process's start to the first health check that
answers SERVING (polled every 10 ms on a channel that reconnects within 10 to 50 ms):

- after the preload (the engine closed cleanly);
- after the previous server's SIGTERM (its graceful shutdown);
- after the previous server was killed with SIGKILL (a crash).

The issue's target is ≤ 5 s to SERVING on 10M events after SIGTERM and after kill -9; the
largest log measured here is smaller, so the report extrapolates along the least-squares line
through the sizes measured, and says so.

In that workload the people grow with the log. `measure_startup_same_people` separates the two:
the same people send more and more events (rounds of ~10 each), with a 1 s dedupe window, so
that only the log grows between restarts: start-up loads a snapshot of the people's graph and
the dedupe window, and replays nothing but the tail after the snapshot, so it should not grow.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tributary._proto.cdp.v1 import admin_pb2, event_pb2, ingest_pb2

from benchmarks.process import STOP_GRACE_S, ServerFailed, free_port, log_tail
from benchmarks.profiling import profiled
from benchmarks.report import STARTUP_TARGET_EVENTS, STARTUP_TARGET_S
from benchmarks.systems import DEV_WRITE_KEY_ENV, serve_argv
from benchmarks.unify_engine import ingest
from cdp_server import _core

STARTS = ("after preload", "after SIGTERM", "after kill -9")
TARGET_EVENTS = STARTUP_TARGET_EVENTS
TARGET_S = STARTUP_TARGET_S
POLL_S = 0.01
# Reconnect quickly while the server is not yet listening (grpc's default backoff starts at 1 s).
_FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 10),
    ("grpc.min_reconnect_backoff_ms", 10),
    ("grpc.max_reconnect_backoff_ms", 50),
]
BATCH_EVENTS = 500


@dataclass(frozen=True)
class StartupSettings:
    sizes: Sequence[int]  # events stored at each step, increasing
    cdp: Path
    tmp_root: Path | None
    profiler: str | None
    timeout_s: float = 600.0


def step_sizes(events: int) -> list[int]:
    """A tenth, three tenths and all of the workload (100k, 300k, 1M for the full run)."""
    return sorted({max(BATCH_EVENTS, round(events * share / BATCH_EVENTS) * BATCH_EVENTS) for share in (0.1, 0.3, 1)})


def _preload(data_dir: Path, batches: Sequence[bytes], *, dedupe_window_s: float | None = None) -> None:
    """Appends ``batches`` to the data directory's log through the engine, then closes it."""
    window = {} if dedupe_window_s is None else {"dedupe_window_secs": dedupe_window_s}
    engine = _core.Engine(data_dir, unsafe_no_sync=True, **window)
    try:
        sources = admin_pb2.ListSourcesResponse.FromString(engine.list_sources(b"")).sources
        mine = [source.id for source in sources if source.name == "startup-bench"]
        if not mine:
            mine = [admin_pb2.Source.FromString(engine.create_source("startup-bench", b"x" * 32)).id]
        run = ingest(engine, mine[0], batches)
    finally:
        engine.close()
    if run.accepted != run.events:
        raise RuntimeError(f"preload accepted {run.accepted} of {run.events} events")


def disk_bytes(path: Path) -> int:
    """Bytes the directory's files occupy on disk (LMDB files are sparse)."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def _serving(stub: health_pb2_grpc.HealthStub) -> bool:
    try:
        reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
    except grpc.RpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _start(
    argv: list[str],
    port: int,
    log_path: Path,
    settings: StartupSettings,
    *,
    profile: bool,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], float, dict[str, Any] | None]:
    """Starts the server and returns it once SERVING, with the seconds that took and, with
    ``profile``, a profile of its start-up; the caller stops it."""
    with log_path.open("ab") as log, contextlib.ExitStack() as stack:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, DEV_WRITE_KEY_ENV: "startup-bench-key", **(env or {})},
            start_new_session=True,
        )
        taken = None
        if profile and settings.profiler:
            context = "python -m benchmarks.run --only startup"
            # No wait for the profiler to attach: the clock is already running.
            roles = {"server": process.pid}
            taken = stack.enter_context(profiled(roles, tool=settings.profiler, context=context, attach_wait_s=0.0))
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}", options=_FAST_RECONNECT) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                while not _serving(stub):
                    if process.poll() is not None:
                        raise ServerFailed(f"cdp serve exited with {process.returncode}:\n{log_tail(log_path)}")
                    if time.perf_counter() - started > settings.timeout_s:
                        raise ServerFailed(f"cdp serve not SERVING after {settings.timeout_s:.0f} s")
                    time.sleep(POLL_S)
            seconds = time.perf_counter() - started
        except BaseException:
            _stop(process, signal.SIGKILL)
            raise
    return process, seconds, (taken.to_json() if taken else None)


def _stop(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """SIGTERM (a graceful shutdown, waited for) or SIGKILL (a crash) to the server's group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=STOP_GRACE_S * 3)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# How each start's server is stopped: so that the next start is of the next kind in STARTS,
# and the last one leaves the directory cleanly closed for the next preload.
_STOP_AFTER = {"after preload": signal.SIGTERM, "after SIGTERM": signal.SIGKILL, "after kill -9": signal.SIGTERM}


def measure_startup(
    batches: Sequence[bytes], settings: StartupSettings, *, settle: Callable[[], None]
) -> dict[str, Any]:
    """Start-up times for each size and kind of start, and a profile of the largest SIGTERM restart."""
    results: dict[str, Any] = {"sizes": [], "disk_bytes": [], "seconds": {start: [] for start in STARTS}}
    profile: dict[str, Any] | None = None
    loaded = 0
    with tempfile.TemporaryDirectory(prefix="bench-startup-", dir=settings.tmp_root) as tmp:
        data_dir, log_path = Path(tmp) / "data", Path(tmp) / "server.log"
        for size in settings.sizes:
            upto = min(len(batches), -(-size // BATCH_EVENTS))
            _preload(data_dir, batches[loaded:upto])
            loaded = upto
            settle()
            largest = size == settings.sizes[-1]
            times = []
            for start in STARTS:
                port = free_port()
                argv = serve_argv(settings.cdp, data_dir, port)
                process, seconds, taken = _start(
                    argv, port, log_path, settings, profile=largest and start == "after SIGTERM"
                )
                _stop(process, _STOP_AFTER[start])
                profile = taken or profile
                times.append(seconds)
                results["seconds"][start].append(round(seconds, 4))
            results["sizes"].append(size)
            results["disk_bytes"].append(disk_bytes(data_dir))
            print(
                f"    {size:,} events: " + ", ".join(f"{s} {t:.2f} s" for s, t in zip(STARTS, times, strict=True)),
                flush=True,
            )
    results["profile"] = profile
    results["extrapolated_s"] = extrapolate(results["sizes"], results["seconds"], TARGET_EVENTS)
    results["target_events"] = TARGET_EVENTS
    results["target_s"] = TARGET_S
    return results


def extrapolate(sizes: Sequence[int], seconds: dict[str, list[float]], events: int) -> float | None:
    """Start-up at ``events`` on the least-squares line through every size, by the slower of the
    SIGTERM and kill -9 restarts (the target's cases); None with fewer than two sizes."""
    if len(sizes) < 2:
        return None
    worst = [max(seconds[start][i] for start in STARTS[1:]) for i in range(len(sizes))]
    mean_n, mean_t = sum(sizes) / len(sizes), sum(worst) / len(worst)
    spread = sum((n - mean_n) ** 2 for n in sizes)
    slope = sum((n - mean_n) * (t - mean_t) for n, t in zip(sizes, worst, strict=True)) / spread if spread else 0.0
    return round(mean_t + max(0.0, slope) * (events - mean_n), 3)


# The same-people series: a dedupe window short enough to have passed between rounds.
SAME_PEOPLE_WINDOW_S = 1.0
EVENTS_PER_PERSON = 10


def same_people_round(people: int, round_number: int, batch_events: int = BATCH_EVENTS) -> list[bytes]:
    """~10 events of each of `people` people (browsing, an identify with email, orders), with
    message ids and times of their own in every round: the identifiers repeat, the events do not."""
    base_ms = 1_700_000_000_000 + round_number * 10_000_000_000
    events: list[event_pb2.Event] = []
    for person in range(people):
        anonymous_id, user_id = f"anon-{person:08d}", f"user-{person:08d}"
        at = base_ms + person * 10
        tag = f"{anonymous_id}-r{round_number}"
        for i in range(6):
            events.append(
                event_pb2.Event(
                    type=event_pb2.EVENT_TYPE_PAGE, anonymous_id=anonymous_id, name="Home",
                    message_id=f"{tag}-p{i}", properties=b'{"path":"/"}',
                )
            )  # fmt: skip
        traits = json.dumps({"email": f"p{person}@shop.test", "plan": "pro"}).encode()
        events.append(
            event_pb2.Event(
                type=event_pb2.EVENT_TYPE_IDENTIFY, anonymous_id=anonymous_id, user_id=user_id,
                message_id=f"{tag}-id", traits=traits,
            )
        )  # fmt: skip
        for i in range(EVENTS_PER_PERSON - 7):
            events.append(
                event_pb2.Event(
                    type=event_pb2.EVENT_TYPE_TRACK, user_id=user_id, event="Order Completed",
                    message_id=f"{tag}-t{i}", properties=b'{"revenue":10}',
                )
            )  # fmt: skip
        for offset, event in enumerate(events[-EVENTS_PER_PERSON:]):
            event.timestamp.FromMilliseconds(at + offset)
    return [
        ingest_pb2.StreamRequest(
            sequence=i, batch=event_pb2.Batch(events=events[i : i + batch_events])
        ).SerializeToString()
        for i in range(0, len(events), batch_events)
    ]


def measure_startup_same_people(
    people: int, rounds: int, settings: StartupSettings, *, settle: Callable[[], None]
) -> dict[str, Any]:
    """Start-up after SIGTERM as the same `people` send round after round of events."""
    results: dict[str, Any] = {"people": people, "dedupe_window_s": SAME_PEOPLE_WINDOW_S, "sizes": [], "seconds": []}
    env_window = {"TRIBUTARY_DEDUPE_WINDOW_SECS": str(SAME_PEOPLE_WINDOW_S)}
    with tempfile.TemporaryDirectory(prefix="bench-startup-people-", dir=settings.tmp_root) as tmp:
        data_dir, log_path = Path(tmp) / "data", Path(tmp) / "server.log"
        for round_number in range(rounds):
            time.sleep(SAME_PEOPLE_WINDOW_S * 1.5)  # the last round's dedupe markers have expired
            _preload(data_dir, same_people_round(people, round_number), dedupe_window_s=SAME_PEOPLE_WINDOW_S)
            settle()
            times = []
            for stop in (signal.SIGTERM, signal.SIGTERM):  # the first start writes its snapshot at SIGTERM
                port = free_port()
                process, seconds, _ = _start(
                    serve_argv(settings.cdp, data_dir, port), port, log_path, settings, profile=False, env=env_window
                )
                _stop(process, stop)
                times.append(seconds)
            size = (round_number + 1) * people * EVENTS_PER_PERSON
            results["sizes"].append(size)
            results["seconds"].append(round(times[-1], 4))
            print(f"    same {people:,} people, {size:,} events: {times[-1]:.2f} s after SIGTERM", flush=True)
    return results
