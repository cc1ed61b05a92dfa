"""The Celery application: Redis broker, at-least-once delivery made harmless by the database.

Configured from ``worker.settings`` following Celery's reliability advice for Redis:

- JSON only (``task_serializer``, ``result_serializer``, ``accept_content``): a pickle
  message is refused by the worker, never deserialised.
- ``task_acks_late`` + ``task_reject_on_worker_lost`` + ``task_acks_on_timeout=False`` +
  prefetch 1: a message is acknowledged only after its chunk is written; a chunk whose
  worker dies or hits the hard time limit goes back to the queue.
- ``visibility_timeout`` (longer than the hard time limit, checked by the settings) in
  ``broker_transport_options``, ``result_backend_transport_options`` and ``visibility_timeout``,
  the three places Celery's Redis guide names: a message not acknowledged within it (its
  worker was killed) is delivered again.
- soft and hard time limits, ``broker_connection_retry_on_startup``, a soft shutdown
  window so a stopping worker finishes or hands back its chunk.
- The redelivery cap is kept in PostgreSQL, not in the broker: ``scan.attempts`` counts
  claims (``db.scans.claim_scans``) and a scan claimed ``max_deliveries`` times without
  finishing is marked failed.

Queues: ``read`` (chunks of scans) and ``reconcile`` (recognised vs manual entries).

``celery -A worker worker -Q read,reconcile`` and ``escrutinio worker`` run the same app.
With no ``ESCRUTINIO_BROKER_URL`` / ``ESCRUTINIO_DATABASE_URL`` the running embedded servers
under ``state_dir`` are used (``escrutinio services start``).
"""

from __future__ import annotations

import logging
import os

from celery import Celery, signals

import pipeline  # noqa: F401  (first: sets the thread and pixel limits before numpy and cv2 load)
from worker.settings import Settings, get_settings

READ_QUEUE = "read"
RECONCILE_QUEUE = "reconcile"
#: The application_name of the workers' PostgreSQL sessions (visible in pg_stat_activity).
WORKER_APPLICATION_NAME = "escrutinio-worker"
#: Logged by each pool process once its model is loaded (tests and benchmarks wait for it).
MODEL_LOADED_MESSAGE = "digit model loaded in pool process"
#: Set by the worker's main process for its pool: how many processes share the cores.
POOL_PROCESSES_VARIABLE = "ESCRUTINIO_POOL_PROCESSES"

logger = logging.getLogger(__name__)


def resolve_broker_url(settings: Settings) -> str:
    """The configured broker URL, else the running embedded Redis's, else ""."""
    if settings.broker_url:
        return settings.broker_url
    from worker.embedded import EmbeddedRedis

    server = EmbeddedRedis(settings.state_dir)
    return server.url() if server.pid() is not None else ""


def resolve_database_url(settings: Settings) -> str:
    """The configured database URL, else the running embedded PostgreSQL's, else ""."""
    if settings.database_url:
        return settings.database_url
    from worker.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(settings.state_dir)
    return server.start() if server.pid() is not None else ""


def celery_config(settings: Settings, broker_url: str) -> dict[str, object]:
    """Every Celery setting of the app, from ``settings`` (a plain dict, easy to inspect)."""
    visibility = settings.visibility_timeout
    transport = {
        "visibility_timeout": visibility,
        # Sweep for messages of dead workers often enough for short test timeouts
        # (kombu's default sweep period is ~100 s).
        "unacked_restore_interval": max(1, min(10, visibility // 4)),
        "unacked_restore_throttle": 1,
    }
    return {
        "broker_url": broker_url,
        "result_backend": settings.result_backend or broker_url,
        "broker_transport_options": transport,
        "result_backend_transport_options": {"visibility_timeout": visibility},
        "visibility_timeout": visibility,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "task_acks_on_timeout": False,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        "task_ignore_result": True,
        "task_default_queue": READ_QUEUE,
        "task_routes": {
            "escrutinio.read_chunk": {"queue": READ_QUEUE},
            "escrutinio.reconcile": {"queue": RECONCILE_QUEUE},
        },
        "task_track_started": False,
        # `escrutinio beat`: reconcile the mesas whose data changed, every few seconds; a
        # run not started within the interval is dropped (the next one covers it).
        "beat_schedule": {
            "reconcile-changed-mesas": {
                "task": "escrutinio.reconcile",
                "schedule": float(settings.reconcile_interval),
                "options": {"queue": RECONCILE_QUEUE, "expires": settings.reconcile_interval},
            }
        },
        "beat_schedule_filename": str(settings.state_dir / "celerybeat-schedule"),
        "worker_soft_shutdown_timeout": float(min(settings.task_soft_time_limit, 60)),
        "worker_enable_soft_shutdown_on_idle": False,
        # Loading TensorFlow and the model in worker_process_init takes seconds.
        "worker_proc_alive_timeout": 180.0,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "enable_utc": True,
    }


def make_app(settings: Settings | None = None, broker_url: str | None = None) -> Celery:
    """A configured app (tests and the CLI pass explicit URLs; the module-level ``app``
    reads them from the settings or the running embedded servers)."""
    settings = settings or get_settings()
    app = Celery("escrutinio", include=["worker.tasks"])
    app.conf.update(celery_config(settings, broker_url or resolve_broker_url(settings)))
    return app


app = make_app()


@signals.worker_init.connect
def _check_broker(sender=None, **_kwargs) -> None:
    """Refuse to start on a non-Redis broker (Celery's amqp:// default when no URL was found);
    tell the pool processes how many they are (they share the cores out)."""
    concurrency = getattr(sender, "concurrency", None)
    if concurrency:
        os.environ[POOL_PROCESSES_VARIABLE] = str(concurrency)
    url = str(app.conf.broker_url or "")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        from worker.embedded import ServiceError

        raise ServiceError(
            "no Redis broker: set ESCRUTINIO_BROKER_URL or run `escrutinio services start`"
        )


@signals.worker_process_init.connect
def _init_worker_process(**_kwargs) -> None:
    """In each pool process, after the fork: drop inherited DB connections, load the model."""
    from db.session import dispose_after_fork

    dispose_after_fork()
    import cv2

    from worker.tasks import load_classifier, threads_per_process

    cv2.setNumThreads(threads_per_process())  # no oversubscription with several processes
    try:
        classifier = load_classifier()
        logger.info("%s %d: %s", MODEL_LOADED_MESSAGE, os.getpid(), classifier.version)
    except Exception:  # the task reports it per chunk; the process must still come up
        logger.exception("could not load the digit model in worker process %d", os.getpid())
