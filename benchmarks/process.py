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
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

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


T = TypeVar("T")


@contextlib.contextmanager
def _running(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None,
    ready: Callable[[], T | None],
    waiting_for: str,
    poll_s: float,
    start_timeout_s: float,
) -> Iterator[tuple[subprocess.Popen[bytes], T]]:
    """Runs ``argv`` (its output in ``log_path``) until the block ends; yields it and what
    ``ready()`` returned once that is not None. A server that exits, early or during the block,
    raises ServerFailed with its last log lines."""
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
            while (found := ready()) is None:
                if process.poll() is not None:
                    raise ServerFailed(f"{argv[0]} exited with {process.returncode}:\n{log_tail(log_path)}")
                if time.monotonic() > deadline:
                    raise ServerFailed(f"{argv[0]} {waiting_for} after {start_timeout_s:.0f} s")
                time.sleep(poll_s)
            try:
                yield process, found
            except Exception as exc:
                exc.add_note(f"{argv[0]} log, last lines:\n{log_tail(log_path)}")
                raise
            if process.poll() is not None:
                raise ServerFailed(f"{argv[0]} exited during the run:\n{log_tail(log_path)}")
        finally:
            _stop(process)


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
    with _running(
        argv,
        log_path=log_path,
        env=env,
        ready=lambda: True if _serving(target, health_check=health_check) else None,
        waiting_for=f"not serving on {target}",
        poll_s=0.2,
        start_timeout_s=start_timeout_s,
    ) as (process, _):
        yield process


@contextlib.contextmanager
def running_http_server(
    argv: Sequence[str],
    *,
    log_path: Path,
    port_in_log: Callable[[str], int | None],
    env: Mapping[str, str] | None = None,
    start_timeout_s: float = 60.0,
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Runs ``argv`` until the block ends; yields it and its HTTP port once ``port_in_log`` finds
    the port in its output (stdout and stderr, both in ``log_path``).

    The server binds port 0 and says which port it got: a port chosen here could be taken by an
    outgoing connection before the server binds it.
    """
    with _running(
        argv,
        log_path=log_path,
        env=env,
        ready=lambda: port_in_log(log_path.read_text(errors="replace")),
        waiting_for="said no port",
        poll_s=0.05,
        start_timeout_s=start_timeout_s,
    ) as running:
        yield running


READY_LINE = "ready"


def run_client(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout_s: float,
    around: Callable[[int], contextlib.AbstractContextManager[object]] | None = None,
) -> str:
    """Runs a client started with ``--wait-for-go`` and returns its stdout.

    The client loads its input, prints ``ready`` on stderr and waits for a line on stdin; then
    ``around(pid)`` (a profiler, say) is entered, the client is told to go, and ``around`` is left
    once the client has exited, so that it covers the timed part only. Raises RuntimeError, with
    the client's last stderr lines, when it fails or overruns ``timeout_s``.
    """
    with subprocess.Popen(
        list(argv), cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:  # leaving it closes the pipes
        stdout, stderr = _handshake(process, timeout_s, around)
    if process.returncode != 0:
        tail = "".join(stderr).strip().splitlines()[-3:]
        raise RuntimeError(f"client failed ({process.returncode}): {tail}")
    return "".join(stdout)


def _handshake(
    process: subprocess.Popen[str],
    timeout_s: float,
    around: Callable[[int], contextlib.AbstractContextManager[object]] | None,
) -> tuple[list[str], list[str]]:
    """Waits for ``ready``, says go inside ``around``, waits for the exit; returns (stdout, stderr)."""
    assert process.stdin and process.stdout and process.stderr
    ready = threading.Event()
    stdout: list[str] = []
    stderr: list[str] = []

    def read_stderr() -> None:
        assert process.stderr
        for line in process.stderr:
            if line.strip() == READY_LINE and not ready.is_set():
                ready.set()
            else:
                stderr.append(line)
        ready.set()  # ended without saying ready: do not wait for it

    def read_stdout() -> None:
        assert process.stdout
        stdout.append(process.stdout.read())

    readers = [threading.Thread(target=read_stderr, daemon=True), threading.Thread(target=read_stdout, daemon=True)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + timeout_s
    try:
        if not ready.wait(timeout=timeout_s):
            raise RuntimeError(f"client not ready after {timeout_s:.0f} s")
        with around(process.pid) if around else contextlib.nullcontext():
            with contextlib.suppress(BrokenPipeError):  # a client that already failed
                process.stdin.write("go\n")
                process.stdin.close()
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except (subprocess.TimeoutExpired, RuntimeError) as exc:
        process.kill()
        process.wait()
        raise RuntimeError(f"client timed out or hung ({exc}); stderr: {''.join(stderr)[-1000:]}") from None
    for reader in readers:
        reader.join(timeout=10)
    return stdout, stderr
