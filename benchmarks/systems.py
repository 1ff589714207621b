"""The systems under test that the streaming client drives: (b), (c) and Tributary itself.

Each one is started as its own process on 127.0.0.1, fed by ``benchmarks.client`` in
another process, and stopped whatever happens. Baseline (a) has no server: see
``lmdb_baseline``.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.measurement import AckLatency, Measurement
from benchmarks.process import free_port, run_client, running_server
from benchmarks.profiling import Profile, profiled

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
        profiler: "auto", "perf" or "py-spy" to profile Tributary's processes while they are
            measured (see ``profiling``); None for no profile.
    """

    workload_path: Path
    events: int
    window: int
    timeout_s: float
    tmp_root: Path | None
    cdp: Path
    profiler: str | None = None


# RssAnon samples taken over one run (every n-th ack), enough for a smooth line.
RSS_SAMPLES = 60


class ProfileAround:
    """A profiler around a client's timed part (see ``process.run_client``), keeping the Profile
    it took. It samples ``roles`` and, with ``with_client``, the client process too."""

    def __init__(self, tool: str | None, context: str, roles: dict[str, int], *, with_client: bool = False) -> None:
        self.tool = tool
        self.context = context
        self.roles = roles
        self.with_client = with_client
        self.profile = Profile(error="profiling off")

    @contextlib.contextmanager
    def __call__(self, client_pid: int) -> Iterator[None]:
        roles = self.roles | ({"client": client_pid} if self.with_client else {})
        with profiled(roles, tool=self.tool, context=self.context) as profile:
            self.profile = profile
            yield


def drive(
    key: str,
    name: str,
    port: int,
    settings: StreamSettings,
    *,
    write_key: str | None,
    counts: bool,
    server_pid: int | None = None,
) -> Measurement:
    """Runs the client process against 127.0.0.1:``port`` and checks the acks.

    With ``counts``, the acks must report every event accepted and nothing else; otherwise
    (a server that does not decode) only one ack per batch is required. With ``server_pid``
    (Tributary), the server's RssAnon is sampled along the run and, if ``settings.profiler``,
    the server is profiled while the client streams.
    """
    argv = [
        sys.executable, "-m", "benchmarks.client",
        "--target", f"127.0.0.1:{port}",
        "--workload", str(settings.workload_path),
        "--window", str(settings.window),
        "--timeout", str(settings.timeout_s),
        "--wait-for-go",
    ]  # fmt: skip
    if write_key:
        argv += ["--write-key", write_key]
    around = None
    if server_pid:
        batches = -(-settings.events // 500)
        argv += ["--server-pid", str(server_pid), "--rss-every", str(max(1, batches // RSS_SAMPLES))]
        context = f"python -m benchmarks.run --only {key} --events {settings.events}"
        around = ProfileAround(settings.profiler, context, {"server": server_pid})
    stdout = run_client(argv, cwd=REPO_ROOT, timeout_s=settings.timeout_s + 60, around=around)
    outcome = json.loads(stdout)
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
        | ({k: outcome[k] for k in ("accepted", "duplicates", "conflicts", "rejected")} if counts else {})
        | {"ack_samples_ms": outcome["ack_samples_ms"]}
        | ({"rss": outcome["rss"], "profile": around.profile.to_json()} if around else {}),
    )


def measure_empty_grpc(settings: StreamSettings) -> Measurement:
    """Baseline (b)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-empty-", dir=settings.tmp_root) as tmp:
        argv = [sys.executable, "-m", "benchmarks.empty_server", "--port", str(port)]
        with running_server(argv, port=port, log_path=Path(tmp) / "server.log"):
            return drive("b", "empty grpcio server", port, settings, write_key=None, counts=False)


def measure_python_pipeline(settings: StreamSettings) -> Measurement:
    """Baseline (c)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-pypipe-", dir=settings.tmp_root) as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        argv = [sys.executable, "-m", "benchmarks.python_pipeline", "--port", str(port), "--data-dir", str(data_dir)]
        with running_server(argv, port=port, log_path=Path(tmp) / "server.log"):
            return drive("c", "plain-Python pipeline", port, settings, write_key=None, counts=True)


def serve_argv(cdp: Path, data_dir: Path, port: int) -> list[str]:
    """``cdp serve`` on 127.0.0.1:``port`` (and a free HTTP port: never 0.0.0.0, never a clash
    with a running server). Not --unsafe-benchmark-mode: the targets are about durable (fsync'd)
    acknowledgements."""
    return [
        str(cdp), "serve",
        "--data-dir", str(data_dir),
        "--host", "127.0.0.1",
        "--grpc-port", str(port),
        "--http-port", str(free_port()),
    ]  # fmt: skip


@contextlib.contextmanager
def tributary_server(settings: StreamSettings, *, prefix: str) -> Iterator[tuple[int, int, str]]:
    """``cdp serve`` with a fresh development write key on a fresh data directory, serving;
    yields (port, server pid, write key) and stops it when the block ends."""
    if not settings.cdp.exists():
        raise FileNotFoundError(f"{settings.cdp} not found: is the server installed?")
    port = free_port()
    write_key = "bench-" + secrets.token_hex(8)
    with (
        tempfile.TemporaryDirectory(prefix=prefix, dir=settings.tmp_root) as tmp,
        running_server(
            serve_argv(settings.cdp, Path(tmp) / "data", port),
            port=port,
            log_path=Path(tmp) / "server.log",
            env={DEV_WRITE_KEY_ENV: write_key},
            health_check=True,
        ) as process,
    ):
        yield port, process.pid, write_key


def measure_tributary(
    settings: StreamSettings, *, key: str = "real", name: str = "Tributary (cdp serve)"
) -> Measurement:
    """The real run: ``cdp serve`` (identity resolution on) fed pre-encoded batches."""
    with tributary_server(settings, prefix="bench-tributary-") as (port, pid, write_key):
        return drive(key, name, port, settings, write_key=write_key, counts=True, server_pid=pid)
