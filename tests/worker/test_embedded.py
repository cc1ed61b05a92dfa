"""The embedded PostgreSQL and Redis start, answer, and stop without leaving processes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg2
import redis

from worker.embedded import EmbeddedPostgres, EmbeddedRedis, broker_url, database_url


def _processes_mentioning(text: str) -> list[str]:
    listing = subprocess.run(
        ["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True
    ).stdout
    return [line for line in listing.splitlines() if text in line and "ps -ww" not in line]


def test_embedded_servers_start_answer_and_stop_cleanly():
    state = Path(f"/tmp/escrutinio-embedded-{os.getpid()}")
    with database_url("", state) as db, broker_url("", state) as broker:
        connection = psycopg2.connect(db)
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            assert cursor.fetchone() == ("escrutinio",)
        connection.close()
        assert redis.Redis.from_url(broker).ping()
        assert EmbeddedPostgres(state).pid() is not None
        assert EmbeddedRedis(state).pid() is not None
        assert _processes_mentioning(str(state))

    assert EmbeddedPostgres(state).pid() is None
    assert EmbeddedRedis(state).pid() is None
    assert _processes_mentioning(str(state)) == []


def test_a_configured_url_is_used_as_is_and_nothing_starts(tmp_path):
    with database_url("postgresql://u@example:5432/db", tmp_path) as db:
        assert db == "postgresql://u@example:5432/db"
    assert not (tmp_path / "postgres").exists()
