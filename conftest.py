"""Shared test fixtures: a real `cdp serve` process on loopback, restartable and killable.

A test that needs the server and cannot start it fails with the server's output; it never
skips."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

WRITE_KEY = "test-write-key"
ADMIN_TOKEN = "test-admin-token"
START_TIMEOUT_SECS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """`cdp serve` in a child process on 127.0.0.1, with its own data directory."""

    def __init__(self, data_dir: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        # Chosen by the server at bind time (--http-port 0) and read from its "serving" log line:
        # a port picked here could be taken, before the server binds it, by any outgoing
        # connection's ephemeral port.
        self.http_port = 0
        self.write_key = WRITE_KEY
        self.admin_token = ADMIN_TOKEN
        self.log_path = log_path
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        # Set for a server with TLS on its gRPC port (its CA, and a client certificate for mTLS).
        self.credentials: grpc.ChannelCredentials | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "TRIBUTARY_DEV_WRITE_KEY": self.write_key,
            "TRIBUTARY_ADMIN_TOKEN": self.admin_token,
            **self.extra_env,
        }
        command = [sys.executable, "-m", "cdp_server", "serve", "--data-dir", str(self.data_dir)]
        command += ["--grpc-port", str(self.port), "--http-port", "0"]
        logged_before = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_SECS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self.serving() and self._read_http_port(logged_before):
                return
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"server did not start on {self.target}; its output:\n{self.log_path.read_text()[-4000:]}")

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _read_http_port(self, offset: int) -> bool:
        """Takes the HTTP port from this start's "serving" log line, once it is written."""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            for line in log.read().decode(errors="replace").splitlines():
                if line.startswith("{") and '"msg": "serving"' in line:
                    self.http_port = int(json.loads(line)["http"].rsplit(":", 1)[1])
                    return True
        return False

    def serving(self) -> bool:
        with self.channel() as chan:
            try:
                reply = health_pb2_grpc.HealthStub(chan).Check(health_pb2.HealthCheckRequest(), timeout=0.5)
            except grpc.RpcError:
                return False
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the graceful case. Returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def channel(self) -> grpc.Channel:
        if self.credentials is not None:
            return grpc.secure_channel(self.target, self.credentials)
        return grpc.insecure_channel(self.target)

    @property
    def ingest_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", "Basic " + base64.b64encode(f"{self.write_key}:".encode()).decode()),)

    @property
    def admin_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.admin_token}"),)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[type[ServerProcess] | object]:
    """Makes servers (each with its own data dir); all are killed at the end of the test."""
    made: list[ServerProcess] = []

    def make(env: dict[str, str] | None = None, start: bool = True) -> ServerProcess:
        index = len(made)
        server = ServerProcess(tmp_path / f"data{index}", tmp_path / f"server{index}.log", env)
        made.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in made:
        server.kill()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A started server shared by the tests of one module (its own data dir), killed after them."""
    directory = tmp_path_factory.mktemp("module-server")
    server = ServerProcess(directory / "data", directory / "server.log")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def server(server_factory: object) -> ServerProcess:
    """A started server with a fresh data dir, write key WRITE_KEY and admin token ADMIN_TOKEN."""
    return server_factory()  # type: ignore[operator,no-any-return]
