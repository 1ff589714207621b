"""A real nats-server with JetStream on loopback for tests, stoppable and restartable on the same
port and store directory, and the pytest fixtures that make them.

Named `nats_server`, not `nats`: test modules import their helpers from tests/ as top-level modules
(`from rpc import Rpc`), so a tests/nats.py would shadow the nats client package for the whole run.

A test that needs the server and cannot start it fails with the reason and the server's output;
it never skips (`make test` installs nats-server, Debian's package). A test module imports the fixtures
(`jetstream_server_fixture`, `nats_server_factory_fixture`) to use `jetstream_server` and `nats_server_factory`.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

START_TIMEOUT_SECS = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """`nats-server -js` on 127.0.0.1 with its own store directory (JetStream's files)."""

    def __init__(self, directory: Path, config: str | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.store_dir = directory / "store"
        self.log_path = directory / "nats-server.log"
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = directory / "nats-server.conf"
            self.config_path.write_text(config)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        executable = shutil.which("nats-server")
        if executable is None:
            pytest.fail("nats-server is not installed (`make test` installs it: apt-get install nats-server)")
        command = [executable, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store_dir)]
        if self.config_path is not None:
            command += ["-c", str(self.config_path)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_SECS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self._announces_jetstream():
                return
            time.sleep(0.02)
        self.close()
        output = self.log_path.read_text(errors="replace")[-4000:]
        pytest.fail(f"nats-server did not start on {self.url} ({' '.join(command)}); its output:\n{output}")

    def _announces_jetstream(self) -> bool:
        """True once the server accepts a client and its INFO says JetStream is on (the server
        restores its streams before it listens, so they are ready too)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                info = sock.recv(4096)
        except OSError:
            return False
        return info.startswith(b"INFO ") and b'"jetstream":true' in info

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait: clients see the connection close, the store stays for `restart`."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=timeout)

    def restart(self) -> None:
        """Stops (if running) and starts again on the same port and store directory."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Kills the server, if running (the end of a test)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


# Named apart from the fixtures (`name=`), so that a test's argument does not redefine an imported name.
@pytest.fixture(name="nats_server_factory")
def nats_server_factory_fixture(tmp_path: Path) -> Iterator[Callable[[str | None], NatsServer]]:
    """Starts servers, each with its own store and an optional configuration file's text (users,
    permissions); all are killed at the end of the test."""
    made: list[NatsServer] = []

    def start(config: str | None = None) -> NatsServer:
        server = NatsServer(tmp_path / f"nats{len(made)}", config)
        made.append(server)
        server.start()
        return server

    yield start
    for server in made:
        server.close()


@pytest.fixture(name="jetstream_server")
def jetstream_server_fixture(nats_server_factory: Callable[[str | None], NatsServer]) -> NatsServer:
    """A started nats-server with JetStream (fresh store), killed at the end of the test."""
    return nats_server_factory(None)
