"""Alembic environment: online migrations only, safe to run from several processes.

An advisory lock serialises concurrent ``upgrade`` runs (several containers starting
at once); each migration runs in its own transaction with a lock timeout so a busy
table fails fast instead of blocking the election-night workload.
"""

from __future__ import annotations

import logging.config

from alembic import context
from sqlalchemy import create_engine, pool, text

from db.models import Base
from db.session import sqlalchemy_url

# Any constant works; it only has to be the same for every escrutinio process.
MIGRATION_LOCK_ID = 0x65736372

config = context.config
if config.config_file_name and config.attributes.get("configure_logging", True):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        from worker.settings import get_settings

        url = get_settings().database_url
    if not url:
        raise RuntimeError(
            "no database URL: set ESCRUTINIO_DATABASE_URL or run `escrutinio db upgrade`"
        )
    return url


def run_migrations_online() -> None:
    engine = create_engine(sqlalchemy_url(database_url()), poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                transaction_per_migration=True,
                compare_type=True,
            )
            with context.begin_transaction():
                connection.execute(text("SET LOCAL lock_timeout = '10s'"))
                context.run_migrations()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported")
run_migrations_online()
