"""Draw the printed (blank) telegram form of a template, as a scanner would see it.

:func:`render_form` returns a grey page: white paper (255), black print (0), grey "NO USAR"
cells. Every ruled line is drawn centred on the template's coordinate (within half a pixel),
so a line at page-relative ``y`` lies at pixel row ``y * H`` of an ``H``-pixel-high page;
tests and registration rely on that.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping

import cv2
import numpy as np

from pipeline.forms import Box, FormTemplate, Row

PAPER = 255
INK = 0
NO_USAR_FILL = 205  # the grey halftone of NO USAR cells, as scanned
NO_USAR_TEXT = 70
_HERSHEY_CAP_HEIGHT = 21.0  # cap height in pixels of FONT_HERSHEY_SIMPLEX at scale 1


def mm_to_px(mm: float, dpi: float) -> float:
    return mm / 25.4 * dpi


def render_form(
    template: FormTemplate,
    dpi: float = 200,
    mesa_code: str | None = None,
    identity: Mapping[str, str] | None = None,
) -> np.ndarray:
    """The printed form of ``template`` at ``dpi``: ``(H, W)`` uint8, white paper, black print.

    ``(W, H) = template.page_size_px(dpi)``. With ``mesa_code`` the barcode strip encodes
    ``mesa_code + "0101"`` (page 01 of 01) and the code is printed under it; without it a
    placeholder code is used. ``identity`` maps header box names (``seccion``, ``circuito``,
    ``mesa``) to the typed values printed in them.
    """
    if dpi < 30 or dpi > 1200:
        raise ValueError(f"dpi must be 30..1200, got {dpi}")
    width, height = template.page_size_px(dpi)
    page = np.full((height, width), PAPER, dtype=np.uint8)
    line_px = max(1, round(mm_to_px(template.line_width_mm, dpi)))

    _draw_no_usar_cells(page, template, dpi)
    _draw_table_lines(page, template, line_px)
    _draw_table_text(page, template, dpi)
    for frame in template.frames:
        _draw_rect(page, frame, line_px)
    for rule in template.rules:
        thickness = max(1, round(mm_to_px(rule.width, dpi)))
        _draw_segment(page, rule.x0, rule.y0, rule.x1, rule.y1, thickness)
    if template.header_digit_boxes > 1:
        for name in ("votantes", "sobres", "diferencia"):
            for box in template.header_digit_cells(name):
                _draw_rect(page, box, line_px)
    for text in template.texts:
        x, y = text.x * width, text.y * height
        _put_text(page, text.text, x, y, mm_to_px(text.size, dpi), text.bold, text.anchor)
    draw_identity(page, template, dpi, mesa_code or "0000000000X", identity)
    return page


def draw_identity(
    page: np.ndarray,
    template: FormTemplate,
    dpi: float,
    mesa_code: str,
    identity: Mapping[str, str] | None = None,
) -> None:
    """Print the per-mesa parts of the form in place: barcode, its text, typed identity values.

    ``page`` is the ``(H, W)`` or ``(H, W, 3)`` uint8 output of :func:`render_form` at the same
    ``dpi`` (a colour page is darkened where the print goes); the barcode and code boxes are
    cleared first, so a cached blank form can be reused for every mesa.
    """
    height, width = page.shape[:2]
    names = ["barcode", "mesa_code", *(n for n in (identity or {}) if n in template.header)]
    band = max(template.header[n].to_pixels(width, height)[3] for n in names) + 1
    for name in ("barcode", "mesa_code"):
        x0, y0, x1, y1 = template.header[name].to_pixels(width, height)
        page[y0:y1, x0:x1] = PAPER
    # Draw on a grey copy of the top band only (everything printed here lies in it).
    target = page[:band] if page.ndim == 2 else cv2.cvtColor(page[:band], cv2.COLOR_BGR2GRAY)
    text = mesa_code + "0101"
    _draw_barcode(target, template.header["barcode"].to_pixels(width, height), text)
    mesa_box = template.header["mesa_code"].to_pixels(width, height)
    _put_text_in_box(target, text, mesa_box, mm_to_px(3.2, dpi), bold=False)
    for name, value in (identity or {}).items():
        if name in template.header:
            box = template.header[name].to_pixels(width, height)
            size = min(mm_to_px(4.0, dpi), 0.55 * (box[3] - box[1]))
            _put_text_in_box(target, value, box, size, bold=False)
    if page.ndim == 3:
        np.minimum(page[:band], target[..., None], out=page[:band])


# ---- table ---------------------------------------------------------------------------------


def _draw_no_usar_cells(page: np.ndarray, template: FormTemplate, dpi: float) -> None:
    height, width = page.shape
    for key, cargo_id in template.no_usar:
        box = template.cell_box(template.row(key), template.column(cargo_id))
        x0, y0, x1, y1 = box.to_pixels(width, height)
        page[y0:y1, x0:x1] = NO_USAR_FILL
        size = min(mm_to_px(2.2, dpi), 0.4 * (y1 - y0))
        _put_text_in_box(page, "NO USAR", (x0, y0, x1, y1), size, bold=False, value=NO_USAR_TEXT)


def _same_party(a: Row, b: Row) -> bool:
    return a.votos_tipo == b.votos_tipo == "POSITIVO" and a.agrupacion_id == b.agrupacion_id


def _draw_table_lines(page: np.ndarray, template: FormTemplate, line_px: int) -> None:
    table = template.table
    rows = template.rows
    labels = template.label_columns
    merged_x0 = labels[-1].x0 if labels else table.x0
    _draw_rect(page, table, line_px)
    _draw_hline(page, template.heading.y1, table.x0, table.x1, line_px)
    if template.heading_split is not None and template.columns:
        _draw_hline(page, template.heading_split, template.columns[0].x0, table.x1, line_px)
    for previous, row in zip(rows, rows[1:], strict=False):
        x0 = merged_x0 if _same_party(previous, row) else table.x0
        _draw_hline(page, row.y0, x0, table.x1, line_px)
    for column in template.columns:
        _draw_vline(page, column.x0, table.y0, table.y1, line_px)
    # Edges between label columns run through the heading and the list rows only; the other
    # vote types' labels span every label column.
    last_list_y1 = max((r.y1 for r in rows if r.votos_tipo == "POSITIVO"), default=None)
    for column in labels[1:]:
        if last_list_y1 is not None:
            _draw_vline(page, column.x0, table.y0, last_list_y1, line_px)


def _draw_table_text(page: np.ndarray, template: FormTemplate, dpi: float) -> None:
    height, width = page.shape
    heading = template.heading
    title_y1 = template.heading_split if template.heading_split is not None else heading.y1
    title_size = mm_to_px(1.9, dpi)
    for column in template.label_columns:
        box = Box(column.x0, heading.y0, column.x1, heading.y1).to_pixels(width, height)
        _put_text_in_box(page, column.title, box, mm_to_px(2.2, dpi), bold=True)
    for column in template.columns:
        box = Box(column.x0, heading.y0, column.x1, title_y1).to_pixels(width, height)
        _put_text_in_box(page, column.title, box, title_size, bold=False)
        if template.heading_note and template.heading_split is not None:
            note = Box(column.x0, template.heading_split, column.x1, heading.y1)
            _put_text_in_box(
                page, template.heading_note, note.to_pixels(width, height), title_size, bold=True
            )
    rows = template.rows
    labels = template.label_columns
    for index, row in enumerate(rows):
        row_px = (row.y1 - row.y0) * height
        size = min(mm_to_px(2.1, dpi), 0.36 * row_px)
        if row.votos_tipo != "POSITIVO" or not labels:
            if labels and row.label:
                box = Box(labels[0].x0, row.y0, labels[-1].x1, row.y1).to_pixels(width, height)
                bold_size = min(mm_to_px(2.6, dpi), 0.5 * row_px)
                _put_text_in_box(page, row.label[0], box, bold_size, bold=True, align="right")
            continue
        # A merged label cell (same party on the next rows, empty label) spans those rows.
        y1 = row.y1
        for following in rows[index + 1 :]:
            if not _same_party(row, following):
                break
            y1 = following.y1
        for col_index, (column, text) in enumerate(zip(labels, row.label, strict=False)):
            if not text:
                continue
            last = col_index == len(labels) - 1
            span_y1 = row.y1 if last else y1
            box = Box(column.x0, row.y0, column.x1, span_y1).to_pixels(width, height)
            align = "centre" if col_index == 0 else "left"
            _put_text_in_box(page, text, box, size, bold=False, align=align)


# ---- primitives ----------------------------------------------------------------------------


def _span(centre: float, thickness: int) -> tuple[int, int]:
    """Integer pixel range ``[a, b)`` of a line of ``thickness`` px centred on ``centre``.

    Pixel ``i`` is centred on coordinate ``i``, so the range's centre ``a + (thickness - 1) / 2``
    is within half a pixel of ``centre``.
    """
    start = int(np.floor(centre - (thickness - 1) / 2 + 0.5))
    return start, start + thickness


def _draw_hline(page: np.ndarray, y: float, x0: float, x1: float, thickness: int) -> None:
    height, width = page.shape
    a, b = _span(y * height, thickness)
    left, _ = _span(x0 * width, thickness)
    _, right = _span(x1 * width, thickness)
    page[max(a, 0) : max(b, 0), max(left, 0) : max(right, 0)] = INK


def _draw_vline(page: np.ndarray, x: float, y0: float, y1: float, thickness: int) -> None:
    height, width = page.shape
    a, b = _span(x * width, thickness)
    top, _ = _span(y0 * height, thickness)
    _, bottom = _span(y1 * height, thickness)
    page[max(top, 0) : max(bottom, 0), max(a, 0) : max(b, 0)] = INK


def _draw_rect(page: np.ndarray, box: Box, thickness: int) -> None:
    _draw_hline(page, box.y0, box.x0, box.x1, thickness)
    _draw_hline(page, box.y1, box.x0, box.x1, thickness)
    _draw_vline(page, box.x0, box.y0, box.y1, thickness)
    _draw_vline(page, box.x1, box.y0, box.y1, thickness)


def _draw_segment(
    page: np.ndarray, x0: float, y0: float, x1: float, y1: float, thickness: int
) -> None:
    if y0 == y1:
        _draw_hline(page, y0, min(x0, x1), max(x0, x1), thickness)
    elif x0 == x1:
        _draw_vline(page, x0, min(y0, y1), max(y0, y1), thickness)
    else:
        height, width = page.shape
        p0 = (round(x0 * width * 16), round(y0 * height * 16))
        p1 = (round(x1 * width * 16), round(y1 * height * 16))
        cv2.line(page, p0, p1, INK, thickness, cv2.LINE_AA, shift=4)


def ascii_text(text: str) -> str:
    """``text`` without accents or symbols OpenCV's Hershey fonts cannot draw."""
    decomposed = unicodedata.normalize("NFKD", text.replace("°", "o").replace("º", "o"))
    return "".join(ch for ch in decomposed if ord(ch) < 128)


