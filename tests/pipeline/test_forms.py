"""Form templates: the schema, the shipped forms, and the 2019 form against the real sample."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.errors import InvalidTemplate
from pipeline.forms import (
    FORMS_DIR,
    Box,
    PartySpec,
    list_templates,
    load_template,
    parse_template,
    with_parties,
)

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "telegrams"
SAMPLE_CSV = SAMPLE / "2019-paso-caba-0101406691X.results.csv"
SAMPLE_SCAN = SAMPLE / "2019-paso-caba-0101406691X.jpeg"
needs_sample = pytest.mark.skipif(not SAMPLE_CSV.exists(), reason="../shared sample absent")


def raw(name: str) -> dict:
    return json.loads((FORMS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def test_both_forms_are_shipped_and_load() -> None:
    assert {"arg-2019-paso-caba", "arg-2023-general"} <= set(list_templates())
    for name in list_templates():
        template = load_template(name)
        assert template.name == name
        assert template.rows[-1].votos_tipo == "TOTAL"


def test_2023_form_has_the_four_national_offices_and_the_six_other_rows() -> None:
    template = load_template("arg-2023-general")
    assert [c.cargo_nombre for c in template.columns] == [
        "PRESIDENTE Y VICE",
        "PARLAMENTO MERCOSUR NACIONAL",
        "DIPUTADO NACIONAL",
        "PARLAMENTO MERCOSUR REGIONAL",
    ]
    others = [r.votos_tipo for r in template.rows if r.votos_tipo != "POSITIVO"]
    assert others == ["NULO", "RECURRIDO", "IMPUGNADO", "COMANDO", "EN BLANCO", "TOTAL"]
    assert template.header_digit_boxes == 3
    assert len(template.header_digit_cells("sobres")) == 3


def test_load_by_path_equals_load_by_name() -> None:
    by_path = load_template(FORMS_DIR / "arg-2019-paso-caba.json")
    assert by_path.rows == load_template("arg-2019-paso-caba").rows


def test_value_cells_skip_no_usar_in_reading_order() -> None:
    template = load_template("arg-2019-paso-caba")
    cells = template.value_cells()
    assert all(not template.is_no_usar(c.row, c.column) for c in cells)
    order = [(template.rows.index(c.row), template.columns.index(c.column)) for c in cells]
    assert order == sorted(order)
    total = len(template.rows) * len(template.columns)
    assert len(cells) == total - len(template.no_usar)
    assert all(c.row.votos_tipo != "TOTAL" for c in template.value_cells(include_total=False))


def test_box_to_pixels_rounds_page_relative_coordinates() -> None:
    assert Box(0.1, 0.25, 0.5, 0.75).to_pixels(200, 400) == (20, 100, 100, 300)


@needs_sample
def test_2019_form_has_exactly_the_cells_of_the_sample_transcription() -> None:
    template = load_template("arg-2019-paso-caba")
    with SAMPLE_CSV.open(encoding="utf-8") as f:
        sample = list(csv.DictReader(f))
    expected = {
        (r["cargo_id"], r["cargo_nombre"], r["votos_tipo"], r["agrupacion_id"])
        + (r["agrupacion_nombre"], r["lista_numero"], r["lista_nombre"])
        for r in sample
    }
    cells = {
        (
            str(c.column.cargo_id),
            c.column.cargo_nombre,
            c.row.votos_tipo,
            "" if c.row.agrupacion_id is None else str(c.row.agrupacion_id),
            c.row.agrupacion_nombre,
            c.row.lista_numero,
            c.row.lista_nombre,
        )
        for c in template.value_cells(include_total=False)
    }
    assert cells == expected
    # Every other (row, office) pair of the table is a NO USAR cell.
    present = {
        (r["votos_tipo"], r["agrupacion_id"], r["lista_numero"], r["cargo_id"]) for r in sample
    }
    for row in template.rows:
        if row.votos_tipo == "TOTAL":
            continue
        for column in template.columns:
            key = (
                row.votos_tipo,
                "" if row.agrupacion_id is None else str(row.agrupacion_id),
                row.lista_numero,
                str(column.cargo_id),
            )
            assert template.is_no_usar(row, column) == (key not in present)


def _line_centres(profile: np.ndarray, threshold: float) -> list[float]:
    """Centres (weighted) of the runs of ``profile`` above ``threshold``."""
    centres, run = [], []
    for i, v in enumerate(profile):
        if v > threshold:
            run.append(i)
        elif run:
            w = profile[run]
            centres.append(float((np.array(run) * w).sum() / w.sum()))
            run = []
    return centres


@needs_sample
def test_2019_ruled_lines_lie_on_the_real_scan_lines() -> None:
    template = load_template("arg-2019-paso-caba")
    scan = cv2.imread(str(SAMPLE_SCAN), cv2.IMREAD_GRAYSCALE)
    height, width = scan.shape
    ink = (scan < 150).astype(np.uint8)
    # Horizontal lines, looked for in a narrow band of the table centre (the scan is sheared).
    horizontal = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, 40), np.uint8))
    band = horizontal[:, 360:420].sum(axis=1).astype(float)
    found = _line_centres(band, 30)
    for y in template.horizontal_lines():
        nearest = min(found, key=lambda c: abs(c - y * height))
        assert abs(nearest - y * height) < 1.5, (y, nearest)
    vertical = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((40, 1), np.uint8))
    band = vertical[600:680].sum(axis=0).astype(float)
    found = _line_centres(band, 40)
    for x in template.vertical_lines():
        nearest = min(found, key=lambda c: abs(c - x * width))
        assert abs(nearest - x * width) < 1.5, (x, nearest)


# ---- schema validation ---------------------------------------------------------------------


def _break(data: dict, path: list, value) -> dict:
    broken = copy.deepcopy(data)
    target = broken
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return broken


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (["name"], KeyError, "name"),
        (["columns"], [], "columns"),
        (["columns", 1, "cargo_id"], "two", "columns[1].cargo_id"),
        (["columns", 2, "x0"], 0.5, "columns[2]"),  # overlaps the previous office column
        (["label_columns", 1, "x1"], 0.09, "label_columns[1]"),  # ends before it starts
        (["rows", 3, "votos_tipo"], "PROPIO", "rows[3].votos_tipo"),
        (["rows", 0, "no_usar"], [99], "rows[0].no_usar[0]"),
        (["rows", 0, "y1"], 1.5, "rows[0].y1"),
        (["rows", 2, "share"], 1.5, "rows[2].share"),
        (["header", "votantes"], [0.5, 0.2, 0.4, 0.3], "header.votantes"),
        (["header", "sobres"], KeyError, "header.sobres"),
        (["election", "eleccion_tipo"], "INTERNA", "election.eleccion_tipo"),
        (["page", "width_mm"], "legal", "page.width_mm"),
        (["table", "heading_y1"], 0.99, "table.heading_y1"),
        (["texts", 0, "anchor"], "middle", "texts[0].anchor"),
        (["max_count"], 0, "max_count"),
        (["max_count"], "350", "max_count"),
    ],
)
def test_a_bad_template_is_rejected_naming_the_field(path, value, field) -> None:
    broken = _break(raw("arg-2019-paso-caba"), path, value)
    with pytest.raises(InvalidTemplate) as error:
        parse_template(broken)
    assert field in str(error.value)


def test_duplicate_rows_and_a_misplaced_total_are_rejected() -> None:
    data = raw("arg-2023-general")
    duplicated = copy.deepcopy(data)
    duplicated["rows"][1].update(agrupacion_id=132, lista_numero="132")
    with pytest.raises(InvalidTemplate, match="duplicate"):
        parse_template(duplicated)
    swapped = copy.deepcopy(data)
    rows = swapped["rows"]
    rows[-1]["votos_tipo"], rows[-2]["votos_tipo"] = rows[-2]["votos_tipo"], rows[-1]["votos_tipo"]
    with pytest.raises(InvalidTemplate, match="TOTAL"):
        parse_template(swapped)


def test_load_template_names_the_file_of_a_bad_template(tmp_path: Path) -> None:
    bad_json = tmp_path / "broken.json"
    bad_json.write_text("{not json", encoding="utf-8")
    with pytest.raises(InvalidTemplate, match="broken.json"):
        load_template(bad_json)
    bad_field = tmp_path / "nocols.json"
    bad_field.write_text(json.dumps(_break(raw("arg-2023-general"), ["columns"], [])))
    with pytest.raises(InvalidTemplate, match=r"nocols\.json.*columns"):
        load_template(bad_field)
    with pytest.raises(InvalidTemplate, match="unknown form template"):
        load_template("arg-1983-general")


# ---- another district's party list ----------------------------------------------------------


def test_with_parties_relays_the_rows_and_keeps_the_form_rules() -> None:
    base = load_template("arg-2023-general")
    parties = [PartySpec(100 + i, f"PARTIDO {i}", str(100 + i)) for i in range(7)]
    parties.append(PartySpec(900, "PARTIDO DISTRITAL", "900", no_usar=(1, 8)))
    template = with_parties(base, parties, distrito_id=4, distrito_nombre="Córdoba")
    assert [r.agrupacion_id for r in template.party_rows] == [p.agrupacion_id for p in parties]
    assert template.election.distrito_id == 4
    assert template.no_usar == {("900:900", 1), ("900:900", 8)}
    # Rows still tile the table from the heading to the bottom, without gaps.
    assert template.rows[0].y0 == pytest.approx(template.heading.y1)
    for above, below in zip(template.rows, template.rows[1:], strict=False):
        assert below.y0 == pytest.approx(above.y1)
    assert template.rows[-1].y1 == pytest.approx(template.table.y1)
    heights = {round(r.y1 - r.y0, 6) for r in template.party_rows}
    assert heights == {round(base.party_rows[0].y1 - base.party_rows[0].y0, 6)}
    assert len(template.value_cells()) == 8 * 4 + 6 * 4 - 2


def test_with_parties_refuses_a_list_that_does_not_fit_the_page() -> None:
    base = load_template("arg-2023-general")
    too_many = [PartySpec(i, f"P{i}", str(i)) for i in range(1, 40)]
    with pytest.raises(InvalidTemplate, match="do not fit"):
        with_parties(base, too_many)
    with pytest.raises(InvalidTemplate, match="unknown cargo"):
        with_parties(base, [PartySpec(1, "P", "1", no_usar=(77,))])
