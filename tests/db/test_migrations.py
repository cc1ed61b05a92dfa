"""The schema is made by Alembic only: up, down and up again, also concurrently."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import create_engine, inspect

from db.migrate import downgrade, upgrade
from db.models import Base
from db.session import sqlalchemy_url


def _tables(url: str) -> set[str]:
    engine = create_engine(sqlalchemy_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_every_model_table_and_downgrade_removes_them(empty_database_url):
    upgrade(empty_database_url)
    assert set(Base.metadata.tables) <= _tables(empty_database_url)

    downgrade(empty_database_url, "base")
    assert _tables(empty_database_url) == {"alembic_version"}

    upgrade(empty_database_url)
    assert set(Base.metadata.tables) <= _tables(empty_database_url)


def test_the_migrated_schema_matches_the_models(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(sqlalchemy_url(database_url))
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_concurrent_upgrades_from_several_processes_all_succeed(empty_database_url):
    code = "import sys; from db.migrate import upgrade; upgrade(sys.argv[1])"
    processes = [
        subprocess.Popen([sys.executable, "-c", code, empty_database_url], stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    errors = [process.communicate(timeout=120)[1].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], errors
    assert set(Base.metadata.tables) <= _tables(empty_database_url)
