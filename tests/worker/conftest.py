"""Real Celery worker processes for the worker tests, and synthetic scans for them to read.

``WorkerProcess`` runs ``celery -A worker worker`` as a subprocess in its own process group
(so a test can kill -9 all of it, or only one pool child) with short time limits and a
visibility timeout of seconds. Scans come from ``escrutinio synth`` (a few telegrams, once
per session); more distinct files are made by re-encoding them with a text chunk, so the
bytes (sha256) differ while the pixels stay those of a real synthetic telegram.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis
from sqlalchemy import text

from db.session import get_engine
from tests.conftest import scratch_database
from worker.celery_app import MODEL_LOADED_MESSAGE

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FORM = "arg-2019-paso-caba"
#: Time limits of the test workers (seconds): a chunk of a few scans takes well under one.
TEST_LIMITS = {
    "ESCRUTINIO_TASK_SOFT_TIME_LIMIT": "20",
    "ESCRUTINIO_TASK_TIME_LIMIT": "25",
    "ESCRUTINIO_VISIBILITY_TIMEOUT": "30",
    "ESCRUTINIO_MAX_DELIVERIES": "2",
}
#: Redis database of the module-scoped shared worker (the suite's flushable db is 9).
SHARED_REDIS_DB = 10


def wait_until(condition: Callable[[], object], timeout: float, what: str, every: float = 0.1):
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def shipped_model() -> str:
    """The shipped model the workers load: "default" when it ships, else the first one."""
    from pipeline.model import available_models

    models = available_models()
    assert models, "no shipped model in pipeline/models"
    return "default" if "default" in models else models[0]


def worker_environment(database_url: str, broker_url: str, scan_root: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ESCRUTINIO_") or key == "ESCRUTINIO_DEVICE"
    }
    env.update(TEST_LIMITS)
    env.update(
        {
            "ESCRUTINIO_DATABASE_URL": database_url,
            "ESCRUTINIO_BROKER_URL": broker_url,
            "ESCRUTINIO_SCAN_ROOTS": str(scan_root),
            "ESCRUTINIO_MODEL": shipped_model(),
            "ESCRUTINIO_INTRA_OP_THREADS": "1",
            "ESCRUTINIO_INTER_OP_THREADS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


class WorkerProcess:
    """``celery -A worker worker`` in its own process group, logging to a file."""

    def __init__(
        self,
        env: dict[str, str],
        log: Path,
        concurrency: int = 1,
        queues: str = "read",
        via_cli: bool = False,
    ):
        """via_cli: start it as ``escrutinio worker ...`` instead of ``celery -A worker worker``."""
        self.env, self.log, self.concurrency, self.queues = env, log, concurrency, queues
        self.via_cli = via_cli
        self.process: subprocess.Popen | None = None
        self.loaded_before = 0

    def start(self, ready_timeout: float = 180) -> WorkerProcess:
        name = f"{self.log.stem}-{time.monotonic_ns()}@%h"
        self.loaded_before = self.read_log().count(MODEL_LOADED_MESSAGE)
        options = [
            "--queues", self.queues, "--concurrency", str(self.concurrency),
            "--hostname", name, "--loglevel", "INFO", "--pool", "prefork",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        if self.via_cli:
            command = [sys.executable, "-m", "worker.cli", "worker", *options]
        else:
            command = [sys.executable, "-m", "celery", "-A", "worker", "worker", *options]
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._ready, ready_timeout, f"worker ready (log {self.log})", every=0.2)
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"worker exited with {self.process.returncode}:\n{self.read_log()}")
        log = self.read_log()
        loaded = log.count(MODEL_LOADED_MESSAGE) - self.loaded_before
        return " ready." in log and loaded >= self.concurrency

    def read_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """kill -9 the whole worker: the main process and its pool children."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()


@pytest.fixture(scope="session")
def synthetic_telegrams(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few synthetic telegrams (``escrutinio synth``): OUTDIR with scans/, results.csv..."""
    out = tmp_path_factory.mktemp("synth") / "telegrams"
    subprocess.run(
        [sys.executable, "-m", "worker.cli", "synth", str(out), "--count", "3", "--seed", "7"],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    return out


def make_scan_copies(source_dir: Path, target: Path, count: int) -> list[Path]:
    """``count`` distinct files (different bytes, same pixels) from the synthetic scans,
    named "<mesa>-<n>.png" so the mesa code in the name matches the page."""
    import cv2

    sources = sorted(source_dir.glob("*.png"))
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        source = sources[number % len(sources)]
        data = source.read_bytes()
        # A tEXt chunk just before IEND: a valid PNG, new bytes, identical image.
        iend = data.rindex(b"IEND") - 4
        body = b"tEXt" + f"copy\x00{number}".encode()
        chunk = (len(body) - 4).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
        path = target / f"{source.stem}-{number:04d}.png"
        path.write_bytes(data[:iend] + chunk + data[iend:])
        paths.append(path)
    assert cv2.imread(str(paths[0])) is not None
    return paths


@pytest.fixture(scope="module")
def shared_database_url(postgres_server_url: str, _template_database: str) -> Iterator[str]:
    """One migrated database for a module whose tests share a worker."""
    yield from scratch_database(postgres_server_url, _template_database)


@pytest.fixture(scope="module")
def shared_broker_url(redis_server_url: str) -> str:
    url = redis_server_url.rsplit("/", 1)[0] + f"/{SHARED_REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="module")
def scan_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scan-root")


@pytest.fixture(scope="module")
def shared_worker(
    shared_database_url: str,
    shared_broker_url: str,
    scan_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    """One worker with two pool processes, shared by the tests of a module."""
    log = tmp_path_factory.mktemp("logs") / "shared-worker.log"
    worker = WorkerProcess(
        worker_environment(shared_database_url, shared_broker_url, scan_root), log, concurrency=2
    )
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def clean_shared_database(shared_database_url: str) -> str:
    """The shared database with no scans or readings left from an earlier test."""
    with get_engine(shared_database_url).begin() as connection:
        connection.execute(
            text("TRUNCATE scan, recognition, cell_reading RESTART IDENTITY CASCADE")
        )
    return shared_database_url
