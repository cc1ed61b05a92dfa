"""The psql views exist after ``alembic upgrade head`` and return the expected rows.

Data: the ``election`` fixture of tests/db/conftest.py (mesas A, B, C).
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from db.migrate import downgrade, upgrade
from db.report import build_report
from db.session import get_engine
from tests.db.conftest import A, B, C

VIEWS = {
    "v_current_recognition",
    "v_cell_comparison",
    "v_low_confidence_cells",
    "v_suspected_entry_errors",
    "v_evaluation_cells",
    "v_accuracy_by_district",
    "v_accuracy_by_section",
    "v_accuracy_by_office",
    "v_digit_confusion",
    "v_digit_stats",
}


def _views(url: str) -> set[str]:
    with get_engine(url).connect() as connection:
        return set(
            connection.execute(
                text("SELECT viewname FROM pg_views WHERE schemaname = 'public'")
            ).scalars()
        )


def _query(url: str, sql: str, **parameters) -> list[dict]:
    with get_engine(url).begin() as connection:
        return [dict(row) for row in connection.execute(text(sql), parameters).mappings()]


def test_upgrade_creates_the_views_and_downgrade_removes_them(empty_database_url):
    upgrade(empty_database_url)
    assert _views(empty_database_url) >= VIEWS
    downgrade(empty_database_url, "0001")
    assert not VIEWS & _views(empty_database_url)
    upgrade(empty_database_url)
    assert _views(empty_database_url) >= VIEWS


def test_cell_comparison_has_one_row_per_cell_with_place_and_both_values(election):
    rows = _query(election, "SELECT * FROM v_cell_comparison ORDER BY mesa_code, cargo_id")

    assert len(rows) == 20
    first_b = next(r for r in rows if r["mesa_code"] == B and r["agrupacion_id"] == 501)
    assert (first_b["manual_value"], first_b["reading_value"], first_b["verdict"]) == (
        21, 121, "MANUAL_SUSPECT",
    )  # fmt: skip
    assert (first_b["distrito_id"], first_b["distrito_nombre"]) == (3, "Distrito 3")
    assert (first_b["seccion_id"], first_b["cargo_nombre"]) == (14, "Cargo 1")
    assert {r["verdict"] for r in rows if r["mesa_code"] == C} == {"MISSING_READING"}


def test_low_confidence_cells_carry_the_scan_path_and_crop_box(election):
    rows = _query(election, "SELECT * FROM v_low_confidence_cells")

    [cell] = rows  # only the 0.6 cell is below the default threshold 0.9
    assert (cell["mesa_code"], cell["value"], cell["confidence"]) == (A, 40, 0.6)
    assert cell["scan_path"] == "/scans/telegram.png" and len(cell["box"]) == 4
    assert cell["verdict"] == "MATCH" and cell["manual_value"] == 40

    with get_engine(election).begin() as connection:
        connection.execute(text("SET LOCAL escrutinio.confidence_threshold = 0.96"))
        stricter = connection.execute(text("SELECT value FROM v_low_confidence_cells")).all()
    assert sorted(value for (value,) in stricter) == [40, 127]


def test_suspected_entry_errors_list_the_typing_error(election):
    [row] = _query(election, "SELECT * FROM v_suspected_entry_errors")
    assert (row["mesa_code"], row["manual_value"], row["reading_value"]) == (B, 21, 121)
    assert (row["manual_column_sum"], row["reading_column_sum"]) == (175, 275)
    assert row["scan_path"] == "/scans/b.png"


def test_accuracy_views_group_the_evaluated_cells(election):
    [district] = _query(election, "SELECT * FROM v_accuracy_by_district")
    assert (district["distrito_id"], district["cells"], district["exact_cells"]) == (2, 10, 9)
    assert district["accepted_cells"] == 9
    assert district["accepted_exact"] == pytest.approx(8 / 9)

    [section] = _query(election, "SELECT * FROM v_accuracy_by_section")
    assert (section["seccion_id"], section["cells"]) == (14, 10)

    offices = _query(election, "SELECT * FROM v_accuracy_by_office ORDER BY cargo_id")
    assert [(o["cargo_id"], o["cells"], o["exact_cells"]) for o in offices] == [
        (1, 5, 4),
        (2, 5, 5),
    ]


def test_digit_stats_agree_with_the_report_metrics(election):
    stats = _query(election, "SELECT * FROM v_digit_stats ORDER BY digit")
    with get_engine(election).begin() as connection:
        report = build_report(connection)

    assert [row["digit"] for row in stats] == list(range(10))
    for row, expected in zip(stats, report["per_class"], strict=True):
        assert (row["tp"], row["fp"], row["fn"], row["tn"]) == (
            expected["tp"], expected["fp"], expected["fn"], expected["tn"],
        )  # fmt: skip
        assert (row["recall"] or 0.0) == pytest.approx(expected["recall"])
    pairs = _query(election, "SELECT * FROM v_digit_confusion WHERE true_digit <> read_digit")
    assert pairs == [{"true_digit": 1, "read_digit": 7, "n": 1}]


def test_current_recognition_has_one_row_per_scanned_mesa(election):
    rows = _query(election, "SELECT mesa_code, scan_path FROM v_current_recognition")
    assert sorted(rows, key=lambda r: r["mesa_code"]) == [
        {"mesa_code": A, "scan_path": "/scans/telegram.png"},
        {"mesa_code": B, "scan_path": "/scans/b.png"},
    ]
