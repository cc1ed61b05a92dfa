"""Importing the official results CSV: idempotent, fast path, whole-file rejection."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import text

from db.importer import COLUMNS, ImportFailure, import_results
from db.session import get_engine
from tests.conftest import SAMPLE_TELEGRAM

SAMPLE_CSV = SAMPLE_TELEGRAM.with_suffix(".results.csv")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _write(path: Path, rows: list[dict[str, str]], columns=COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _import(url: str, *paths: Path, **options):
    with get_engine(url).begin() as connection:
        return import_results(connection, list(paths), **options)


def _snapshot(url: str) -> list[tuple]:
    """Every manual entry with its natural key, sorted: the database's observable state."""
    query = text(
        """SELECT m.mesa_code, o.cargo_id, e.votos_tipo, p.agrupacion_id, pl.lista_numero,
                  e.votos_cantidad
           FROM manual_entry e JOIN mesa m ON m.id = e.mesa_id
           JOIN office o ON o.id = e.office_id
           LEFT JOIN party_list pl ON pl.id = e.list_id LEFT JOIN party p ON p.id = pl.party_id
           ORDER BY 1, 2, 3, 4, 5"""
    )
    with get_engine(url).connect() as connection:
        return [tuple(row) for row in connection.execute(query)]


def test_importing_the_sample_stores_every_count(database_url):
    rows = _rows(SAMPLE_CSV)
    stats = _import(database_url, SAMPLE_CSV)

    assert stats.rows_read == len(rows)
    assert stats.inserted == len(rows)
    stored = _snapshot(database_url)
    assert len(stored) == len(rows)
    assert sum(row[-1] for row in stored) == sum(int(row["votos_cantidad"]) for row in rows)
    with get_engine(database_url).connect() as connection:
        circuit = connection.execute(text("SELECT circuito_id FROM circuit")).scalar_one()
        mesa = connection.execute(text("SELECT mesa_code, electores FROM mesa")).one()
    assert circuit == "00153"  # leading zeros kept
    assert tuple(mesa) == ("0101406691X", 345)


def test_importing_the_same_file_twice_changes_nothing(database_url):
    _import(database_url, SAMPLE_CSV)
    before = _snapshot(database_url)

    stats = _import(database_url, SAMPLE_CSV)

    assert (stats.inserted, stats.updated) == (0, 0)
    assert stats.unchanged == stats.rows_read
    assert _snapshot(database_url) == before


def test_a_changed_count_is_reported_as_an_update(database_url, tmp_path):
    _import(database_url, SAMPLE_CSV)
    rows = _rows(SAMPLE_CSV)
    rows[0]["votos_cantidad"] = str(int(rows[0]["votos_cantidad"]) + 5)

    stats = _import(database_url, _write(tmp_path / "fixed.csv", rows))

    assert (stats.inserted, stats.updated) == (0, 1)


def _corrupt(rows: list[dict[str, str]], case: str) -> tuple[list[dict[str, str]], tuple]:
    """Break row 3 of the file (line 4) the way ``case`` says; return the rows and columns."""
    rows = [dict(row) for row in rows]
    columns = COLUMNS
    if case == "missing column":
        columns = tuple(c for c in COLUMNS if c != "votos_cantidad")
    elif case == "non-integer count":
        rows[2]["votos_cantidad"] = "12a"
    elif case == "unknown votos_tipo":
        rows[2]["votos_tipo"] = "ANULADO"
    elif case == "negative count":
        rows[2]["votos_cantidad"] = "-3"
    elif case == "duplicate key with a different count":
        duplicate = dict(rows[2])
        duplicate["votos_cantidad"] = str(int(duplicate["votos_cantidad"]) + 1)
        rows.append(duplicate)
    return rows, columns


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing column", r"bad\.csv:1: missing column\(s\): votos_cantidad"),
        ("non-integer count", r"bad\.csv:4: column votos_cantidad: '12a' is not an integer"),
        ("unknown votos_tipo", r"bad\.csv:4: column votos_tipo: unknown value 'ANULADO'"),
        ("negative count", r"bad\.csv:4: column votos_cantidad: -3 is out of range"),
        ("duplicate key with a different count", r"bad\.csv:4 and .*bad\.csv:86: duplicate key"),
    ],
)
def test_a_bad_file_is_rejected_whole_with_file_line_and_column(
    database_url, tmp_path, case, message
):
    _import(database_url, SAMPLE_CSV)
    before = _snapshot(database_url)
    rows = [
        dict(row, votos_cantidad=str(int(row["votos_cantidad"]) + 1)) for row in _rows(SAMPLE_CSV)
    ]
    bad_rows, columns = _corrupt(rows, case)
    bad = _write(tmp_path / "bad.csv", bad_rows, columns)

    with pytest.raises(ImportFailure, match=message):
        _import(database_url, bad)

    assert _snapshot(database_url) == before  # not one of the other (changed) rows landed


def test_a_row_with_too_few_fields_is_named(database_url, tmp_path):
    bad = tmp_path / "short.csv"
    lines = SAMPLE_CSV.read_text(encoding="utf-8").splitlines()
    lines[5] = ",".join(lines[5].split(",")[:10])
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with pytest.raises(ImportFailure, match=r"short\.csv:6: expected 23 fields"):
        _import(database_url, bad)
    assert _snapshot(database_url) == []


def test_skip_bad_rows_imports_the_rest_and_writes_the_rejects(database_url, tmp_path):
    rows = _rows(SAMPLE_CSV)
    rows[2]["votos_cantidad"] = "x"
    rows[7]["votos_tipo"] = "ANULADO"
    bad = _write(tmp_path / "bad.csv", rows)
    rejects_path = tmp_path / "rejects.csv"

    stats = _import(database_url, bad, skip_bad_rows=True, rejects_path=rejects_path)

    assert stats.rows_rejected == 2
    assert stats.inserted == len(rows) - 2
    rejected = _rows(rejects_path)
    assert [row["line"] for row in rejected] == ["4", "9"]
    assert "votos_cantidad" in rejected[0]["error"]
    assert "votos_tipo" in rejected[1]["error"]
