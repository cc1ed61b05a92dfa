"""A migrated scratch database for one benchmark run, dropped afterwards.

Used by the benchmark scripts (run as ``.venv/bin/python bench/bench_X.py``, so this
folder is on ``sys.path``). The server is ``configured_url``'s, or the embedded one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
from sqlalchemy.engine import make_url

from db.migrate import upgrade
from db.session import dispose_all
from worker.embedded import database_url

STATE_DIR = Path("/tmp/escrutinio-bench-state")


@contextmanager
def migrated_scratch_database(configured_url: str) -> Iterator[str]:
    """Yield the URL of a new database migrated to head; drop it at the end."""
    with database_url(configured_url, STATE_DIR) as server:
        name = f"escrutinio_bench_{uuid.uuid4().hex[:8]}"
        admin = psycopg2.connect(make_url(server).set(database="postgres").render_as_string(False))
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
        try:
            url = make_url(server).set(database=name).render_as_string(hide_password=False)
            upgrade(url)
            yield url
        finally:
            dispose_all()
            admin.cursor().execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            admin.close()
