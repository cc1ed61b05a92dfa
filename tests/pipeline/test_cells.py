"""Cutting cells: ruled lines go, pen strokes crossing them stay, neighbours' ink is not ours."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.cells import CellKind, cell_spots, cut_cells, remove_ruled_lines
from pipeline.forms import load_template
from pipeline.render import render_form
from pipeline.segment import ink_map, ink_mask

DPI = 150
PEN = 40  # a ballpoint stroke's grey on the scan


@pytest.fixture(scope="module")
def form():
    return load_template("arg-2023-general")


@pytest.fixture(scope="module")
def blank(form):
    return render_form(form, DPI)


def _cell_px(form, row_key: str, cargo_id: int) -> tuple[float, float, float, float]:
    width, height = form.page_size_px(DPI)
    box = form.cell_box(form.row(row_key), form.column(cargo_id))
    return box.x0 * width, box.y0 * height, box.x1 * width, box.y1 * height


def _crop_of(crops, row_key: str, cargo_id: int):
    return next(c for c in crops if c.spot.name == f"{row_key}|{cargo_id}")


def _ink(image: np.ndarray) -> np.ndarray:
    return ink_mask(ink_map(image))


def test_a_stroke_crossing_the_bottom_line_keeps_its_pixels_and_the_line_goes(form, blank):
    page = blank.copy()
    x0, y0, x1, y1 = _cell_px(form, "133:133", 1)
    stroke_x = round((x0 + x1) / 2)
    top, bottom = round(y0 + 0.3 * (y1 - y0)), round(y1 + 0.25 * (y1 - y0))
    cv2.line(page, (stroke_x, top), (stroke_x, bottom), PEN, 3)
    crop = _crop_of(cut_cells(page, form, DPI), "133:133", 1)
    ink = _ink(crop.image)
    cx0, _, cx1, cy1 = crop.cell_box
    column = stroke_x - crop.crop_box[0]
    line_rows = range(cy1 - 2, cy1 + 3)
    # the stroke is continuous across where the line was
    assert all(ink[r, column - 1 : column + 2].any() for r in line_rows)
    # the line itself is gone away from the stroke
    for r in line_rows:
        away = np.r_[cx0 + 3 : column - 4, column + 5 : cx1 - 3]
        assert ink[r, away].mean() < 0.02
    assert crop.kind == CellKind.WRITTEN


def test_a_stroke_crossing_a_column_line_keeps_its_pixels(form, blank):
    page = blank.copy()
    x0, y0, x1, y1 = _cell_px(form, "134:134", 1)
    row = round((y0 + y1) / 2)
    start, end = round(x1 - 0.3 * (x1 - x0)), round(x1 + 0.05 * (x1 - x0))
    cv2.line(page, (start, row), (end, row), PEN, 3)
    crop = _crop_of(cut_cells(page, form, DPI), "134:134", 1)
    ink = _ink(crop.image)
    r = row - crop.crop_box[1]
    cx1 = crop.cell_box[2]
    assert ink[r - 1 : r + 2, cx1 - 2 : cx1 + 3].any(axis=0).all()


def test_ruled_lines_alone_leave_an_empty_cell(form, blank):
    crops = cut_cells(blank, form, DPI)
    value_crops = [c for c in crops if not c.spot.name.startswith("header")]
    assert value_crops and all(c.kind == CellKind.EMPTY for c in value_crops)
    assert all(not _ink(c.image).any() for c in value_crops)


def test_a_neighbour_s_digit_reaching_in_is_not_this_cell_s_ink(form, blank):
    page = blank.copy()
    x0, y0, x1, y1 = _cell_px(form, "NULO", 8)  # the row above is a party row
    centre = round((x0 + x1) / 2)
    # a "1" written in the row above whose foot reaches a quarter into this cell
    cv2.line(
        page, (centre, round(y0 - 0.8 * (y1 - y0))), (centre, round(y0 + 0.25 * (y1 - y0))), PEN, 3
    )
    crops = cut_cells(page, form, DPI)
    assert _crop_of(crops, "NULO", 8).kind == CellKind.EMPTY
    above = form.rows[form.rows.index(form.row("NULO")) - 1]
    assert _crop_of(crops, above.key, 8).kind == CellKind.WRITTEN


def test_a_neighbour_s_digit_touching_this_cell_s_digit_is_cut_off_at_the_line(form, blank):
    page = blank.copy()
    x0, y0, x1, y1 = _cell_px(form, "133:133", 1)
    h = y1 - y0
    centre = round((x0 + x1) / 2)
    # this cell's "1", and the row above's "1" coming down across the line onto its top
    cv2.line(page, (centre, round(y0 + 0.1 * h)), (centre, round(y0 + 0.9 * h)), PEN, 3)
    cv2.line(page, (centre + 8, round(y0 - 0.8 * h)), (centre, round(y0 + 0.15 * h)), PEN, 3)
    crops = cut_cells(page, form, DPI)
    crop = _crop_of(crops, "133:133", 1)
    ink = _ink(crop.image)
    _, cy0, _, cy1 = crop.cell_box
    rows = np.flatnonzero(ink.any(axis=1))
    assert rows[0] >= cy0 - 2, "the neighbour's digit above the line is not this cell's ink"
    assert rows[-1] >= cy0 + 0.85 * (cy1 - cy0), "this cell's own digit is whole"
    above = form.rows[form.rows.index(form.row("133:133")) - 1]
    assert _crop_of(crops, above.key, 1).kind == CellKind.WRITTEN


def test_a_digit_written_low_across_the_line_onto_the_next_row_s_digit_stays_its_cell_s(
    form, blank
):
    """The digit touches the row below's number, so most of their joint ink lies below."""
    page = blank.copy()
    x0, y0, x1, y1 = _cell_px(form, "133:133", 1)
    h = y1 - y0
    centre = round((x0 + x1) / 2)
    cv2.line(page, (centre, round(y0 + 0.6 * h)), (centre, round(y1 + 0.2 * h)), PEN, 3)
    for dx in (-12, -4, 4, 12):  # the row below's number, touching its top
        cv2.line(
            page, (centre + dx, round(y1 + 0.2 * h)), (centre + dx, round(y1 + 0.95 * h)), PEN, 3
        )
    crops = cut_cells(page, form, DPI)
    assert _crop_of(crops, "133:133", 1).kind == CellKind.WRITTEN


