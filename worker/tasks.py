"""Celery tasks: thin wrappers that claim scans, call the pipeline and write through ``db.scans``.

``read_chunk(scan_ids)`` (queue ``read``) is the only message the scan pipeline sends:
ids only, JSON. A chunk goes through

1. ``claim_scans``: scans already done, failed or held by a live worker are skipped; a
   chunk whose scans were claimed before without finishing is split into one message per
   scan (so one poison scan cannot sink its neighbours); scans over the redelivery cap
   are marked failed.
2. per scan: the path must lie under ``ESCRUTINIO_SCAN_ROOTS`` and ``load_scan`` checks
   size and header dimensions before decoding. A bad scan is failed with its reason.
3. ``read_telegrams`` for all loaded scans of a form: their digits classified together (at
   most three batched model calls for the chunk).
4. ONE transaction: readings upserted, scans done or failed.

Database and broker outages raise a retry with exponential backoff; the retry count is
passed to ``claim_scans`` so handled retries do not count against the redelivery cap.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import kombu.exceptions
import redis.exceptions
from celery.exceptions import Reject, SoftTimeLimitExceeded
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from db import scans
from db.session import get_engine
from pipeline.errors import BadInput
from worker.celery_app import (
    POOL_PROCESSES_VARIABLE,
    WORKER_APPLICATION_NAME,
    app,
    resolve_database_url,
)
from worker.settings import get_settings

logger = logging.getLogger(__name__)

#: Errors that say "the infrastructure is down, try again later", never "this scan is bad".
TRANSIENT_ERRORS = (
    OperationalError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
)
MAX_TRANSIENT_RETRIES = 8


def worker_database_url() -> str:
    """The database URL for this process's sessions, named ``escrutinio-worker:<pid>`` in
    pg_stat_activity (operators and the fault tests find a worker's session by it)."""
    url = resolve_database_url(get_settings())
    if not url:
        from worker.embedded import ServiceError

        raise ServiceError(
            "no database: set ESCRUTINIO_DATABASE_URL or run `escrutinio services start`"
        )
    parsed = make_url(url)
    extra = {"application_name": f"{WORKER_APPLICATION_NAME}:{os.getpid()}"}
    if "options" not in parsed.query:
        # PostgreSQL >= 14: a backend whose worker died mid-query notices within 1 s and
        # drops the worker's scan locks, instead of when the query ends.
        extra["options"] = "-c client_connection_check_interval=1000"
    return parsed.update_query_dict(extra).render_as_string(hide_password=False)


def threads_per_process() -> int:
    """CPU threads each pool process may use: the cores shared out among the pool."""
    processes = int(os.environ.get(POOL_PROCESSES_VARIABLE) or os.cpu_count() or 1)
    return max(1, (os.cpu_count() or 1) // max(1, processes))


def load_classifier():
    """The process's digit classifier (loaded once per worker process, after the fork)."""
    from pipeline.model import get_classifier

    settings = get_settings()
    return get_classifier(
        str(settings.model_path or settings.model),
        device=settings.device,
        intra_op_threads=settings.intra_op_threads or threads_per_process(),
        inter_op_threads=settings.inter_op_threads or 1,
    )


@lru_cache(maxsize=16)
def _template(form: str):
    from pipeline.forms import load_template

    return load_template(form)


def checked_scan_path(path: str, roots: list[Path]) -> Path:
    """``path`` resolved (symlinks followed); BadInput if it lies outside every scan root."""
    resolved = Path(os.path.realpath(path))
    if roots and not any(resolved.is_relative_to(Path(os.path.realpath(r))) for r in roots):
        raise BadInput(
            f"{path}: outside the configured scan roots "
            f"({os.pathsep.join(str(root) for root in roots)}); refused"
        )
    return resolved


def backoff_seconds(retries: int) -> int:
    """1, 2, 4, ... seconds, at most a quarter of the visibility timeout (and 60 s)."""
    ceiling = max(1, min(60, get_settings().visibility_timeout // 4))
    return min(ceiling, 2**retries)


def recheck_seconds() -> int:
    """How long to wait before looking again at scans another session holds."""
    return max(1, min(10, get_settings().visibility_timeout // 4))


def max_rechecks() -> int:
    """Enough rechecks to outlast a live holder (hard time limit) plus its session's end."""
    return get_settings().task_time_limit // recheck_seconds() + 3


def _send_singles(scan_ids: list[int], forgiven_claims: int) -> None:
    for scan_id in scan_ids:
        read_chunk.apply_async(([scan_id],), {"forgiven_claims": forgiven_claims})


@app.task(name="escrutinio.read_chunk", bind=True, max_retries=MAX_TRANSIENT_RETRIES)
def read_chunk(
    self, scan_ids: list[int], forgiven_claims: int = 0, rechecks: int = 0
) -> dict[str, int]:
    """Read one chunk of scans (ids only) and write the results; returns counts by outcome.

    forgiven_claims: earlier claims of these scans that ended in a handled transient error
    (besides the retries Celery counts in ``self.request.retries``).
    rechecks: how often these ids were found held by another session already.
    """
    if not isinstance(scan_ids, list) or not all(
        isinstance(scan_id, int) and not isinstance(scan_id, bool) for scan_id in scan_ids
    ):
        logger.error("read_chunk: rejecting malformed message scan_ids=%r", scan_ids)
        raise Reject("scan_ids must be a list of integers", requeue=False)
    # Claims of these scans that ended in a handled error (see claim_scans).
    forgiven = int(forgiven_claims) + int(self.request.retries)
    try:
        load_classifier()
    except BadInput as exc:  # configuration, not the scans: claim nothing, try again later
        logger.error("read_chunk %s: the digit model cannot be loaded: %s", scan_ids, exc)
        raise _retry(self, exc, scan_ids, forgiven, rechecks) from exc
    claimed: list[int] = []
    try:
        engine = get_engine(worker_database_url())
        with engine.connect() as connection:
            try:
                return _read_chunk(connection, scan_ids, forgiven, int(rechecks), claimed)
            finally:
                _release_all(connection)
    except TRANSIENT_ERRORS as exc:
        logger.warning("read_chunk %s: transient error, retrying: %s", scan_ids, exc)
        # Forgive this run's claim (if it got that far): the error was not the scans' fault.
        raise _retry(self, exc, scan_ids, forgiven + (1 if claimed else 0), rechecks) from exc


def _retry(task, exc: Exception, scan_ids: list[int], forgiven_after: int, rechecks: int):
    """``task.retry`` with backoff, passing on how many claims the next run forgives."""
    next_retries = task.request.retries + 1
    return task.retry(
        exc=exc,
        countdown=backoff_seconds(task.request.retries),
        args=(scan_ids,),
        kwargs={"forgiven_claims": forgiven_after - next_retries, "rechecks": rechecks},
    )


def _release_all(connection: Connection) -> None:
    """Drop every advisory lock of this session before the connection goes back to the pool."""
    try:
        if not connection.invalidated and not connection.closed:
            if connection.in_transaction():
                connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock_all()"))
            connection.commit()
    except DBAPIError:
        connection.invalidate()  # a dead session holds no locks; do not reuse the connection


def _read_chunk(
    connection: Connection, scan_ids: list[int], forgiven: int, rechecks: int, claimed: list[int]
) -> dict[str, int]:
    """The chunk on one connection; ``claimed`` receives the ids this run claimed."""
    settings = get_settings()
    claim = scans.claim_scans(connection, scan_ids, settings.max_deliveries, forgiven)
    claimed.extend(scan.id for scan in claim.claimed)
    if claim.held:
        _recheck_later(claim.held, forgiven, rechecks)
    outcome = {
        "claimed": len(claim.claimed),
        "held": len(claim.held),
        "skipped": len(claim.skipped),
        "exhausted": len(claim.exhausted),
        "split": len(claim.split),
        "done": 0,
        "failed": 0,
    }
    if claim.split:
        logger.warning("chunk %s was claimed before without finishing: splitting", scan_ids)
        _send_singles(claim.split, forgiven)
        return outcome
    if not claim.claimed:
        return outcome
    try:
        started = time.perf_counter()
        readings, failures = _read_claimed(claim.claimed, settings)
        written = time.perf_counter()
        with connection.begin():
            scans.save_readings(connection, readings, form=claim.claimed[0].form)
            scans.mark_failed(connection, failures)
        outcome["read_ms"] = round(1000 * (written - started))
        outcome["write_ms"] = round(1000 * (time.perf_counter() - written))
    except SoftTimeLimitExceeded:
        return _over_soft_limit(connection, claim.claimed, forgiven, outcome, settings)
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:  # a bug, not the scans' fault: record it, do not loop
        logger.exception("read_chunk %s: unexpected error", scan_ids)
        reason = f"internal error while reading: {type(exc).__name__}: {exc}"
        with connection.begin():
            scans.mark_failed(connection, {scan.id: reason for scan in claim.claimed})
        raise
    outcome["done"], outcome["failed"] = len(readings), len(failures)
    return outcome


def _recheck_later(held: list[int], forgiven: int, rechecks: int) -> None:
    """Send held ids again with a countdown: done by then -> skipped; holder dead -> claimed."""
    if rechecks >= max_rechecks():
        logger.error(
            "scans %s still held after %d rechecks; see `escrutinio status`", held, rechecks
        )
        return
    read_chunk.apply_async(
        (held,),
        {"forgiven_claims": forgiven, "rechecks": rechecks + 1},
        countdown=recheck_seconds(),
    )


def _read_claimed(
    claimed: list[scans.ClaimedScan], settings
) -> tuple[list[tuple[scans.ClaimedScan, Any]], dict[int, str]]:
    """Load, validate and read the claimed scans: (readings to save, failure reason by id)."""
    from pipeline.read import load_scan, read_telegrams

    failures: dict[int, str] = {}
    loaded: dict[str, list[tuple[scans.ClaimedScan, Any]]] = defaultdict(list)
    for scan in claimed:
        try:
            path = checked_scan_path(scan.path, settings.scan_roots)
            image = load_scan(path, settings.max_scan_bytes, settings.max_scan_pixels)
        except BadInput as exc:
            failures[scan.id] = str(exc)
            continue
        except OSError as exc:
            failures[scan.id] = f"{scan.path}: cannot read the file ({exc.strerror or exc})"
            continue
        loaded[scan.form].append((scan, image))
    readings: list[tuple[scans.ClaimedScan, Any]] = []
    for form, items in loaded.items():
        try:
            template = _template(form)
        except BadInput as exc:
            failures.update({scan.id: str(exc) for scan, _ in items})
            continue
        results = read_telegrams(
            [image for _, image in items],
            template,
            load_classifier(),
            scan_names=[scan.path for scan, _ in items],
            expected_mesa_codes=[scan.mesa_code for scan, _ in items],
        )
        for (scan, _), reading in zip(items, results, strict=True):
            if reading.error:
                failures[scan.id] = str(reading.error)
            else:
                readings.append((scan, reading))
    return readings, failures


def _over_soft_limit(connection, claimed, forgiven, outcome, settings) -> dict[str, int]:
    """Hand a slow chunk back one scan per message; a single slow scan fails with its reason."""
    ids = [scan.id for scan in claimed]
    with connection.begin():
        if len(ids) > 1:
            scans.requeue_scans(connection, ids)
        else:
            scans.mark_failed(
                connection,
                {
                    ids[0]: f"{claimed[0].path}: reading took longer than the soft time limit "
                    f"of {settings.task_soft_time_limit} s"
                },
            )
    if len(ids) > 1:
        logger.warning("chunk %s over the soft time limit: splitting", ids)
        _send_singles(ids, forgiven)
        outcome["split"] = len(ids)
    else:
        outcome["failed"] = 1
    return outcome


@app.task(name="escrutinio.reconcile", bind=True, max_retries=MAX_TRANSIENT_RETRIES)
def reconcile(self, full: bool = False) -> dict[str, Any]:
    """Reconcile the mesas whose data changed (``db.reconcile``; queue ``reconcile``).

    A run already in progress elsewhere makes this one return ``skipped`` at once.
    """
    from db.reconcile import reconcile as reconcile_database

    try:
        stats = reconcile_database(
            worker_database_url(),
            full=full,
            threshold=get_settings().confidence_threshold,
            wait=False,
        )
    except TRANSIENT_ERRORS as exc:
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries)) from exc
    return stats.as_dict()
