"""Run the Alembic migrations programmatically (``escrutinio db upgrade``, the tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations
from pipeline.errors import BadInput

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


def alembic_config(database_url: str) -> Config:
    """An Alembic config that works from any directory, installed or not."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def require_current_schema(database_url: str) -> None:
    """Raise ``BadInput`` unless the database is migrated to the code's head revision."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from db.session import get_engine

    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    with get_engine(database_url).connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current != head:
        raise BadInput(
            f"the database schema is at revision {current or 'none'}, this code needs {head}: "
            "run `escrutinio db upgrade`"
        )