def test_grey_printing_is_not_ink(form, blank):
    page = blank.copy()
    x0, y0, x1, y1 = (round(v) for v in _cell_px(form, "EN BLANCO", 3))
    page[y0 + 3 : y1 - 2, x0 + 3 : x1 - 2] = 205  # a halftone fill, as NO USAR cells are
    assert _crop_of(cut_cells(page, form, DPI), "EN BLANCO", 3).kind == CellKind.EMPTY


def test_grey_writing_chained_into_a_piece_wider_than_a_number_is_not_printing(form, blank):
    """A grey "1" whose foot runs into a long faint trail (on grainy scans the grain chains
    digits and their neighbours together) makes a pale piece wider than any number, like
    grey printed text; but it is sparse where printing is solid, so it stays ink."""
    page = blank.copy()
    x0, y0, x1, y1 = _cell_px(form, "133:133", 1)
    h = y1 - y0
    left = round(x0 + 0.2 * (x1 - x0))
    foot = round(y1 - 0.15 * h)
    cv2.line(page, (left, round(y0 + 0.15 * h)), (left, foot), 160, 3)
    cv2.line(page, (left, foot), (round(x1 - 0.1 * (x1 - x0)), foot), 160, 1)
    crop = _crop_of(cut_cells(page, form, DPI), "133:133", 1)
    assert crop.kind == CellKind.WRITTEN
    column = left - crop.crop_box[0]
    assert _ink(crop.image)[:, column - 2 : column + 3].any(axis=1).sum() >= 0.6 * h


def test_a_light_stroke_on_a_noisy_scan_is_ink_and_the_noise_is_not(form, blank):
    """Grain of 8 grey levels and a pencil-light "1" only 40 levels darker than the paper:
    the stroke's contrast is 5 times the grain, far above it once smoothed, so it is kept."""
    rng = np.random.default_rng(0)
    page = blank.astype(np.float32) * (215 / 255)  # grey paper
    x0, y0, x1, y1 = _cell_px(form, "133:133", 1)
    centre = round((x0 + x1) / 2)
    stroke = np.zeros(page.shape, np.uint8)
    cv2.line(
        stroke, (centre, round(y0 + 0.15 * (y1 - y0))), (centre, round(y1 - 0.15 * (y1 - y0))), 1, 3
    )
    page[stroke.astype(bool)] -= 40
    page = np.clip(page + rng.normal(0, 8, page.shape), 0, 255).astype(np.uint8)
    crops = cut_cells(page, form, DPI)
    assert _crop_of(crops, "133:133", 1).kind == CellKind.WRITTEN
    assert _crop_of(crops, "134:134", 1).kind == CellKind.EMPTY
    assert _crop_of(crops, "133:133", 8).kind == CellKind.EMPTY


