"""A private PostgreSQL for tests and benchmarks: `initdb` into a temp dir, `pg_ctl` on a free loopback port.

Nothing is shared with a system cluster: the data directory, the log and the unix socket live in one temp dir, the
server listens on 127.0.0.1 only, and `close()` stops it and removes the dir. PostgreSQL refuses to run as root, so
as root (CI, this machine) every `initdb`/`pg_ctl` runs as the `postgres` user through `runuser`, in a dir chowned to
it; any other user runs them as itself.

Settings of the test cluster (postgresql.conf, appended after `initdb`):
- `fsync = off`: no test needs the cluster to survive an operating-system crash, and the outage test stops the
  server (`pg_ctl stop`, fast or immediate), which loses nothing the kernel already holds. It saves a flush per
  commit on CI's disk, for the tests and for both sides of the load benchmark alike.
- Trust authentication, except for members of the role `password_login`, who need their password over TCP: the
  bad-password test needs one role whose password is checked.

Fixtures (a test module imports them: `from postgres import postgres, postgres_server`):
- `postgres_server` (session): the started server; a test that stops it gets it started again by the next
  `postgres` fixture.
- `postgres`: a fresh database (`t_<n>`) on it for one test, dropped afterwards.

If PostgreSQL cannot be started, the fixtures fail with the reason and the server's log; they never skip.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

SUPERUSER = "postgres"
# Members of this role authenticate with a password over TCP (see the module docstring).
PASSWORD_LOGIN_ROLE = "password_login"
START_TIMEOUT_SECS = 60
STOP_TIMEOUT_SECS = 60
DEBIAN_PREFIX = Path("/usr/lib/postgresql")


class PostgresUnavailable(RuntimeError):
    """PostgreSQL could not be found, initialised or started; the message says why."""


def postgres_bindir() -> Path:
    """Where `initdb` and `pg_ctl` are: on PATH, else Debian's newest /usr/lib/postgresql/<major>/bin."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    installed = [path.parent for path in DEBIAN_PREFIX.glob("*/bin/pg_ctl") if (path.parent / "initdb").exists()]
    if installed:
        return max(installed, key=lambda bindir: int(bindir.parent.name) if bindir.parent.name.isdigit() else 0)
    raise PostgresUnavailable(
        f"initdb/pg_ctl not found on PATH or under {DEBIAN_PREFIX}/*/bin: install PostgreSQL "
        "(apt-get install postgresql; `make test` does it)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One private cluster. `start()` makes and starts it; `dsn` reaches its `postgres` database as superuser."""

    def __init__(self, root: Path, bindir: Path, port: int) -> None:
        self.root = root
        self.bindir = bindir
        self.port = port
        self.data_dir = root / "data"
        self.log_path = root / "postgres.log"
        self.host = "127.0.0.1"
        # PostgreSQL refuses to run as root: root hands every server command to the postgres user.
        self._run_as = ["runuser", "-u", SUPERUSER, "--"] if os.geteuid() == 0 else []

    @classmethod
    def start(cls) -> PostgresServer:
        """Initialises a cluster in a new temp dir and starts it (a few tries, should the port be taken)."""
        bindir = postgres_bindir()
        # Directly under the system temp dir, not pytest's tmp_path: the postgres user must be able to reach it
        # (pytest's per-user base dir is 0700 root), and the socket path must stay short (107 bytes).
        root = Path(tempfile.mkdtemp(prefix="tributary-pg-"))
        server = cls(root, bindir, free_port())
        try:
            if os.geteuid() == 0:
                shutil.chown(root, SUPERUSER, SUPERUSER)
            server._initdb()
            for _attempt in range(3):
                try:
                    server.start_again()
                    break
                except PostgresUnavailable:
                    if "could not bind" not in server.log_tail():
                        raise
                    server.port = free_port()
                    server._write_port()
            else:
                raise PostgresUnavailable(f"no free port after 3 tries; log:\n{server.log_tail()}")
            server.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(PASSWORD_LOGIN_ROLE)))
        except BaseException:
            server.close()
            raise
        return server

    # -- life cycle -----------------------------------------------------------------------------------------------

    def _initdb(self) -> None:
        self._run(
            "initdb",
            ["-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        )
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all +{PASSWORD_LOGIN_ROLE} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
        )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# tests/postgres.py: a private test cluster\n"
                f"listen_addresses = '{self.host}'\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = off\n"
                "log_min_messages = warning\n"
            )
        self._write_port()

    def _write_port(self) -> None:
        # A file of its own, included last, so that a retry on another port rewrites one line.
        (self.data_dir / "port.conf").write_text(f"port = {self.port}\n")
        conf = self.data_dir / "postgresql.conf"
        if "include_if_exists = 'port.conf'" not in conf.read_text():
            with conf.open("a") as out:
                out.write("include_if_exists = 'port.conf'\n")
        if os.geteuid() == 0:
            for path in (self.data_dir / "port.conf", self.data_dir / "pg_hba.conf"):
                shutil.chown(path, SUPERUSER, SUPERUSER)

    def start_again(self) -> None:
        """Starts the (stopped) server on the same port, so that DSNs made before stay valid."""
        self._run(
            "pg_ctl",
            ["-D", str(self.data_dir), "-l", str(self.log_path), "-w", "-t", str(START_TIMEOUT_SECS), "start"],
        )

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m fast` (clients disconnected, open transactions rolled back) or `immediate` (a crash)."""
        self._run("pg_ctl", ["-D", str(self.data_dir), "-m", mode, "-w", "-t", str(STOP_TIMEOUT_SECS), "stop"])

    def restart(self) -> None:
        self.stop()
        self.start_again()

    def running(self) -> bool:
        status = subprocess.run(
            [*self._run_as, str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "status"],
            capture_output=True,
            check=False,
        )
        return status.returncode == 0

    def close(self) -> None:
        """Stops the server (immediately: its data is thrown away) and removes the temp dir."""
        with contextlib.suppress(PostgresUnavailable):
            if self.data_dir.exists() and self.running():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, tool: str, args: Sequence[str]) -> None:
        command = [*self._run_as, str(self.bindir / tool), *args]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                check=False,
                timeout=START_TIMEOUT_SECS + 30,
                env={**os.environ, "LC_ALL": "C"},
                cwd=self.root,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PostgresUnavailable(f"{' '.join(command)}: {error}\nlog:\n{self.log_tail()}") from error
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}\nlog:\n{self.log_tail()}"
            )

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    # -- connecting -----------------------------------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        """The `postgres` database, as the superuser, over TCP."""
        return self.dsn_for(SUPERUSER)

    def dsn_for(self, database: str, user: str = SUPERUSER, password: str | None = None) -> str:
        credentials = user if password is None else f"{user}:{password}"
        return f"postgresql://{credentials}@{self.host}:{self.port}/{database}"

    def execute(self, statement: sql.Composable | str, params: Sequence[Any] = (), database: str = SUPERUSER) -> None:
        """Runs one statement as superuser, in autocommit (CREATE DATABASE cannot run in a transaction)."""
        with psycopg.connect(self.dsn_for(database), autocommit=True) as conn:
            conn.execute(statement if isinstance(statement, sql.Composable) else sql.SQL(statement), params)


_database_numbers = itertools.count(1)


@dataclass
class PostgresDatabase:
    """A fresh database of the private server, for one test."""

    server: PostgresServer
    name: str

    @property
    def dsn(self) -> str:
        return self.server.dsn_for(self.name)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(sql.SQL(statement), params).fetchall()

    def execute(self, statement: sql.Composable | str, params: Sequence[Any] = ()) -> None:
        self.server.execute(statement, params, database=self.name)

    def columns(self, table: str, schema: str = "tributary") -> dict[str, str]:
        """Column name → information_schema data_type."""
        rows = self.query(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            (schema, table),
        )
        return {name: data_type for name, data_type in rows}

    def tables(self, schema: str = "tributary") -> set[str]:
        rows = self.query("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))
        return {name for (name,) in rows}

    def create_password_role(self, role: str, password: str) -> None:
        """A login role that must give its password (a member of PASSWORD_LOGIN_ROLE)."""
        self.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                sql.Identifier(role), sql.Literal(password), sql.Identifier(PASSWORD_LOGIN_ROLE)
            )
        )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The private PostgreSQL of this test session; fails (never skips) when it cannot start."""
    try:
        server = PostgresServer.start()
    except PostgresUnavailable as error:
        pytest.fail(f"cannot start the test PostgreSQL: {error}", pytrace=False)
    yield server
    server.close()


@pytest.fixture
def postgres(postgres_server: PostgresServer) -> Iterator[PostgresDatabase]:
    """A fresh database for one test; the server is started again first if an earlier test left it stopped."""
    if not postgres_server.running():
        try:
            postgres_server.start_again()
        except PostgresUnavailable as error:
            pytest.fail(f"cannot start the test PostgreSQL again: {error}", pytrace=False)
    database = PostgresDatabase(postgres_server, f"t_{next(_database_numbers)}")
    postgres_server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database.name)))
    yield database
    if postgres_server.running():
        postgres_server.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database.name)))
