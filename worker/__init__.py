"""Settings, the Celery app, its tasks and the command line.

``celery -A worker ...`` finds the app through ``worker.app`` / ``worker.celery``, resolved
lazily so importing ``worker.cli`` or ``worker.settings`` does not configure Celery.
"""


def __getattr__(name: str):
    if name in ("app", "celery"):
        from worker.celery_app import app

        return app
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