def test_a_digit_too_faint_for_a_stroke_leaves_its_empty_cell_marked(form, blank):
    """A "1" only 20 levels darker than the paper is below the stroke threshold (FAINT_PEAK
    28 on clean paper): the cell reads EMPTY, but marked as holding a faint mark that tall,
    so it is not taken for a sure blank; the blank cells around it are not marked."""
    page = blank.copy()
    x0, y0, x1, y1 = _cell_px(form, "133:133", 1)
    centre = round((x0 + x1) / 2)
    top, bottom = round(y0 + 0.15 * (y1 - y0)), round(y1 - 0.15 * (y1 - y0))
    cv2.line(page, (centre, top), (centre, bottom), 235, 3)
    crops = cut_cells(page, form, DPI)
    faint = _crop_of(crops, "133:133", 1)
    assert faint.kind == CellKind.EMPTY and faint.faint_mark
    for row_key, cargo_id in (("134:134", 1), ("133:133", 8), ("NULO", 3)):
        blank_cell = _crop_of(crops, row_key, cargo_id)
        assert blank_cell.kind == CellKind.EMPTY and not blank_cell.faint_mark

    cv2.line(page, (centre, top), (centre, bottom), 200, 3)  # 55 levels: a stroke
    assert _crop_of(cut_cells(page, form, DPI), "133:133", 1).kind == CellKind.WRITTEN


@pytest.mark.parametrize("reach, marked", [(0.3, True), (0.2, False)])
def test_ink_given_to_the_cell_above_leaves_an_empty_cell_marked(form, blank, reach, marked):
    """A stroke written across the line between two cells, joined to the upper cell's "1"
    and mostly above the line, is the upper cell's ink (``keep_own_ink``), and its part past
    the line is too deep for that digit (MAX_OVERFLOW): it is nobody's. The lower cell reads
    EMPTY, but 0.3 of its height of ink was taken out of it, so it is marked (reviewed, not
    a sure blank: a number written high across the line read a sure 0 in the sum rule's
    column); a tail reaching 0.2 of the height in is no mark."""
    page = blank.copy()
    x0, y0, x1, y1 = _cell_px(form, "132:132", 1)
    h = y1 - y0
    one_x, joined_x = round(x0 + 0.4 * (x1 - x0)), round(x0 + 0.55 * (x1 - x0))
    joint_y = round(y0 + 0.45 * h)
    cv2.line(page, (one_x, round(y0 + 0.2 * h)), (one_x, round(y1 - 0.2 * h)), PEN, 3)
    cv2.line(page, (one_x, joint_y), (joined_x, joint_y), PEN, 3)
    cv2.line(page, (joined_x, joint_y), (joined_x, round(y1 + reach * h)), PEN, 3)
    crops = cut_cells(page, form, DPI)
    assert _crop_of(crops, "132:132", 1).kind == CellKind.WRITTEN
    lower = _crop_of(crops, "133:133", 1)
    assert lower.kind == CellKind.EMPTY and lower.faint_mark is marked
    assert not any(c.faint_mark for c in crops if c is not lower)


def _write_ones(page, form, cells, grey: int) -> None:
    """A "1" (a vertical stroke, 3 px) in each (row_key, cargo_id) cell, at a third of its
    width, in ink of this grey."""
    for row_key, cargo_id in cells:
        x0, y0, x1, y1 = _cell_px(form, row_key, cargo_id)
        x = round(x0 + 0.3 * (x1 - x0))
        top, bottom = round(y0 + 0.15 * (y1 - y0)), round(y1 - 0.15 * (y1 - y0))
        cv2.line(page, (x, top), (x, bottom), grey, 3)


