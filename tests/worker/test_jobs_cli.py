"""`escrutinio enqueue / status / retry-failed` against real PostgreSQL and Redis (no worker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from db.session import get_engine
from worker.cli import main
from worker.settings import get_settings

FORM = "arg-2019-paso-caba"


@pytest.fixture
def servers(database_url: str, broker_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ESCRUTINIO_DATABASE_URL", database_url)
    monkeypatch.setenv("ESCRUTINIO_BROKER_URL", broker_url)
    get_settings.cache_clear()
    yield database_url, broker_url
    get_settings.cache_clear()


def _scan_files(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        path = folder / f"01001{number:05d}X.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + f"telegram {number}".encode())
        paths.append(path)
    return paths


def _run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _waiting(broker_url: str) -> int:
    return int(redis.Redis.from_url(broker_url).llen("read"))


def test_enqueue_registers_each_file_once_and_resumes_what_has_no_message(
    servers, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    database_url, broker_url = servers
    _scan_files(tmp_path / "scans" / "a", 3)
    _scan_files(tmp_path / "scans" / "b", 0)
    (tmp_path / "scans" / "b" / "duplicate-of-first.png").write_bytes(
        (tmp_path / "scans" / "a" / "0100100000X.png").read_bytes()
    )
    (tmp_path / "scans" / "b" / "0100200000X.png").write_bytes(b"another telegram")
    code, out, _ = _run(
        capsys, "enqueue", str(tmp_path / "scans"), "--form", FORM, "--chunk", "2", "--json"
    )
    first = json.loads(out)
    assert code == 0
    assert (first["files"], first["registered"], first["already_registered"]) == (5, 4, 1)
    assert (first["queued"], first["messages"]) == (4, 2)
    assert _waiting(broker_url) == 2

    # Run again while the messages wait: nothing new, nothing sent twice.
    code, out, _ = _run(capsys, "enqueue", str(tmp_path / "scans"), "--form", FORM, "--json")
    second = json.loads(out)
    assert (second["registered"], second["messages"], second["left_in_flight"]) == (0, 0, 4)
    assert _waiting(broker_url) == 2

    # The messages are lost (say the crash came between commit and send): the next run
    # finds queued scans and an empty broker, and sends them again.
    redis.Redis.from_url(broker_url).delete("read")
    code, out, _ = _run(
        capsys, "enqueue", str(tmp_path / "scans"), "--form", FORM, "--chunk", "3", "--json"
    )
    third = json.loads(out)
    assert (third["registered"], third["queued"], third["messages"]) == (0, 4, 2)
    assert _waiting(broker_url) == 2
    with get_engine(database_url).connect() as connection:
        rows = connection.execute(text("SELECT status, mesa_code, form FROM scan")).all()
    assert {row.status for row in rows} == {"queued"}
    assert {row.form for row in rows} == {FORM}
    assert sorted(row.mesa_code for row in rows) == [
        "0100100000X", "0100100001X", "0100100002X", "0100200000X",
    ]  # fmt: skip


def test_status_json_counts_scans_queue_and_failure_reasons(
    servers, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    database_url, broker_url = servers
    _scan_files(tmp_path / "scans", 5)
    _run(capsys, "enqueue", str(tmp_path / "scans"), "--form", FORM, "--chunk", "2")
    with get_engine(database_url).begin() as connection:
        connection.execute(
            text(
                "UPDATE scan SET status = 'failed', error = path || ': not an image' "
                "WHERE id IN (SELECT id FROM scan ORDER BY id LIMIT 2)"
            )
        )
        connection.execute(
            text(
                "UPDATE scan SET status = 'done', finished_at = now() "
                "WHERE id = (SELECT max(id) FROM scan)"
            )
        )
    code, out, _ = _run(capsys, "status", "--json")
    status = json.loads(out)
    assert code == 0
    assert status["scans"] == {
        "registered": 0, "queued": 2, "processing": 0, "done": 1, "failed": 2,
    }  # fmt: skip
    assert status["queue_depth"] == 3
    assert status["done_last_minute"] == 1
    assert status["failures"] == [{"reason": "<scan>: not an image", "count": 2}]

    code, out, _ = _run(capsys, "status")
    assert code == 0 and "not an image" in out and "failed 2" in out


def test_retry_failed_queues_failed_scans_again_with_attempts_reset(
    servers, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    database_url, broker_url = servers
    _scan_files(tmp_path / "scans", 3)
    _run(capsys, "enqueue", str(tmp_path / "scans"), "--form", FORM)
    redis.Redis.from_url(broker_url).delete("read")
    with get_engine(database_url).begin() as connection:
        connection.execute(
            text("UPDATE scan SET status = 'failed', attempts = 2, error = 'claimed 2 times'")
        )
    code, out, _ = _run(capsys, "retry-failed", "--chunk", "1")
    assert code == 0 and "3 failed or stalled scans reset" in out
    assert _waiting(broker_url) == 3
    with get_engine(database_url).connect() as connection:
        rows = connection.execute(text("SELECT status, attempts, error FROM scan")).all()
    assert {(row.status, row.attempts, row.error) for row in rows} == {("queued", 0, None)}


def test_enqueue_names_a_missing_path_and_an_unknown_form(
    servers, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = _run(capsys, "enqueue", str(tmp_path / "nope"), "--form", FORM)
    assert code == 2 and "nope: no such file or folder" in err
    _scan_files(tmp_path / "scans", 1)
    code, _, err = _run(capsys, "enqueue", str(tmp_path / "scans"), "--form", "no-such-form")
    assert code == 2 and "no-such-form" in err
    code, _, err = _run(capsys, "enqueue", str(tmp_path / "scans"), "--form", FORM, "--chunk", "0")
    assert code == 2 and "--chunk" in err