def _font(size_px: float, bold: bool) -> tuple[int, float, int]:
    scale = max(size_px, 1.0) / _HERSHEY_CAP_HEIGHT
    thickness = max(1, round(scale * (2.4 if bold else 1.3)))
    return cv2.FONT_HERSHEY_SIMPLEX, scale, thickness


def _put_text(
    page: np.ndarray,
    text: str,
    x: float,
    baseline_y: float,
    size_px: float,
    bold: bool = False,
    anchor: str = "left",
    value: int = INK,
) -> None:
    text = ascii_text(text)
    if not text:
        return
    font, scale, thickness = _font(size_px, bold)
    (text_w, _), _ = cv2.getTextSize(text, font, scale, thickness)
    if anchor == "centre":
        x -= text_w / 2
    elif anchor == "right":
        x -= text_w
    cv2.putText(
        page, text, (round(x), round(baseline_y)), font, scale, value, thickness, cv2.LINE_AA
    )


def _wrap(text: str, max_width: float, font: int, scale: float, thickness: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and cv2.getTextSize(candidate, font, scale, thickness)[0][0] <= max_width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


def _put_text_in_box(
    page: np.ndarray,
    text: str,
    box_px: tuple[int, int, int, int],
    size_px: float,
    bold: bool,
    align: str = "centre",
    value: int = INK,
) -> None:
    """Wrap ``text`` into the pixel box, shrinking it until it fits; centred vertically."""
    text = ascii_text(text)
    x0, y0, x1, y1 = box_px
    pad = max(1.0, 0.08 * (y1 - y0), 2.0 * size_px / 10)
    max_w, max_h = (x1 - x0) - 2 * pad, (y1 - y0) - pad
    if not text or max_w <= 2 or max_h <= 2:
        return
    while True:
        font, scale, thickness = _font(size_px, bold)
        lines = _wrap(text, max_w, font, scale, thickness)
        line_h = size_px * 1.45
        widest = max(cv2.getTextSize(line, font, scale, thickness)[0][0] for line in lines)
        if (len(lines) * line_h <= max_h and widest <= max_w) or size_px < 3:
            break
        size_px *= 0.9
    total_h = len(lines) * line_h - (line_h - size_px)
    baseline = (y0 + y1) / 2 - total_h / 2 + size_px
    for line in lines:
        if align == "centre":
            x, anchor = (x0 + x1) / 2, "centre"
        elif align == "right":
            x, anchor = x1 - pad, "right"
        else:
            x, anchor = x0 + pad, "left"
        _put_text(page, line, x, baseline, size_px, bold, anchor, value)
        baseline += line_h


def _draw_barcode(page: np.ndarray, box_px: tuple[int, int, int, int], text: str) -> None:
    """A barcode-like strip: bars of 1-3 modules derived from ``text`` (not a real symbology)."""
    x0, y0, x1, y1 = box_px
    digest = hashlib.sha256(text.encode()).digest() * 4
    widths = [1 + b % 3 for b in digest[: 6 * len(text)]]
    modules = sum(widths)
    module_px = (x1 - x0) / modules
    x = float(x0)
    for i, w in enumerate(widths):
        if i % 2 == 0:
            a, b = round(x), max(round(x + w * module_px), round(x) + 1)
            page[y0:y1, a:b] = INK
        x += w * module_px
