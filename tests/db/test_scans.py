"""The scan queue in SQL: idempotent registration, guarded claims, the redelivery cap."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from db import scans
from db.session import get_engine, sqlalchemy_url


def _files(tmp_path: Path, count: int) -> list[Path]:
    paths = []
    for number in range(count):
        path = tmp_path / f"01014{number:05d}X.png"
        path.write_bytes(f"scan {number}".encode())
        paths.append(path)
    return paths


def _register(url: str, paths: list[Path]) -> list[int]:
    with get_engine(url).begin() as connection:
        scans.register_scans(connection, list(scans.hash_files(paths)), "arg-2019-paso-caba")
        return [row.id for row in connection.execute(text("SELECT id FROM scan ORDER BY id"))]


def _status(url: str) -> dict[int, tuple[str, int]]:
    with get_engine(url).connect() as connection:
        rows = connection.execute(text("SELECT id, status, attempts FROM scan"))
        return {row.id: (row.status, row.attempts) for row in rows}


def test_registering_the_same_bytes_twice_adds_nothing(database_url: str, tmp_path: Path) -> None:
    paths = _files(tmp_path, 5)
    copy = tmp_path / "copy-of-first.png"
    copy.write_bytes(paths[0].read_bytes())
    engine = get_engine(database_url)
    with engine.begin() as connection:
        first = scans.register_scans(connection, list(scans.hash_files(paths)), "f")
    with engine.begin() as connection:
        second = scans.register_scans(connection, list(scans.hash_files([*paths, copy])), "f")
    assert (first, second) == (5, 0)
    with engine.connect() as connection:
        codes = connection.execute(text("SELECT mesa_code FROM scan ORDER BY id")).scalars().all()
    assert codes == [f"01014{n:05d}X" for n in range(5)]


def test_mesa_code_comes_from_the_file_name() -> None:
    assert scans.mesa_code_from_name("/x/0101406691X.png") == "0101406691X"
    assert scans.mesa_code_from_name("caba-0101406691x-page1.jpg") == "0101406691X"
    assert scans.mesa_code_from_name("scan-0001.png") is None


def test_find_scan_files_walks_folders_and_names_a_missing_path(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "one.PNG").write_bytes(b"1")
    (tmp_path / "a" / "notes.txt").write_text("not a scan")
    found = scans.find_scan_files([tmp_path / "a"])
    assert [path.name for path in found] == ["one.PNG"]
    with pytest.raises(FileNotFoundError, match="nope"):
        scans.find_scan_files([tmp_path / "nope"])


def _die(connection, database_url: str, timeout: float = 10.0) -> None:
    """A worker's connection dies without a word (no unlock, no rollback), and its server
    process is gone. That process exits, releasing its advisory locks, a moment after the
    client hangs up: wait for it, so the test does not race it."""
    pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    connection.invalidate()
    connection.close()
    engine = get_engine(database_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as connection:  # pg_stat_activity: a per-transaction snapshot
            query = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
            if connection.execute(query, {"pid": pid}).scalar_one() == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"PostgreSQL session {pid} still alive after {timeout} s")


def test_a_scan_held_by_a_live_worker_is_not_claimed_by_another(
    database_url: str, tmp_path: Path
) -> None:
    ids = _register(database_url, _files(tmp_path, 3))
    first_worker = create_engine(sqlalchemy_url(database_url)).connect()
    second_worker = create_engine(sqlalchemy_url(database_url)).connect()
    try:
        first = scans.claim_scans(first_worker, ids, max_claims=2)
        second = scans.claim_scans(second_worker, ids, max_claims=2)
        assert [scan.id for scan in first.claimed] == ids
        assert second.claimed == [] and second.held == ids and second.skipped == []
        assert all(state == ("processing", 1) for state in _status(database_url).values())
        # The first worker dies: its session ends and PostgreSQL drops its locks. The
        # chunk had been claimed without finishing, so it comes back split.
        _die(first_worker, database_url)
        again = scans.claim_scans(second_worker, ids, max_claims=2)
        assert again.split == ids and again.claimed == []
        singles = [scans.claim_scans(second_worker, [scan_id], max_claims=2) for scan_id in ids]
        assert [claim.claimed[0].attempts for claim in singles] == [2, 2, 2]
    finally:
        second_worker.close()


def test_a_scan_claimed_max_times_without_finishing_is_failed(
    database_url: str, tmp_path: Path
) -> None:
    [scan_id] = _register(database_url, _files(tmp_path, 1))
    for _ in range(2):  # two workers die holding it
        dying = create_engine(sqlalchemy_url(database_url)).connect()
        assert scans.claim_scans(dying, [scan_id], max_claims=2).claimed
        _die(dying, database_url)
    with get_engine(database_url).connect() as connection:
        third = scans.claim_scans(connection, [scan_id], max_claims=2)
        assert third.claimed == [] and third.exhausted == [scan_id]
        error = connection.execute(text("SELECT error FROM scan")).scalar_one()
    assert _status(database_url)[scan_id] == ("failed", 2)
    assert "claimed 2 times without finishing" in error


def test_forgiven_claims_do_not_count_against_the_cap(database_url: str, tmp_path: Path) -> None:
    ids = _register(database_url, _files(tmp_path, 2))
    for forgiven in range(3):  # each claim ended in a handled transient error
        connection = create_engine(sqlalchemy_url(database_url)).connect()
        claim = scans.claim_scans(connection, ids, max_claims=2, forgiven_claims=forgiven)
        assert [scan.id for scan in claim.claimed] == ids and not claim.split
        _die(connection, database_url)


def test_done_and_failed_scans_are_not_claimed_again(database_url: str, tmp_path: Path) -> None:
    ids = _register(database_url, _files(tmp_path, 2))
    with get_engine(database_url).connect() as connection:
        claim = scans.claim_scans(connection, ids, max_claims=2)
        with connection.begin():
            scans.mark_failed(connection, {ids[0]: "corrupt"})
            connection.execute(
                text("UPDATE scan SET status = 'done' WHERE id = :id"), {"id": ids[1]}
            )
        scans.release_scans(connection, [scan.id for scan in claim.claimed])
        again = scans.claim_scans(connection, ids, max_claims=2)
    assert again.claimed == [] and again.held == [] and again.skipped == ids


def test_stalled_and_failed_scans_are_reset_for_retry(database_url: str, tmp_path: Path) -> None:
    ids = _register(database_url, _files(tmp_path, 3))
    held = get_engine(database_url).connect()
    dead = create_engine(sqlalchemy_url(database_url)).connect()
    try:
        scans.claim_scans(held, [ids[0]], max_claims=2)  # alive: not stalled
        scans.claim_scans(dead, [ids[1]], max_claims=2)
        _die(dead, database_url)
        with get_engine(database_url).connect() as connection:
            scans.claim_scans(connection, [ids[2]], max_claims=2)
            with connection.begin():
                scans.mark_failed(connection, {ids[2]: "not an image"})
            scans.release_scans(connection, [ids[2]])
        with get_engine(database_url).connect() as connection:
            status = scans.queue_status(connection)
        assert status.scans["processing"] == 2 and status.stalled == 1
        assert status.failures == [("not an image", 1)]
        with get_engine(database_url).begin() as connection:
            assert scans.reset_for_retry(connection) == 2
        state = _status(database_url)
        assert state[ids[0]] == ("processing", 1)
        assert state[ids[1]] == state[ids[2]] == ("registered", 0)
    finally:
        held.close()


def _reading(mesa: str, model_version: str, values: list[int]):
    """A pipeline TelegramReading with one POSITIVO cell per value plus NULO and TOTAL."""
    import numpy as np

    from pipeline.read import CellReading, HeaderValue, TelegramReading

    def cell(votos_tipo, agrupacion_id, lista_numero, value):
        return CellReading(
            cargo_id=1, votos_tipo=votos_tipo, agrupacion_id=agrupacion_id,
            lista_numero=lista_numero, row_key=f"{votos_tipo}-{agrupacion_id}", value=value,
            confidence=0.97, flags=[], digits=str(value), digit_confidences=[0.97],
            digit_probs=np.full((1, 11), 0.01), box=(1, 2, 3, 4),
        )  # fmt: skip

    cells = [cell("POSITIVO", 10 + n, "", value) for n, value in enumerate(values)]
    cells += [cell("NULO", None, None, 1), cell("TOTAL", None, None, sum(values) + 1)]
    header = {"sobres": HeaderValue(sum(values) + 1, 0.9, []), "votantes": HeaderValue(None, 0.2)}
    return TelegramReading("scan.png", mesa, "arg-2019-paso-caba", 0.95, None, header, cells,
                           model_version)  # fmt: skip


def test_saving_a_reading_twice_keeps_one_row_per_cell_and_a_new_model_becomes_current(
    database_url: str, tmp_path: Path
) -> None:
    [scan_id] = _register(database_url, _files(tmp_path, 1))
    engine = get_engine(database_url)

    def read_and_save(reading) -> None:
        with engine.connect() as connection:
            [claimed] = scans.claim_scans(connection, [scan_id], max_claims=9).claimed
            with connection.begin():
                scans.save_readings(connection, [(claimed, reading)], "arg-2019-paso-caba")
            scans.release_scans(connection, [scan_id])
            assert connection.execute(text("SELECT status FROM scan")).scalar_one() == "done"
            connection.execute(text("UPDATE scan SET status = 'queued'"))  # read it again
            connection.commit()

    read_and_save(_reading("0101400000X", "paper@1", [5, 7]))
    read_and_save(_reading("0101400000X", "paper@1", [5, 8]))  # same model: replaced in place
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT r.model_version, r.is_current, r.sobres, r.votantes, c.votos_tipo, "
                "c.agrupacion_id, c.lista_numero, c.value FROM recognition r "
                "JOIN cell_reading c ON c.recognition_id = r.id ORDER BY c.votos_tipo, c.value"
            )
        ).all()
    assert [(r.votos_tipo, r.agrupacion_id, r.lista_numero, r.value) for r in rows] == [
        ("NULO", None, None, 1), ("POSITIVO", 10, "", 5), ("POSITIVO", 11, "", 8),
        ("TOTAL", None, None, 14),
    ]  # fmt: skip
    assert {(r.model_version, r.is_current, r.sobres, r.votantes) for r in rows} == {
        ("paper@1", True, 14, None)
    }

    read_and_save(_reading("0101400000X", "default@2", [5, 8]))
    with engine.connect() as connection:
        recognitions = connection.execute(
            text("SELECT model_version, is_current FROM recognition ORDER BY id")
        ).all()
        cells = connection.execute(text("SELECT count(*) FROM cell_reading")).scalar_one()
        mesa_code = connection.execute(text("SELECT mesa_code FROM scan")).scalar_one()
    assert [tuple(r) for r in recognitions] == [("paper@1", False), ("default@2", True)]
    assert cells == 8
    assert mesa_code == "0101400000X"


def test_a_chunks_cells_are_written_in_multi_row_statements(
    database_url: str, tmp_path: Path
) -> None:
    """One INSERT per row cost a round trip and a server-side plan per cell (240 ms for
    eight 90-cell telegrams): the cells go in multi-row INSERTs, whatever the version of
    SQLAlchemy decides for an upsert by default."""
    from sqlalchemy import event

    ids = _register(database_url, _files(tmp_path, 4))
    engine = get_engine(database_url)
    rows_per_statement: list[int] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith("INSERT INTO cell_reading"):
            # A multi-row INSERT numbers its parameters per row: %(value__0)s, %(value__1)s...
            # (``executemany`` is no guide: SQLAlchemy sets it for its batches too.)
            rows_per_statement.append(statement.count("%(value__"))

    event.listen(engine, "before_cursor_execute", count)
    try:
        with engine.connect() as connection:
            claimed = scans.claim_scans(connection, ids, max_claims=9).claimed
            readings = [
                (scan, _reading(f"01014{n:05d}X", "paper@1", list(range(1, 31))))
                for n, scan in enumerate(claimed)
            ]
            with connection.begin():
                written = scans.save_readings(connection, readings, "arg-2019-paso-caba")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert written == 4 * 32
    assert rows_per_statement == [128]  # not one single-row INSERT run 128 times ([0])
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT count(*) FROM cell_reading")).scalar_one()
    assert stored == 128
