"""The Celery configuration carries the reliability rules (real behaviour: test_faults.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from db.session import get_engine
from worker.celery_app import READ_QUEUE, RECONCILE_QUEUE, celery_config, make_app
from worker.settings import get_settings, load_settings


@pytest.fixture
def config() -> dict[str, object]:
    settings = load_settings(task_soft_time_limit=50, task_time_limit=60, visibility_timeout=90)
    return celery_config(settings, "redis://127.0.0.1:6379/0")


def test_only_json_is_sent_and_accepted(config: dict[str, object]) -> None:
    assert config["task_serializer"] == config["result_serializer"] == "json"
    assert config["accept_content"] == config["result_accept_content"] == ["json"]


def test_messages_are_acknowledged_after_the_work_and_requeued_when_a_worker_dies(
    config: dict[str, object],
) -> None:
    assert config["task_acks_late"] is True
    assert config["task_reject_on_worker_lost"] is True
    assert config["task_acks_on_timeout"] is False  # the hard time limit requeues too
    assert config["worker_prefetch_multiplier"] == 1
    assert config["broker_connection_retry_on_startup"] is True
    assert config["worker_soft_shutdown_timeout"] > 0


def test_the_visibility_timeout_outlasts_the_time_limits_in_all_three_places(
    config: dict[str, object],
) -> None:
    assert config["task_soft_time_limit"] == 50 and config["task_time_limit"] == 60
    assert config["broker_transport_options"]["visibility_timeout"] == 90
    assert config["result_backend_transport_options"]["visibility_timeout"] == 90
    assert config["visibility_timeout"] == 90


def test_reading_and_reconciling_have_their_own_queues(config: dict[str, object]) -> None:
    routes = config["task_routes"]
    assert routes["escrutinio.read_chunk"]["queue"] == READ_QUEUE == "read"
    assert routes["escrutinio.reconcile"]["queue"] == RECONCILE_QUEUE == "reconcile"
    [schedule] = config["beat_schedule"].values()
    assert schedule["task"] == "escrutinio.reconcile"
    assert schedule["options"]["queue"] == RECONCILE_QUEUE


def test_the_app_registers_both_tasks() -> None:
    app = make_app(load_settings(), "redis://127.0.0.1:6379/0")
    app.loader.import_default_modules()
    assert {"escrutinio.read_chunk", "escrutinio.reconcile"} <= set(app.tasks)
    app.close()


def test_the_reconcile_task_reconciles_the_configured_database(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from db.importer import import_results
    from tests.conftest import SAMPLE_TELEGRAM

    with get_engine(database_url).begin() as connection:
        import_results(connection, [SAMPLE_TELEGRAM.with_suffix(".results.csv")])
    monkeypatch.setenv("ESCRUTINIO_DATABASE_URL", database_url)
    get_settings.cache_clear()
    from worker.tasks import reconcile

    result = reconcile.run(full=True)  # the task body, in this process
    assert result["full"] is True and result["mesas"] == 1
    with get_engine(database_url).connect() as connection:
        verdicts = connection.execute(
            text("SELECT verdict, count(*) FROM cell_verdict GROUP BY verdict")
        ).all()
    # Typed entries and no scan read yet: every cell waits for its reading.
    assert [row.verdict for row in verdicts] == ["MISSING_READING"]
    assert verdicts[0].count == result["cells"] > 0
