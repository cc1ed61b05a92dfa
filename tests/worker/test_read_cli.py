"""``escrutinio read`` (JSON lines, debug views, bad files) and ``escrutinio forms detect``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import pytest

from pipeline.forms import load_template
from pipeline.grid import compare_templates
from tests.conftest import SAMPLE_TELEGRAM
from tests.pipeline.reading_fixtures import FORM, MODEL, telegram
from worker.cli import main

REQUIRED = {"scan", "mesa_id", "form", "fit_score", "error", "header", "cells"}
CELL_KEYS = {"cargo_id", "votos_tipo", "agrupacion_id", "lista_numero", "value"}
CELL_KEYS |= {"confidence", "flags", "box"}


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> list[Path]:
    """Two synthetic scans named by their mesa code, a corrupt PNG, a text file."""
    directory = tmp_path_factory.mktemp("scans")
    paths = []
    for index in range(2):
        sample = telegram(31, index, "typical")
        path = directory / f"{sample.identity.mesa_code}.png"
        assert cv2.imwrite(str(path), sample.image)
        paths.append(path)
    corrupt = directory / "corrupt.png"
    corrupt.write_bytes(paths[0].read_bytes()[:400])  # a real header, the data cut off
    text = directory / "notes.png"
    text.write_text("not a scan\n")
    return [paths[0], corrupt, paths[1], text]


def test_json_lines_one_per_scan_in_order_bad_files_get_their_error(capsys, scans, monkeypatch):
    monkeypatch.setenv("ESCRUTINIO_MODEL", MODEL)
    status, out, _ = run(capsys, "read", *scans, "--form", FORM, "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["scan"] for line in lines] == [str(p) for p in scans]
    assert all(set(line) >= REQUIRED for line in lines)
    good = [lines[0], lines[2]]
    for line, path in zip(good, (scans[0], scans[2]), strict=True):
        assert line["error"] is None and line["form"] == FORM
        assert line["mesa_id"] == path.stem  # the mesa code in the file name
        assert set(line["header"]) == {"votantes", "sobres", "diferencia"}
        assert line["cells"] and all(set(cell) >= CELL_KEYS for cell in line["cells"])
        assert {c["votos_tipo"] for c in line["cells"]} >= {"POSITIVO", "NULO", "TOTAL"}
    assert "corrupt or truncated" in lines[1]["error"]
    assert "not an image" in lines[3]["error"]
    assert status == 1  # some scans could not be read


def test_debug_writes_the_warped_page_and_every_cell(capsys, scans, tmp_path, monkeypatch):
    monkeypatch.setenv("ESCRUTINIO_MODEL", MODEL)
    status, out, _ = run(capsys, "read", scans[0], "--form", FORM, "--debug", tmp_path)
    assert status == 0 and "fit score" in out
    page = cv2.imread(str(tmp_path / scans[0].stem / "page.png"))
    assert page is not None and page.ndim == 3
    cells = list((tmp_path / scans[0].stem / "cells").glob("*.png"))
    assert len(cells) >= len(load_template(FORM).value_cells())


def test_an_unknown_form_is_a_usage_error(capsys, scans):
    status, _, err = run(capsys, "read", scans[0], "--form", "no-such-form")
    assert status == 2 and "unknown form template" in err


def _write_csvs(directory: Path, template) -> tuple[Path, Path]:
    rows, columns = directory / "rows.csv", directory / "columns.csv"
    with rows.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            ["votos_tipo", "agrupacion_id", "agrupacion_nombre", "lista_numero", "lista_nombre"]
        )
        for row in template.rows:
            writer.writerow(
                [
                    row.votos_tipo,
                    row.agrupacion_id or "",
                    row.agrupacion_nombre,
                    row.lista_numero,
                    row.lista_nombre,
                ]
            )
    with columns.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["cargo_id", "cargo_nombre"])
        for column in template.columns:
            writer.writerow([column.cargo_id, column.cargo_nombre])
    return rows, columns


@pytest.mark.skipif(not SAMPLE_TELEGRAM.with_suffix(".jpeg").exists(), reason="../shared absent")
def test_forms_detect_finds_the_2019_sample_grid_of_the_shipped_template(capsys, tmp_path):
    shipped = load_template("arg-2019-paso-caba")
    rows, columns = _write_csvs(tmp_path, shipped)  # no no_usar column: detected from the grey
    out_path = tmp_path / "caba-2019.json"
    status, out, _ = run(
        capsys, "forms", "detect", SAMPLE_TELEGRAM.with_suffix(".jpeg"),
        "--rows", rows, "--columns", columns, "--out", out_path,
    )  # fmt: skip
    assert status == 0 and "21 rows x 6 columns" in out
    detected = load_template(out_path)
    differences = compare_templates(detected, shipped)
    one_pixel = 1 / 777  # the sample is 777 px wide
    assert differences["table_box"] < 2 * one_pixel
    assert differences["row_lines"] < 2 * one_pixel
    assert differences["column_lines"] < 2 * one_pixel
    assert differences["no_usar_differences"] == 0
    assert detected.max_count == shipped.max_count is not None


def test_forms_detect_names_a_bad_rows_file(capsys, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("votos_tipo,agrupacion_id\nPOSITIVE,1\n", encoding="utf-8")
    columns = tmp_path / "columns.csv"
    columns.write_text("cargo_id,cargo_nombre\n1,PRESIDENTE\n", encoding="utf-8")
    scan = tmp_path / "scan.png"
    assert cv2.imwrite(str(scan), telegram(31, 0, "typical").image)
    status, _, err = run(
        capsys, "forms", "detect", scan, "--rows", rows, "--columns", columns,
        "--out", tmp_path / "x.json",
    )  # fmt: skip
    assert status == 2 and "rows.csv, line 2: votos_tipo" in err
