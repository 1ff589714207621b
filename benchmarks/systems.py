"""The systems under test that the streaming client drives: (b), (c) and Tributary itself.

Each one is started as its own process on 127.0.0.1, fed by ``benchmarks.client`` in
another process, and stopped whatever happens. Baseline (a) has no server: see
``lmdb_baseline``.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.measurement import AckLatency, Measurement
from benchmarks.process import free_port, running_server

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_WRITE_KEY_ENV = "TRIBUTARY_DEV_WRITE_KEY"


class VerificationFailed(RuntimeError):
    """The acknowledgements do not add up to the workload."""


@dataclass(frozen=True)
class StreamSettings:
    """What every client-driven run shares.

    Attributes:
        workload_path: The cached workload file the client streams.
        events: Number of events in it.
        window: Max unacknowledged batches.
        timeout_s: Deadline of one stream; the whole run of one system is bounded by it.
        tmp_root: Where fresh data directories are made (None: the system default).
        cdp: The ``cdp`` executable.
    """

    workload_path: Path
    events: int
    window: int
    timeout_s: float
    tmp_root: Path | None
    cdp: Path


def _drive(
    key: str, name: str, port: int, settings: StreamSettings, *, write_key: str | None, counts: bool
) -> Measurement:
    """Runs the client process against 127.0.0.1:``port`` and checks the acks.

    With ``counts``, the acks must report every event accepted and nothing else; otherwise
    (a server that does not decode) only one ack per batch is required.
    """
    argv = [
        sys.executable, "-m", "benchmarks.client",
        "--target", f"127.0.0.1:{port}",
        "--workload", str(settings.workload_path),
        "--window", str(settings.window),
        "--timeout", str(settings.timeout_s),
    ]  # fmt: skip
    if write_key:
        argv += ["--write-key", write_key]
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=settings.timeout_s + 60)
    if done.returncode != 0:
        raise RuntimeError(f"client failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    outcome = json.loads(done.stdout)
    if outcome["acks"] != outcome["batches"]:
        raise VerificationFailed(f"{outcome['acks']} acks for {outcome['batches']} batches")
    if counts:
        refused = {k: outcome[k] for k in ("duplicates", "conflicts", "rejected") if outcome[k]}
        if outcome["accepted"] != settings.events or refused:
            raise VerificationFailed(f"accepted {outcome['accepted']} of {settings.events} events; {refused}")
    return Measurement(
        key=key,
        name=name,
        events=settings.events,
        seconds=outcome["seconds"],
        ack=AckLatency(**outcome["ack"]),
        details={"batches": outcome["batches"], "window": settings.window}
        | ({k: outcome[k] for k in ("accepted", "duplicates", "conflicts", "rejected")} if counts else {}),
    )


def measure_empty_grpc(settings: StreamSettings) -> Measurement:
    """Baseline (b)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-empty-", dir=settings.tmp_root) as tmp:
        argv = [sys.executable, "-m", "benchmarks.empty_server", "--port", str(port)]
        with running_server(argv, port=port, log_path=Path(tmp) / "server.log"):
            return _drive("b", "empty grpcio server", port, settings, write_key=None, counts=False)


def measure_python_pipeline(settings: StreamSettings) -> Measurement:
    """Baseline (c)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-pypipe-", dir=settings.tmp_root) as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        argv = [sys.executable, "-m", "benchmarks.python_pipeline", "--port", str(port), "--data-dir", str(data_dir)]
        with running_server(argv, port=port, log_path=Path(tmp) / "server.log"):
            return _drive("c", "plain-Python pipeline", port, settings, write_key=None, counts=True)


def measure_tributary(settings: StreamSettings) -> Measurement:
    """The real run: ``cdp serve`` with a development write key, on a fresh data directory."""
    if not settings.cdp.exists():
        raise FileNotFoundError(f"{settings.cdp} not found: is the server installed?")
    port = free_port()
    write_key = "bench-" + secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="bench-tributary-", dir=settings.tmp_root) as tmp:
        data_dir = Path(tmp) / "data"
        # Explicit host and a free HTTP port: never 0.0.0.0, never a clash with a running server.
        # Not --unsafe-benchmark-mode: the target is about durable (fsync'd) acknowledgements.
        argv = [
            str(settings.cdp), "serve",
            "--data-dir", str(data_dir),
            "--host", "127.0.0.1",
            "--grpc-port", str(port),
            "--http-port", str(free_port()),
        ]  # fmt: skip
        with running_server(
            argv,
            port=port,
            log_path=Path(tmp) / "server.log",
            env={DEV_WRITE_KEY_ENV: write_key},
            health_check=True,
        ):
            return _drive("real", "Tributary (cdp serve)", port, settings, write_key=write_key, counts=True)
