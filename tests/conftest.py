"""Shared fixtures: real PostgreSQL and Redis servers for the whole suite.

With ESCRUTINIO_DATABASE_URL / ESCRUTINIO_BROKER_URL set (as .ci/run does when local
servers answer) the tests use those servers; otherwise they start the embedded ones
under a scratch state directory and stop them at the end. Every test that needs a
database gets a fresh one, cloned from a template migrated once per session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import redis

from db.migrate import upgrade
from worker.embedded import EmbeddedPostgres, EmbeddedRedis, remove_state

SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLE_TELEGRAM = SHARED / "data" / "telegrams" / "2019-paso-caba-0101406691X"
#: A Redis database index the suite may flush freely.
TEST_REDIS_DB = 9


def _with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (keeps host, port, user and query)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _admin(url: str):
    connection = psycopg2.connect(_with_database(url, "postgres"))
    connection.autocommit = True
    return connection


@pytest.fixture(scope="session")
def service_state() -> Iterator[Path]:
    """Scratch state directory for embedded servers; both are stopped at the end."""
    state = Path(f"/tmp/escrutinio-tests-{os.getpid()}")
    yield state
    remove_state(state)


@pytest.fixture(scope="session")
def postgres_server_url(service_state: Path) -> str:
    """URL of a real PostgreSQL server (configured, or embedded)."""
    configured = os.environ.get("ESCRUTINIO_DATABASE_URL", "")
    if configured:
        return configured
    return EmbeddedPostgres(service_state).start()


@pytest.fixture(scope="session")
def _template_database(postgres_server_url: str) -> Iterator[str]:
    name = f"escrutinio_template_{os.getpid()}"
    admin = _admin(postgres_server_url)
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    upgrade(_with_database(postgres_server_url, name))
    from db.session import dispose_all

    dispose_all()
    yield name
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def scratch_database(server_url: str, template: str) -> Iterator[str]:
    """Create a database cloned from ``template``, yield its URL, drop it afterwards."""
    name = f"escrutinio_test_{uuid.uuid4().hex[:12]}"
    admin = _admin(server_url)
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _with_database(server_url, name)
    finally:
        from db.session import dispose_all

        dispose_all()
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def database_url(postgres_server_url: str, _template_database: str) -> Iterator[str]:
    """A fresh database migrated to head, dropped after the test."""
    yield from scratch_database(postgres_server_url, _template_database)


@pytest.fixture
def empty_database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh database with no tables at all, dropped after the test."""
    yield from scratch_database(postgres_server_url, "template0")


@pytest.fixture(scope="session")
def redis_server_url(service_state: Path) -> str:
    """URL of a real Redis server (configured, or embedded), on the suite's own db index."""
    configured = os.environ.get("ESCRUTINIO_BROKER_URL", "")
    base = configured or EmbeddedRedis(service_state).start()
    server = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{server}/{TEST_REDIS_DB}"


@pytest.fixture
def broker_url(redis_server_url: str) -> str:
    """The suite's Redis database, emptied before the test."""
    redis.Redis.from_url(redis_server_url).flushdb()
    return redis_server_url


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the developer's .env nor share the settings cache."""
    monkeypatch.chdir(tmp_path)
    from worker.settings import get_settings

    get_settings.cache_clear()
