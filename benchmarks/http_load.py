"""Load from wrk against an HTTP server, and the servers it is aimed at.

wrk (the Debian package; ``make bench`` installs it) runs one of the Lua scripts of
``benchmarks/wrk/`` for a fixed time after a warm-up run of its own; the script's ``done()``
prints the figures as one JSON line (``wrk/report.lua``). The last argument every script gets is
a number new to each wrk run: the batch script makes its messageIds unique with it, the traits
script seeds its random profile choice with it. Besides wrk's figures, each run keeps the CPU
time the server and wrk spent (both share the machine), and may be profiled (``profiling``).

The servers run in their own process group on 127.0.0.1, bind port 0 and say which port they
got: ``cdp serve`` in its "serving" log line, the aiohttp baseline on stdout.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.http_baseline import SERVING_PREFIX
from benchmarks.process import running_http_server
from benchmarks.profiling import Profile, profiled

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = REPO_ROOT / "benchmarks" / "wrk"
BATCH_SCRIPT = SCRIPTS / "batch.lua"
TRAITS_SCRIPT = SCRIPTS / "traits.lua"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROFILE_SECONDS = 5
_RUN_NUMBERS = itertools.count(int(time.time()) % 1_000_000 * 100)


class LoadFailed(RuntimeError):
    """wrk failed, or requests failed (a connection error, a timeout, a non-2xx answer)."""


@dataclass(frozen=True)
class LoadSettings:
    """How wrk drives a server.

    Attributes:
        seconds: Length of the measured run (wrk takes whole seconds).
        warmup_s: Length of the warm-up run before it (0: none).
        connections: Connections kept open, each with one request in flight.
        threads: wrk's threads (event loops) sharing the connections.
        timeout_s: A request slower than this counts as an error.
    """

    seconds: int
    warmup_s: int
    connections: int
    threads: int
    timeout_s: int = 5


@dataclass(frozen=True)
class WrkRun:
    """The measured run of one system (latencies in milliseconds, by wrk)."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float
    connections: int
    threads: int
    cores: dict[str, float]  # CPU cores each process kept busy (CPU time / wall time)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"requests_per_s": round(self.requests_per_s, 1)}


def wrk_version() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        return "not installed"
    # wrk has no --version: its usage text starts with the version.
    text = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False).stdout
    return text.split()[1] if text.startswith("wrk ") else "unknown"


def _cpu_seconds(pid: int) -> float:
    """User plus system time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _context_switches(pid: int) -> tuple[int, int]:
    """Context switches of a process's threads so far (voluntary and not), and its thread count."""
    switches = threads = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:  # the thread ended meanwhile
            continue
        threads += 1
        # voluntary_ctxt_switches and nonvoluntary_ctxt_switches
        switches += sum(int(line.split()[1]) for line in lines if "ctxt_switches:" in line)
    return switches, threads


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wrk(url: str, script: Path, script_args: Sequence[str], load: LoadSettings, seconds: int) -> list[str]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise LoadFailed("wrk is not installed: `make bench` installs it (apt-get install wrk)")
    return [
        wrk, "-t", str(load.threads), "-c", str(load.connections), "-d", f"{seconds}s",
        "--timeout", f"{load.timeout_s}s", "-s", str(script), url,
        "--", *script_args, str(next(_RUN_NUMBERS)),
    ]  # fmt: skip


def _figures(stdout: str, stderr: str) -> dict[str, Any]:
    """The JSON line of ``done()``; every request must have succeeded."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise LoadFailed(f"wrk printed no figures: {(stderr or stdout)[-600:]}")
    figures: dict[str, Any] = json.loads(lines[-1])
    failed = {kind: count for kind, count in figures["errors"].items() if count}
    if failed or not figures["requests"]:
        raise LoadFailed(f"{figures['requests']} requests completed; failed: {failed}; wrk said: {stderr[-300:]}")
    return figures


def _busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy (every process, every core) so far."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def _one_run(
    argv: Sequence[str],
    timeout_s: float,
    server_pid: int,
    around: Callable[[int], contextlib.AbstractContextManager[object]] | None = None,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Runs wrk once, inside ``around(wrk's pid)`` if given; returns its figures and the cores
    kept busy by the server, wrk and the rest of the machine (other work, such as a build, takes
    cores from both), and the server's context switches and threads."""
    switches_before, _ = _context_switches(server_pid)
    server_before, wrk_before, busy_before = _cpu_seconds(server_pid), _children_cpu_seconds(), _busy_cpu_seconds()
    started = time.monotonic()
    with (
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process,
        around(process.pid) if around else contextlib.nullcontext(),
    ):
        stdout, stderr = process.communicate(timeout=timeout_s)
    wall = time.monotonic() - started
    server = (_cpu_seconds(server_pid) - server_before) / wall
    wrk = (_children_cpu_seconds() - wrk_before) / wall
    others = max(0.0, (_busy_cpu_seconds() - busy_before) / wall - server - wrk)
    cores = {"server": round(server, 2), "wrk": round(wrk, 2), "others": round(others, 2)}
    switches, threads = _context_switches(server_pid)
    figures = _figures(stdout, stderr)
    figures["server"] = {
        "context_switches_per_request": round((switches - switches_before) / figures["requests"], 2),
        "threads": threads,
    }
    return figures, cores