WRITTEN_CELLS = [("132:132", 1), ("133:133", 1), ("134:134", 1), ("135:135", 1), ("NULO", 1)]


def test_a_pale_stamp_arc_crossing_cells_is_not_their_ink(form, blank):
    """A faded rubber stamp's ring, 4x paler than the writing on the page, crosses a written
    cell and a blank one: it is dropped from both (normalised to full strength it was read
    as a 1), and the written cell keeps its digit."""
    page = blank.copy()
    _write_ones(page, form, WRITTEN_CELLS, PEN)
    x0, y0, x1, y1 = _cell_px(form, "134:134", 1)
    h = y1 - y0
    centre = (round(x1 - 0.15 * (x1 - x0)), round(y1 + 0.9 * h))
    cv2.ellipse(page, centre, (round(1.6 * h), round(1.6 * h)), 0, 180, 300, 205, 3)
    crops = cut_cells(page, form, DPI)
    written = _crop_of(crops, "134:134", 1)
    assert written.kind == CellKind.WRITTEN
    ink = _ink(written.image)
    digit_x = round(x0 + 0.3 * (x1 - x0)) - written.crop_box[0]
    assert ink[:, digit_x - 2 : digit_x + 3].any()
    cx0, cy0, cx1, cy1 = written.cell_box
    assert not ink[cy0:cy1, digit_x + 4 : cx1].any()  # the arc runs right of the digit
    arc = blank.copy()  # negative control: the arc alone on the page is the writing, kept
    cv2.ellipse(arc, centre, (round(1.6 * h), round(1.6 * h)), 0, 180, 300, 205, 3)
    assert any(c.kind == CellKind.WRITTEN for c in cut_cells(arc, form, DPI))


def test_a_light_pen_on_a_form_printed_in_black_keeps_its_digits(form, blank):
    """The paleness reference is the handwriting's, not the printing's: digits written 3x
    lighter than the black printed text are all kept."""
    page = blank.copy()
    _write_ones(page, form, WRITTEN_CELLS, 185)
    crops = cut_cells(page, form, DPI)
    assert all(_crop_of(crops, *cell).kind == CellKind.WRITTEN for cell in WRITTEN_CELLS)


def test_a_digit_much_lighter_than_the_page_s_writing_leaves_its_cell_marked(form, blank):
    """A 1 written 2.5x lighter than the four beside it falls below the pale limit like a
    stamp's arc; its cell is then EMPTY but marked (reviewed), never a sure blank."""
    page = blank.copy()
    _write_ones(page, form, WRITTEN_CELLS[:4], PEN)
    _write_ones(page, form, WRITTEN_CELLS[4:], 170)
    crops = cut_cells(page, form, DPI)
    light = _crop_of(crops, *WRITTEN_CELLS[4])
    assert light.kind == CellKind.WRITTEN or light.faint_mark
    blank_cell = _crop_of(crops, "133:133", 3)
    assert blank_cell.kind == CellKind.EMPTY and not blank_cell.faint_mark


def test_no_usar_cells_are_marked_and_every_field_is_cut():
    form = load_template("arg-2019-paso-caba")
    page = render_form(form, DPI)
    crops = cut_cells(page, form, DPI)
    spots = cell_spots(form)
    assert [c.spot for c in crops] == spots
    no_usar = {c.spot.name for c in crops if c.kind == CellKind.NO_USAR}
    assert no_usar == {f"{key}|{cargo}" for key, cargo in form.no_usar}
    headers = [c for c in crops if c.spot.name.startswith("header:")]
    assert [c.spot.name for c in headers] == [
        "header:votantes",
        "header:sobres",
        "header:diferencia",
    ]


def test_remove_ruled_lines_on_a_constructed_cell():
    cell = np.full((60, 120), 250, np.uint8)
    cell[9:12, :] = 20  # top line, 3 px
    cell[48:50, :] = 20  # bottom line, 2 px
    cell[:, 10] = 20  # left line
    cell[5:56, 60:63] = 30  # a stroke across both lines
    clean = remove_ruled_lines(cell, (10, 10, 110, 49), line_px=2)
    assert (clean[9:12, 20:50] > 200).all() and (clean[48:50, 70:100] > 200).all()
    assert (clean[:, 10][15:45] > 200).all()
    assert (clean[8:52, 61] < 100).all()  # the stroke is whole
