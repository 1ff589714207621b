"""The paths a user takes to load data, measured end to end against ``cdp serve``:

- ``Client.stream(dicts)``: ``benchmarks.dicts_client`` in its own process holds the workload as
  Segment-Spec dicts (built before the clock) and times ``tributary.Client(...).stream(dicts)``
  with the library's defaults until the last ack;
- ``cdp import FILE.jsonl``: the workload written as JSON lines beforehand, timed from process
  start to exit. Its start-up (Python, imports, connecting, the health check) is measured by
  importing an empty file against the same server, the median of a few runs, and subtracted
  to give the import's own duration, which the target is about.

Both are checked like every run: the acks (or the import's summary) must add up to exactly the
workload's events, all stored, none refused.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.measurement import Measurement
from benchmarks.process import run_client
from benchmarks.profiling import profiled
from benchmarks.systems import REPO_ROOT, ProfileAround, StreamSettings, VerificationFailed, tributary_server

CLIENT_STREAM = "Client.stream(dicts)"
CDP_IMPORT = "cdp import FILE.jsonl (start-up excluded)"
CDP_IMPORT_WALL = "cdp import FILE.jsonl (process start to exit)"


def measure_client_stream(settings: StreamSettings, json_lines: Path) -> Measurement:
    """``Client.stream(dicts)`` in a separate process against a fresh ``cdp serve``."""
    with tributary_server(settings, prefix="bench-dicts-") as (port, pid, write_key):
        argv = [
            sys.executable, "-m", "benchmarks.dicts_client",
            "--target", f"127.0.0.1:{port}",
            "--json-lines", str(json_lines),
            "--write-key", write_key,
            "--wait-for-go",
        ]  # fmt: skip
        context = f"python -m benchmarks.run --only dicts --events {settings.events}"
        around = ProfileAround(settings.profiler, context, {"server": pid}, with_client=True)
        outcome = json.loads(run_client(argv, cwd=REPO_ROOT, timeout_s=settings.timeout_s + 120, around=around))
    refused = {k: outcome[k] for k in ("duplicates", "conflicts", "rejected") if outcome[k]}
    if outcome["accepted"] != settings.events or outcome["events"] != settings.events or refused:
        raise VerificationFailed(
            f"accepted {outcome['accepted']} of {settings.events} events; {refused}; "
            f"first rejection: {outcome['first_rejection']}"
        )
    details = {k: outcome[k] for k in ("batches", "accepted", "batch_size", "window", "reconnects")}
    return Measurement(
        key="dicts",
        name=CLIENT_STREAM,
        events=settings.events,
        seconds=outcome["seconds"],
        details=details | {"profile": around.profile.to_json()},
    )


def _import_argv(settings: StreamSettings, file: Path, port: int, write_key: str) -> list[str]:
    # --json: the summary on stdout (to check it), no progress bar.
    return [str(settings.cdp), "import", str(file), "--target", f"127.0.0.1:{port}", "--write-key", write_key, "--json"]


def _run_import(argv: list[str], timeout_s: float) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"cdp import failed ({done.returncode}): {done.stderr.strip().splitlines()[-3:]}")
    summary: dict[str, object] = json.loads(done.stdout)
    return seconds, summary


def measure_cdp_import(
    settings: StreamSettings, json_lines: Path, *, startup_runs: int = 3
) -> tuple[Measurement, Measurement]:
    """``cdp import FILE.jsonl`` against a fresh ``cdp serve``: (start-up excluded, process start to exit)."""
    with (
        tributary_server(settings, prefix="bench-import-") as (port, pid, write_key),
        tempfile.TemporaryDirectory(prefix="bench-import-empty-", dir=settings.tmp_root) as tmp,
    ):
        empty = Path(tmp) / "empty.jsonl"
        empty.touch()
        startups = [_run_import(_import_argv(settings, empty, port, write_key), 120)[0] for _ in range(startup_runs)]
        startup = statistics.median(startups)
        argv = _import_argv(settings, json_lines, port, write_key)
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        context = f"python -m benchmarks.run --only import --events {settings.events}"
        with profiled({"server": pid, "import": process.pid}, tool=settings.profiler, context=context) as profile:
            try:
                stdout, stderr = process.communicate(timeout=settings.timeout_s + 120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
        wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"cdp import failed ({process.returncode}): {stderr.strip().splitlines()[-3:]}")
    summary = json.loads(stdout)
    refusals = ("duplicates", "conflicts", "rejected", "unreadable", "unconfirmed")
    refused = {k: summary[k] for k in refusals if summary[k]}
    if summary["stored"] != settings.events or summary["read"] != settings.events or refused:
        raise VerificationFailed(f"cdp import stored {summary['stored']} of {settings.events} events; {refused}")
    own = max(wall - startup, 1e-6)
    details = {
        "wall_s": round(wall, 4),
        "startup_s": round(startup, 4),
        "startup_runs_s": [round(s, 4) for s in startups],
        "startup_method": "median of `cdp import` runs on an empty file against the same server, subtracted",
        "stored": summary["stored"],
        "reconnects": summary["reconnects"],
    }
    return (
        Measurement("import", CDP_IMPORT, settings.events, own, details=details | {"profile": profile.to_json()}),
        Measurement("import-wall", CDP_IMPORT_WALL, settings.events, wall, details=details),
    )
