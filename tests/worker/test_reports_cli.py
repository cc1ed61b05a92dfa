"""``escrutinio reconcile | report | review`` end to end on a real database, and the beat task."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from xml.etree import ElementTree

import cv2
import numpy as np
import pytest
from sqlalchemy import text

from db.session import get_engine
from tests.db.telegrams import COLUMN_275, CellRead, add_reading, import_typed
from worker.cli import main

A, B = "0200100001X", "0300100002X"
SUSPECT_CELL = f"{B}|1|POSITIVO|501|101"


def _scan(path: Path) -> str:
    """A white 400x120 'scan' with dark strokes where the constructed boxes are."""
    image = np.full((120, 400), 255, np.uint8)
    for x in range(20, 400, 20):
        cv2.line(image, (x + 4, 12), (x + 12, 26), 0, 2)
    cv2.imwrite(str(path), image)
    return str(path)


@pytest.fixture
def cli_database(database_url, tmp_path, monkeypatch):
    """Mesa A read with one unsure cell, mesa B with the 121/21 typing error; not reconciled."""
    monkeypatch.setenv("ESCRUTINIO_DATABASE_URL", database_url)
    import_typed(
        database_url,
        tmp_path / "typed.csv",
        {A: {1: COLUMN_275}, B: {1: [21, *COLUMN_275[1:]]}},
        distritos={A: 2, B: 3},
    )
    unsure = [CellRead(127, confidence=0.4), *COLUMN_275[1:]]
    add_reading(database_url, A, {1: unsure}, sobres=275, path=_scan(tmp_path / "a.png"))
    add_reading(database_url, B, {1: COLUMN_275}, sobres=275, path=_scan(tmp_path / "b.png"))
    return database_url


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_reconcile_then_report_json_has_the_documented_keys(cli_database, capsys):
    code, out, _ = _run(capsys, "reconcile", "--json")
    assert code == 0
    assert json.loads(out)["cells"] == 10

    code, out, _ = _run(capsys, "report", "--json")
    assert code == 0
    report = json.loads(out)
    assert {"cells", "exact", "accepted_share", "accepted_exact", "verdicts",
            "suspected_manual_errors", "per_class", "confusion"} <= set(report)  # fmt: skip
    assert report["verdicts"]["MANUAL_SUSPECT"] == 1
    assert report["verdicts"]["READING_UNSURE"] == 1
    [suspect] = report["suspected_manual_errors"]
    assert {"mesa_id", "cargo_id", "votos_tipo", "agrupacion_id", "lista_numero", "manual",
            "reading", "confidence"} <= set(suspect)  # fmt: skip
    assert (suspect["mesa_id"], suspect["manual"], suspect["reading"]) == (B, 21, 121)
    assert len(report["confusion"]) == 10 and len(report["per_class"]) == 10


def test_report_html_is_one_page_with_plots_and_crops(cli_database, capsys, tmp_path):
    _run(capsys, "reconcile")
    page_path = tmp_path / "report.html"

    code, out, _ = _run(capsys, "report", "--html", str(page_path))

    assert code == 0 and "suspected data-entry errors: 1" in out
    page = page_path.read_text(encoding="utf-8")
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 3  # confusion, coverage-accuracy, by district
    for svg in svgs:
        ElementTree.fromstring(svg)  # well-formed, or this raises
    # crops of the suspected error and of the least confident cell, inlined
    assert page.count("data:image/png;base64,") == 2
    assert 'src="http' not in page and "href=" not in page


def test_review_export_then_import_stores_the_persons_value(cli_database, capsys, tmp_path):
    _run(capsys, "reconcile")
    outdir = tmp_path / "review"

    code, _, _ = _run(capsys, "review", "export", str(outdir))

    assert code == 0
    with (outdir / "review.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["verdict"] for row in rows] == ["MANUAL_SUSPECT", "READING_UNSURE"]
    assert rows[0]["cell"] == SUSPECT_CELL
    crop = cv2.imread(str(outdir / rows[0]["crop"]), cv2.IMREAD_GRAYSCALE)
    assert crop is not None and crop.min() == 0  # the strokes in the box are in the crop

    rows[0]["value"] = "121"  # the person reads the telegram; the unsure cell is left empty
    with (outdir / "review.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    code, out, _ = _run(capsys, "review", "import", str(outdir / "review.csv"), "--reviewer", "ana")

    assert code == 0 and "1 reviewed values stored (1 rows without a value skipped)" in out
    with get_engine(cli_database).connect() as connection:
        stored = connection.execute(
            text("SELECT mesa_code, value, reviewer FROM reviewed_value")
        ).all()
    assert [tuple(row) for row in stored] == [(B, 121, "ana")]
    _, out, _ = _run(capsys, "report", "--json")
    assert json.loads(out)["reviewed_cells"] == 1
    _, _, _ = _run(capsys, "review", "export", str(outdir))
    with (outdir / "review.csv").open(newline="", encoding="utf-8") as handle:
        assert [row["verdict"] for row in csv.DictReader(handle)] == ["READING_UNSURE"]


def _review_file(path: Path, rows: list[list[str]], header=("cell", "value")) -> str:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        ([[SUSPECT_CELL, "12a"]], ("cell", "value"), ":2: value '12a' is not an integer"),
        ([[SUSPECT_CELL, "-3"]], ("cell", "value"), ":2: value -3 is negative"),
        ([["0300100002X|1|POSITIVO", "5"]], ("cell", "value"), ":2: cell '0300100002X|1|POSI"),
        ([["0300100002X|1|NULO|7|", "5"]], ("cell", "value"), "only POSITIVO cells carry"),
        ([[SUSPECT_CELL, "121"], ["0999999999X|1|NULO||", "4"]], ("cell", "value"),
         ":3: no such reconciled cell"),
        ([[SUSPECT_CELL, "121"], [SUSPECT_CELL, "120"]], ("cell", "value"),
         ":3: cell 0300100002X|1|POSITIVO|501|101 already given value 121 on line 2"),
        ([[SUSPECT_CELL]], ("cell",), ":1: missing column(s): value"),
    ],
)  # fmt: skip
def test_review_import_rejects_bad_files_whole(
    cli_database, capsys, tmp_path, rows, header, message
):
    _run(capsys, "reconcile")
    path = _review_file(tmp_path / "bad.csv", rows, header)

    code, _, err = _run(capsys, "review", "import", path)

    assert code == 2 and err.startswith("escrutinio: error: ") and message in err
    with get_engine(cli_database).connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM reviewed_value")).scalar() == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reconcile", "--threshold", "1.5"], "--threshold must be between 0 and 1"),
        (["report", "--threshold", "0"], "--threshold must be between 0 and 1"),
        (["report", "--least", "-1"], "--least must be 0 or more"),
        (["report", "--html", "/no/such/dir/report.html"], "directory /no/such/dir does not"),
        (["review", "import", "/no/such/file.csv"], "/no/such/file.csv: no such file"),
        (["review", "export", "/tmp", "--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_bad_arguments_are_one_line_errors(cli_database, capsys, argv, message):
    code, _, err = _run(capsys, *argv)
    assert code == 2 and message in err and err.count("\n") == 1


def test_the_periodic_task_reconciles_changed_mesas_and_yields_to_a_running_one(cli_database):
    from db.reconcile import RECONCILE_LOCK_ID
    from worker.tasks import reconcile as reconcile_task

    first = reconcile_task()
    assert (first["mesas"], first["cells"], first["skipped"]) == (2, 10, False)
    assert reconcile_task()["mesas"] == 0

    with get_engine(cli_database).connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:id)"), {"id": RECONCILE_LOCK_ID})
        try:
            assert reconcile_task()["skipped"] is True
        finally:
            holder.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": RECONCILE_LOCK_ID})
