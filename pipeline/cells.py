"""Cells: cut every value cell and header field out of a registered page, clean it, classify it.

Input is a page already in the template's frame (``pipeline.register.warp_page``), so every
cell's ruled lines are within a pixel or two of where the template puts them. For each cell:

1. ``cut_cell``: the cell's box plus a margin (digits overflow their cell: written off centre,
   or crossing the ruled line), grey (h, w) uint8;
2. ``remove_ruled_lines``: each of the cell's four ruled lines is located precisely near its
   template position (the rows/columns whose mean darkness peaks) and replaced by a linear
   interpolation between the pixels just outside it, column by column (row by row): paper
   where the line crossed paper, ink where a pen stroke crossed the line. So strokes that cross
   a line keep their pixels, and the line is gone;
3. ``normalise_strokes``: every pen stroke scaled to full strength, paper made white, grey
   printing (halftone fills) removed, so a light digit next to a pressed one is not lost;
4. ``keep_own_ink``: ink pieces (8-connected) belong to the cell when at least half of their
   pixels lie inside the cell's box; pieces mostly outside (a neighbour's digit reaching in,
   printed text of the next cell) are painted over with paper, except that the part inside
   of a piece spanning half the cell's height is kept (this cell's digit touching a
   neighbour's);
5. ``classify_cell``: ``NO_USAR`` (the template's grey cells), ``EMPTY`` (no ink piece as
   large as a small digit stroke) or ``WRITTEN``.

Ink thresholds are those of the segmentation (``pipeline.segment.ink_map`` / ``ink_mask``), so
what is ink here is ink there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

from pipeline.forms import Box, FormTemplate
from pipeline.segment import ink_map, ink_mask

CELL_DPI = 150  # resolution of the registered page the cells are cut from
MARGIN_Y = 0.3  # cut this share of the cell's height above and below it
MARGIN_X = 0.08  # ... and of its width left and right
MIN_OWN_SHARE = 0.5  # a piece of ink belongs to the cell with this share of its pixels inside
PAPER = 255
FAINT_INK = 12  # grey levels below the paper where a light pen stroke may start
FAINT_PEAK = 28  # ... and that a stroke's strong pixels must reach (noise does not)
FAINT_SIGMAS = 3.5  # the same two levels in robust standard deviations of the paper's noise
PEAK_SIGMAS = 6.0
STROKE_INK = 200  # a normalised stroke's strong pixels (a pressed ballpoint)
MAX_GAIN = 5.0
PRINT_GREY_PEAK = 110  # a solid area paler than this is halftone printing

PixelBox = tuple[int, int, int, int]  # (x0, y0, x1, y1), x1/y1 exclusive


class CellKind(StrEnum):
    EMPTY = "EMPTY"
    NO_USAR = "NO_USAR"
    WRITTEN = "WRITTEN"


@dataclass(frozen=True)
class CellSpot:
    """Where to cut one field: ``name`` (a value cell ``"<row key>|<cargo_id>"``, a header
    field ``"header:votantes"`` or one of its digit boxes ``"header:votantes:0"``), its box
    (page-relative), and whether the template prints it as NO USAR."""

    name: str
    box: Box
    no_usar: bool = False


@dataclass(frozen=True)
class CellCrop:
    """One cleaned cell.

    image: (h, w) uint8 grey, dark ink on white paper, ruled lines and foreign ink removed.
    crop_box: (x0, y0, x1, y1) of ``image`` in the pixels of the page it was cut from.
    cell_box: the cell proper (line centre to line centre) in ``image`` pixels.
    kind: EMPTY, NO_USAR or WRITTEN.
    """

    spot: CellSpot
    image: np.ndarray
    crop_box: PixelBox
    cell_box: PixelBox
    kind: CellKind


def cell_spots(template: FormTemplate) -> list[CellSpot]:
    """Every field to read: the header values (``header:<name>``, or per digit box
    ``header:<name>:<i>`` on forms with digit boxes), then every table cell in reading order,
    NO USAR ones included (marked)."""
    spots = []
    for name in ("votantes", "sobres", "diferencia"):
        if template.header_digit_boxes == 1:
            spots.append(CellSpot(f"header:{name}", template.header[name]))
        else:
            for i, box in enumerate(template.header_digit_cells(name)):
                spots.append(CellSpot(f"header:{name}:{i}", box))
    for row in template.rows:
        for column in template.columns:
            spots.append(
                CellSpot(
                    f"{row.key}|{column.cargo_id}",
                    template.cell_box(row, column),
                    template.is_no_usar(row, column),
                )
            )
    return spots


def reading_region(template: FormTemplate) -> Box:
    """The page-relative box holding every cell and header field, with room for margins."""
    boxes = [template.table] + [template.header[n] for n in ("votantes", "sobres", "diferencia")]
    pad = 0.015
    return Box(
        max(0.0, min(b.x0 for b in boxes) - pad),
        max(0.0, min(b.y0 for b in boxes) - pad),
        min(1.0, max(b.x1 for b in boxes) + pad),
        min(1.0, max(b.y1 for b in boxes) + pad),
    )


def cut_cell(
    page: np.ndarray, box_px: tuple[float, float, float, float], line_px: float
) -> tuple[np.ndarray, PixelBox, PixelBox]:
    """Cut a cell with its margin out of ``page`` (H, W) uint8.

    box_px: the cell's (x0, y0, x1, y1) in page pixels (floats, line centres).
    Returns (crop (h, w) uint8 copy, crop box in page pixels, cell box in crop pixels).
    """
    height, width = page.shape
    x0, y0, x1, y1 = box_px
    my = MARGIN_Y * (y1 - y0) + line_px
    mx = MARGIN_X * (x1 - x0) + line_px
    cx0, cy0 = max(0, int(np.floor(x0 - mx))), max(0, int(np.floor(y0 - my)))
    cx1, cy1 = min(width, int(np.ceil(x1 + mx))), min(height, int(np.ceil(y1 + my)))
    crop = page[cy0:cy1, cx0:cx1].copy()
    cell = (round(x0 - cx0), round(y0 - cy0), round(x1 - cx0), round(y1 - cy0))
    return crop, (cx0, cy0, cx1, cy1), cell


def _line_band(darkness: np.ndarray, expected: int, reach: int) -> tuple[int, int] | None:
    """Rows [a, b) of the ruled line near row ``expected`` of a (h,) mean-darkness profile:
    the peak within ``reach`` rows and its neighbours above half the peak. None if the peak
    is too faint to be a line."""
    size = len(darkness)
    lo, hi = max(0, expected - reach), min(size, expected + reach + 1)
    if lo >= hi:
        return None
    window = darkness[lo:hi]
    peak = lo + int(np.argmax(window))
    floor = float(np.median(darkness))
    level = float(darkness[peak])
    if level - floor < 40:
        return None
    half = floor + 0.5 * (level - floor)
    a, b = peak, peak + 1
    while a > lo and darkness[a - 1] >= half:
        a -= 1
    while b < hi and darkness[b] >= half:
        b += 1
    # one more pixel each side: the line's anti-aliased rim and a tilt of a pixel across the cell
    return max(0, a - 1), min(size, b + 1)


def _interpolate_band(image: np.ndarray, a: int, b: int) -> None:
    """Replace rows [a, b) of (h, w) ``image`` in place by a linear blend of row a-1 and row b
    (ink stays where a stroke crosses the band, paper where the band was only line)."""
    height = image.shape[0]
    above = image[a - 1].astype(np.float32) if a > 0 else np.full(image.shape[1], PAPER, np.float32)
    below = (
        image[b].astype(np.float32) if b < height else np.full(image.shape[1], PAPER, np.float32)
    )
    steps = b - a + 1
    for i, row in enumerate(range(a, b), start=1):
        t = i / steps
        image[row] = np.rint((1 - t) * above + t * below).astype(np.uint8)


def remove_ruled_lines(crop: np.ndarray, cell: PixelBox, line_px: float) -> np.ndarray:
    """Remove the cell's four ruled lines from ``crop`` (h, w) uint8 (a copy is returned).

    Each line is looked for within ``line_px + 3`` px of the template position, measured over
    the cell's inside span only (so neighbouring cells' writing weighs little), then replaced
    by interpolating across it (see the module docstring).
    """
    image = crop.copy()
    x0, y0, x1, y1 = cell
    reach = int(np.ceil(line_px)) + 3
    inset_x = max(1, (x1 - x0) // 10)
    inset_y = max(1, (y1 - y0) // 10)
    darkness = PAPER - image.astype(np.float32)
    rows_profile = darkness[:, max(0, x0 + inset_x) : max(1, x1 - inset_x)].mean(axis=1)
    for expected in (y0, y1):
        band = _line_band(rows_profile, expected, reach)
        if band is not None:
            _interpolate_band(image, *band)
    darkness = PAPER - image.astype(np.float32)
    cols_profile = darkness[max(0, y0 + inset_y) : max(1, y1 - inset_y), :].mean(axis=0)
    transposed = image.T.copy()
    for expected in (x0, x1):
        band = _line_band(cols_profile, expected, reach)
        if band is not None:
            _interpolate_band(transposed, *band)
    return np.ascontiguousarray(transposed.T)


def normalise_strokes(image: np.ndarray) -> np.ndarray:
    """Pen strokes at full strength, paper white, grey printing gone: (h, w) uint8 -> same.

    A ballpoint's trace varies: at 150-200 dpi a thin or light stroke scans 30-60 grey levels
    below the paper while a pressed one reaches 200, and an ink threshold relative to the
    strongest stroke (what segmentation uses) would drop the light digit of a number. Here
    the ink (paper level = the crop's median, lightly smoothed to bridge one-pixel gaps) is
    cut into pieces at a low threshold set by the paper's noise (``FAINT_SIGMAS`` robust
    standard deviations, at least ``FAINT_INK``); every piece reaching ``PEAK_SIGMAS`` (at
    least ``FAINT_PEAK``) is scaled so that its strong pixels reach ``STROKE_INK``, its 1 px
    rim with it. Wide solid pieces of low contrast (a grey halftone fill) are printing and
    are removed, as is noise.
    """
    grey = image.astype(np.float32)
    paper = float(np.median(grey))
    noise = 1.4826 * float(np.median(np.abs(grey - paper)))
    ink = cv2.GaussianBlur(np.clip(paper - grey, 0, 255), (3, 3), 0.7)
    low_level = max(FAINT_INK, FAINT_SIGMAS * noise)
    peak_level = max(FAINT_PEAK, PEAK_SIGMAS * noise)
    low = ink >= low_level
    count, labels, stats, _ = cv2.connectedComponentsWithStats(low.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.full(image.shape, PAPER, np.uint8)
    flat = labels.ravel()
    values = ink.ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[order], np.arange(count + 1))
    gains = np.zeros(count, np.float32)
    for label in range(1, count):
        members = values[order[bounds[label] : bounds[label + 1]]]
        peak = float(np.percentile(members, 90))
        if peak < peak_level or members.size < 3:
            continue  # scanner noise
        w = stats[label, cv2.CC_STAT_WIDTH]
        h = stats[label, cv2.CC_STAT_HEIGHT]
        solid = members.size / max(1, w * h)
        if solid > 0.6 and members.size > 0.05 * ink.size and peak < PRINT_GREY_PEAK:
            continue  # a grey halftone area: printing, not writing
        gains[label] = min(MAX_GAIN, max(1.0, STROKE_INK / peak))
    gain = cv2.dilate(gains[labels], np.ones((3, 3), np.uint8))  # the rim goes with its stroke
    strong = np.clip(ink * gain, 0, 255)
    return (PAPER - strong).astype(np.uint8)


def keep_own_ink(image: np.ndarray, cell: PixelBox) -> tuple[np.ndarray, np.ndarray]:
    """Paint over the ink pieces that are mostly outside the cell.

    image: (h, w) uint8 crop without ruled lines (strokes normalised); cell: its box in it.
    Returns (cleaned (h, w) uint8, own ink mask (h, w) bool).
    """
    mask = ink_mask(ink_map(image))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8
    )
    if count <= 1:
        return image, mask
    x0, y0, x1, y1 = cell
    inside = np.zeros(mask.shape, bool)
    inside[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
    inside_counts = np.bincount(labels[inside & mask], minlength=count)
    share = inside_counts / np.maximum(stats[:, cv2.CC_STAT_AREA], 1)
    keep = share >= MIN_OWN_SHARE
    keep[0] = False
    own = keep[labels] & mask
    # A piece mostly outside whose part inside spans half the cell's height is this cell's
    # digit touching a neighbour's: keep the part inside the cell (not the neighbour's).
    for label in np.flatnonzero(~keep & (inside_counts > 0)):
        if label == 0:
            continue
        part = (labels == label) & inside
        rows = np.flatnonzero(part.any(axis=1))
        if rows.size and rows[-1] - rows[0] + 1 >= 0.5 * (y1 - y0):
            own |= part
    foreign = mask & ~own
    if not foreign.any():
        return image, own
    cleaned = image.copy()
    # paint the foreign pieces and their anti-aliased rims with paper
    rim = cv2.dilate(foreign.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~own
    cleaned[rim] = PAPER
    return cleaned, own


def classify_cell(own: np.ndarray, cell: PixelBox, no_usar: bool) -> CellKind:
    """EMPTY / NO_USAR / WRITTEN for one cell.

    own: (h, w) bool, the cell's own ink (``keep_own_ink``); no_usar: the template's mark.
    A piece of ink counts as writing when it is at least 15% of the cell's height tall or
    wide (a dot or scanner speck is not).
    """
    if no_usar:
        return CellKind.NO_USAR
    x0, y0, x1, y1 = cell
    h = y1 - y0
    if not own.any():
        return CellKind.EMPTY
    count, _, stats, _ = cv2.connectedComponentsWithStats(own.astype(np.uint8), connectivity=8)
    smallest = 0.15 * h
    big = (stats[1:, cv2.CC_STAT_HEIGHT] >= smallest) | (stats[1:, cv2.CC_STAT_WIDTH] >= smallest)
    return CellKind.WRITTEN if bool(big.any()) else CellKind.EMPTY


def cut_cells(
    page: np.ndarray,
    template: FormTemplate,
    dpi: float,
    origin: tuple[int, int] = (0, 0),
    spots: list[CellSpot] | None = None,
) -> list[CellCrop]:
    """Cut, clean and classify every field of ``template`` on a registered page.

    page: (H, W) uint8 grey in the template's frame at ``dpi`` (all of it, or the part whose
    top-left pixel is page pixel ``origin``, as from ``warp_page(..., region=...)``).
    spots: the fields (default ``cell_spots(template)``). NO USAR cells are returned with kind
    NO_USAR and are not cleaned.
    """
    page_w, page_h = template.page_size_px(dpi)
    line_px = max(1.0, template.line_width_mm / 25.4 * dpi)
    out = []
    for spot in spots if spots is not None else cell_spots(template):
        box = (
            spot.box.x0 * page_w - origin[0],
            spot.box.y0 * page_h - origin[1],
            spot.box.x1 * page_w - origin[0],
            spot.box.y1 * page_h - origin[1],
        )
        crop, crop_box, cell = cut_cell(page, box, line_px)
        crop_box = (
            crop_box[0] + origin[0],
            crop_box[1] + origin[1],
            crop_box[2] + origin[0],
            crop_box[3] + origin[1],
        )
        if spot.no_usar or crop.size == 0:
            out.append(CellCrop(spot, crop, crop_box, cell, CellKind.NO_USAR))
            continue
        clean = normalise_strokes(remove_ruled_lines(crop, cell, line_px))
        clean, own = keep_own_ink(clean, cell)
        kind = classify_cell(own, cell, False)
        out.append(CellCrop(spot, clean, crop_box, cell, kind))
    return out
