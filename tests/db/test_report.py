"""The report's arithmetic against figures computed by hand from constructed telegrams.

On the ``election`` fixture (tests/db/conftest.py), whose columns are (per ROWS = three
lists, blank, null; every telegram has 275 sobres):
- mesa A (district 2), office 1: typed 121 100 40 10 4; read 127 (confidence 0.95), 100,
  40 (confidence 0.6), 10, 4. The reading column adds to 281: READING_SUSPECT for 127.
- mesa A, office 2: typed and read 121 100 40 10 4.
- mesa B (district 3), office 1: typed 21 100 40 10 4 (the column adds to 175, not 275),
  read 121 100 40 10 4: MANUAL_SUSPECT; B's cells are not evaluated (the typed column is off).
- mesa C: typed, never scanned: five MISSING_READING.
Every other confidence is 0.99.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from db.report import build_report, coverage_curve, format_report
from db.session import get_engine
from tests.db.conftest import B


def _report(url, **options):
    with get_engine(url).begin() as connection:
        return build_report(connection, **options)


def test_cell_level_measures_count_only_cells_the_typed_sums_vouch_for(election):
    report = _report(election, threshold=0.9)

    assert report["cells"] == 10  # mesa A's two columns; B's typed column does not add up
    assert report["exact"] == pytest.approx(9 / 10)
    assert report["accepted_share"] == pytest.approx(9 / 10)  # all but the 0.6 cell
    assert report["accepted_exact"] == pytest.approx(8 / 9)  # the accepted 127 is wrong


def test_verdict_counts_and_the_suspected_entry_error(election):
    report = _report(election)

    assert report["verdicts"] == {
        "MATCH": 13,
        "READING_UNSURE": 0,
        "MANUAL_SUSPECT": 1,
        "READING_SUSPECT": 1,
        "MISSING_MANUAL": 0,
        "MISSING_READING": 5,
    }
    [suspect] = report["suspected_manual_errors"]
    assert {k: suspect[k] for k in ("mesa_id", "cargo_id", "votos_tipo", "agrupacion_id",
                                    "lista_numero", "manual", "reading", "confidence")} == {
        "mesa_id": B, "cargo_id": 1, "votos_tipo": "POSITIVO", "agrupacion_id": 501,
        "lista_numero": "101", "manual": 21, "reading": 121, "confidence": 0.99,
    }  # fmt: skip
    assert suspect["scan_path"] == "/scans/b.png" and len(suspect["box"]) == 4


def test_digit_measures_pair_the_digits_of_each_evaluated_number(election):
    report = _report(election)

    # Digits of the 10 evaluated cells: per column 121 100 40 10 4 -> eleven digits,
    # twice: 8 ones, 8 zeros, 2 twos, 4 fours; one 1 was read as 7 (127 for 121).
    confusion = report["confusion"]
    assert confusion[1][1] == 7 and confusion[1][7] == 1
    assert (confusion[0][0], confusion[2][2], confusion[4][4]) == (8, 2, 4)
    assert sum(map(sum, confusion)) == 22
    assert report["digits"]["n"] == 22
    assert report["digits"]["accuracy"] == pytest.approx(21 / 22)
    one = report["per_class"][1]
    assert (one["tp"], one["fn"], one["fp"], one["tn"]) == (7, 1, 0, 14)
    assert one["recall"] == pytest.approx(7 / 8)
    assert one["f1"] == pytest.approx(2 * 1 * (7 / 8) / (1 + 7 / 8))
    seven = report["per_class"][7]
    assert (seven["tp"], seven["fp"], seven["precision"]) == (0, 1, 0.0)
    # Macro averages run over the digits present (0, 1, 2, 4).
    assert report["digits"]["macro_recall"] == pytest.approx((1 + 7 / 8 + 1 + 1) / 4)
    assert report["digits"]["macro_precision"] == pytest.approx(1.0)


def test_coverage_falls_and_accuracy_rises_with_the_threshold(election):
    report = _report(election, thresholds=(0.0, 0.9, 0.96, 0.999))

    curve = {point["threshold"]: point for point in report["coverage"]}
    assert (curve[0.0]["accepted"], curve[0.0]["accepted_exact"]) == (10, pytest.approx(0.9))
    assert (curve[0.9]["accepted"], curve[0.9]["accepted_exact"]) == (9, pytest.approx(8 / 9))
    assert (curve[0.96]["accepted"], curve[0.96]["accepted_exact"]) == (8, 1.0)
    assert (curve[0.999]["accepted"], curve[0.999]["accepted_exact"]) == (0, None)
    assert curve[0.96]["accepted_share"] == pytest.approx(0.8)


def test_coverage_curve_cumulates_buckets():
    # bucket k = the confidence passes the k smallest thresholds
    curve = coverage_curve({0: (5, 0), 1: (3, 1), 2: (2, 2)}, total=10, thresholds=(0.5, 0.9))
    assert curve == [
        {"threshold": 0.5, "accepted": 5, "accepted_share": 0.5, "accepted_exact": 3 / 5},
        {"threshold": 0.9, "accepted": 2, "accepted_share": 0.2, "accepted_exact": 1.0},
    ]


def test_a_reviewed_value_is_the_truth_for_its_cell(election):
    with get_engine(election).begin() as connection:
        connection.execute(
            text("""INSERT INTO reviewed_value (mesa_code, cargo_id, votos_tipo, agrupacion_id,
                                                lista_numero, value)
                    VALUES (:mesa, 1, 'POSITIVO', 501, '101', 121)"""),
            {"mesa": B},
        )
    report = _report(election)

    assert report["cells"] == 11 and report["exact"] == pytest.approx(10 / 11)
    assert report["reviewed_cells"] == 1


def test_accuracy_by_district_and_the_text_form(election):
    report = _report(election)

    [district] = report["by_district"]
    assert (district["distrito_id"], district["cells"], district["exact_cells"]) == (2, 10, 9)
    assert [row["cargo_id"] for row in report["by_office"]] == [1, 2]
    text_form = format_report(report)
    assert "suspected data-entry errors: 1" in text_form and B in text_form


def test_an_empty_database_reports_zero_cells_without_failing(database_url):
    report = _report(database_url)
    assert report["cells"] == 0 and report["exact"] is None
    assert report["confusion"] == [[0] * 10 for _ in range(10)]
    assert set(report["verdicts"].values()) == {0}
