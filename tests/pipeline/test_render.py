"""The blank-form renderer: ruled lines where the template says, grey NO USAR cells, identity."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.forms import list_templates, load_template
from pipeline.render import draw_identity, render_form

DPI = 200
TOLERANCE_PX = 0.5 + 1e-6  # lines are drawn on whole pixels: within half a pixel


def _dark_runs(profile: np.ndarray) -> list[float]:
    """Centres of the runs of a boolean profile."""
    centres, start = [], None
    for i, v in enumerate([*profile, False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            centres.append((start + i - 1) / 2)
            start = None
    return centres


@pytest.mark.parametrize("name", list_templates())
def test_ruled_lines_are_where_the_template_says(name: str) -> None:
    template = load_template(name)
    page = render_form(template, DPI)
    height, width = page.shape
    assert (width, height) == template.page_size_px(DPI)
    assert page.dtype == np.uint8
    # Inside the last office column (free of text between the lines), a horizontal line is a
    # pixel row that is dark across the column's middle half.
    column = template.columns[-1]
    x0, x1 = (
        int((column.x0 + 0.25 * (column.x1 - column.x0)) * width),
        int((column.x1 - 0.25 * (column.x1 - column.x0)) * width),
    )
    rows_dark = (page[:, x0:x1] < 128).all(axis=1)
    found = _dark_runs(rows_dark)
    for y in template.horizontal_lines():
        assert min(abs(c - y * height) for c in found) <= TOLERANCE_PX, y
    # Negative control: no line halfway between two rows.
    for row in template.rows:
        mid = int((row.y0 + row.y1) / 2 * height)
        assert not rows_dark[mid - 2 : mid + 3].any(), row.key
    # Vertical lines: dark columns across the middle of the TOTAL row's value cells.
    total = template.rows[-1]
    y0 = int((total.y0 + 0.3 * (total.y1 - total.y0)) * height)
    y1 = int((total.y1 - 0.3 * (total.y1 - total.y0)) * height)
    cols_dark = (page[y0:y1] < 128).all(axis=0)
    found = _dark_runs(cols_dark)
    for x in [c.x0 for c in template.columns] + [template.table.x1]:
        assert min(abs(c - x * width) for c in found) <= TOLERANCE_PX, x


def test_no_usar_cells_are_grey_and_value_cells_white() -> None:
    template = load_template("arg-2019-paso-caba")
    page = render_form(template, 100)
    height, width = page.shape
    for key, cargo in template.no_usar:
        cell = template.cell_box(template.row(key), template.column(cargo))
        x0, y0, x1, y1 = cell.to_pixels(width, height)
        inner = page[y0 + 3 : y1 - 2, x0 + 3 : x1 - 2]
        assert np.median(inner) < 230  # grey fill
        assert inner.min() < 128  # with the printed words
    for spec in template.value_cells():
        x0, y0, x1, y1 = spec.box.to_pixels(width, height)
        assert page[y0 + 3 : y1 - 2, x0 + 3 : x1 - 2].min() == 255, spec.row.key


def test_the_rendering_scales_with_the_dpi() -> None:
    template = load_template("arg-2023-general")
    small, large = render_form(template, 100), render_form(template, 300)
    assert large.shape[0] == pytest.approx(3 * small.shape[0], abs=2)
    assert large.shape[1] == pytest.approx(3 * small.shape[1], abs=2)
    assert 0.03 < (small < 128).mean() < 0.2  # a printed form, neither blank nor black


def test_identity_prints_the_mesa_barcode_on_grey_and_colour_pages() -> None:
    template = load_template("arg-2019-paso-caba")
    grey = render_form(template, 100)
    height, width = grey.shape
    x0, y0, x1, y1 = template.header["barcode"].to_pixels(width, height)
    colour = np.repeat(grey[..., None], 3, axis=2)
    draw_identity(grey, template, 100, "0100100012X", {"mesa": "12"})
    draw_identity(colour, template, 100, "0100100012X", {"mesa": "12"})
    assert np.array_equal(colour[..., 0], grey)
    other = render_form(template, 100, mesa_code="0100100013X")
    strip = grey[y0:y1, x0:x1]
    assert 0.2 < (strip < 128).mean() < 0.8  # bars and gaps
    assert not np.array_equal(strip, other[y0:y1, x0:x1])  # the bars encode the code