def run_wrk(
    url: str,
    script: Path,
    script_args: Sequence[str],
    load: LoadSettings,
    *,
    server_pid: int,
    profiler: str | None = None,
    context: str = "",
) -> tuple[WrkRun, Profile | None]:
    """A warm-up run (if any), the measured run, then (with ``profiler``) a profiled run.

    The profile is not taken during the measured run: perf's per-thread counters are switched
    with every context switch, and a server that hands each request to another thread (tokio's
    blocking pool) then serves ~40 % fewer requests (measured on /traits; ingest loses less).
    """
    timeout_s = load.seconds + load.timeout_s + 60
    if load.warmup_s:
        warmup = subprocess.run(
            _wrk(url, script, script_args, load, load.warmup_s), capture_output=True, text=True, check=False
        )
        _figures(warmup.stdout, warmup.stderr)
    figures, cores = _one_run(_wrk(url, script, script_args, load, load.seconds), timeout_s, server_pid)
    latency = figures["latency_us"]
    percentiles = latency["percentiles"]
    run = WrkRun(
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        p50_ms=percentiles["50"] / 1000,
        p90_ms=percentiles["90"] / 1000,
        p99_ms=percentiles["99"] / 1000,
        p999_ms=percentiles["99.9"] / 1000,
        mean_ms=round(latency["mean"] / 1000, 3),
        max_ms=latency["max"] / 1000,
        connections=load.connections,
        threads=load.threads,
        cores=cores,
        details={"bytes_read": figures["bytes"], **figures["server"]},
    )
    if not profiler:
        return run, None
    profile_s = min(load.seconds, PROFILE_SECONDS)
    argv = _wrk(url, script, script_args, load, profile_s)
    profile = Profile(error="not taken")

    @contextlib.contextmanager
    def profiling(wrk_pid: int) -> Iterator[None]:
        nonlocal profile
        with profiled({"server": server_pid, "wrk": wrk_pid}, tool=profiler, context=context) as profile:
            yield

    profiled_figures, _ = _one_run(argv, timeout_s, server_pid, around=profiling)
    rate = profiled_figures["requests"] / (profiled_figures["duration_us"] / 1e6)
    run.details["profiled_run_requests_per_s"] = round(rate, 1)
    return run, profile


def _tributary_port(log: str) -> int | None:
    for line in log.splitlines():
        if line.startswith("{") and '"msg": "serving"' in line:
            return int(json.loads(line)["http"].rsplit(":", 1)[1])
    return None


@contextlib.contextmanager
def tributary(
    cdp: Path, data_dir: Path, *, write_key: str, admin_token: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``cdp serve`` on a fresh data directory, the Tracking API's rate limit off; yields the
    process and the HTTP port's URL."""
    env = {
        "TRIBUTARY_DEV_WRITE_KEY": write_key,
        "TRIBUTARY_ADMIN_TOKEN": admin_token,
        # Off: Segment's 1,000 requests a second per source would cap the run, not the server.
        "TRIBUTARY_HTTP_RATE_LIMIT": "0",
    }
    argv = [str(cdp), "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--grpc-port", "0"]
    argv += ["--http-port", "0"]
    log = data_dir.with_name(data_dir.name + ".log")
    with running_http_server(argv, log_path=log, port_in_log=_tributary_port, env=env) as (process, port):
        yield process, f"http://127.0.0.1:{port}"


def _baseline_port(log: str) -> int | None:
    for line in log.splitlines():
        if line.startswith(SERVING_PREFIX):
            return int(line.removeprefix(SERVING_PREFIX))
    return None


@contextlib.contextmanager
def aiohttp_baseline(tmp: Path, traits_body: bytes | None = None) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The do-nothing aiohttp server (``http_baseline``); yields the process and its URL."""
    argv = [sys.executable, "-m", "benchmarks.http_baseline"]
    if traits_body is not None:
        (tmp / "traits-body.json").write_bytes(traits_body)
        argv += ["--traits-body", str(tmp / "traits-body.json")]
    # `-m benchmarks...` from any working directory.
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    log = tmp / "aiohttp.log"
    with running_http_server(argv, log_path=log, port_in_log=_baseline_port, env={"PYTHONPATH": path}) as (
        process,
        port,
    ):
        yield process, f"http://127.0.0.1:{port}"


def engine_counters(url: str) -> dict[str, float]:
    """The engine's event counters from ``/metrics`` (accepted, duplicate, conflicting, rejected)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    counters = {}
    for line in text.splitlines():
        if line.startswith("tributary_events_") and not line.startswith("tributary_events_stored"):
            name, value = line.split()[:2]
            counters[name.removeprefix("tributary_events_").removesuffix("_total")] = float(value)
    return counters


def post(url: str, body: bytes, authorization: str) -> dict[str, Any]:
    """One POST with a JSON body; the JSON answer (raises on a non-2xx status)."""
    request = urllib.request.Request(
        url, data=body, headers={"Authorization": authorization, "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def get(url: str, authorization: str) -> bytes:
    """One GET; the body (raises on a non-2xx status)."""
    request = urllib.request.Request(url, headers={"Authorization": authorization})
    with urllib.request.urlopen(request, timeout=60) as response:
        body: bytes = response.read()
    return body
