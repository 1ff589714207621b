"""Starting a server process, waiting until it serves, and always stopping it.

Servers run in their own session (process group), so stopping one also stops any worker it
spawned; they are stopped by their group id only, never by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

STOP_GRACE_S = 10.0


class ServerFailed(RuntimeError):
    """The server exited, or did not start serving in time."""


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(log_path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _serving(target: str, *, health_check: bool) -> bool:
    with grpc.insecure_channel(target) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=0.5)
        except grpc.FutureTimeoutError:
            return False
        if not health_check:
            return True
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_GRACE_S)


@contextlib.contextmanager
def running_server(
    argv: Sequence[str],
    *,
    port: int,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    health_check: bool = False,
    start_timeout_s: float = 60.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Runs ``argv`` until the block ends; yields once 127.0.0.1:``port`` serves.

    With ``health_check``, serving means ``grpc.health.v1.Health/Check`` answers SERVING;
    otherwise that the port accepts an HTTP/2 connection.
    """
    target = f"127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + start_timeout_s
            while not _serving(target, health_check=health_check):
                if process.poll() is not None:
                    raise ServerFailed(f"{argv[0]} exited with {process.returncode}:\n{log_tail(log_path)}")
                if time.monotonic() > deadline:
                    raise ServerFailed(f"{argv[0]} not serving on {target} after {start_timeout_s:.0f} s")
                time.sleep(0.2)
            try:
                yield process
            except Exception as exc:
                exc.add_note(f"{argv[0]} log, last lines:\n{log_tail(log_path)}")
                raise
            if process.poll() is not None:
                raise ServerFailed(f"{argv[0]} exited during the run:\n{log_tail(log_path)}")
        finally:
            _stop(process)
