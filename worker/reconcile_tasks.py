"""The periodic reconciliation task (queue ``reconcile``), a thin wrapper of ``db.reconcile``.

Celery beat sends ``escrutinio.reconcile`` every ``ESCRUTINIO_RECONCILE_INTERVAL`` seconds
(``beat_schedule`` in ``worker.celery_app``). Each run reconciles only the mesas marked dirty
since the previous one; a run that finds another still holding the reconciliation lock returns
at once (``skipped``), since that run or the next tick covers the same mesas. A database outage
is logged and left to the next tick: the dirty marks stay in the database until a run commits.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import OperationalError

from db.reconcile import reconcile
from worker.celery_app import app
from worker.settings import get_settings

logger = logging.getLogger(__name__)


@app.task(name="escrutinio.reconcile", ignore_result=True)
def reconcile_changed_mesas(full: bool = False) -> dict:
    """Reconcile the dirty mesas (all with ``full``); the run's counts as a JSON-ready dict."""
    from worker.tasks import worker_database_url

    try:
        stats = reconcile(
            worker_database_url(),
            full=full,
            threshold=get_settings().confidence_threshold,
            wait=False,
        )
    except OperationalError as exc:
        logger.warning("reconcile: database unavailable, leaving it to the next run: %s", exc)
        return {"skipped": True, "error": str(exc).splitlines()[0]}
    if stats.skipped:
        logger.info("reconcile: another run holds the lock; skipped")
    elif stats.mesas:
        logger.info(
            "reconcile: %d mesas, %d cells (%d new, %d changed, %d removed) in %.1f s",
            stats.mesas, stats.cells, stats.inserted, stats.updated, stats.deleted, stats.seconds,
        )  # fmt: skip
    return stats.as_dict()
