"""Cells: cut every value cell and header field out of a registered page, clean it, classify it.

Input is a page already in the template's frame (``pipeline.register.warp_page``), so every
cell's ruled lines are within a pixel or two of where the template puts them. Stages
(``cut_cells`` runs them all):

1. ``remove_ruled_lines``, cell by cell on a copy of the page: each of the cell's four ruled
   lines is located precisely near its template position (the rows/columns whose mean
   darkness peaks); its pale rim goes (dark rim pixels are a pen stroke along the line and
   stay) and its core is replaced by a linear interpolation between the pixels on either
   side, column by column (row by row): paper where the line crossed paper, ink where a pen
   stroke crossed it. So strokes that cross a line keep their pixels, and the line is gone;
2. ``normalise_strokes``, once for the page: every pen stroke scaled to full strength, paper
   made white, grey printing (halftone fills) and noise removed, so a light digit next to a
   pressed one is not lost; the ink pieces are labelled;
3. ``cut_cell``: the cell's box plus a margin (digits overflow their cell: written off centre,
   or crossing the ruled line);
4. ``keep_own_ink``: ink pieces (8-connected) belong to the cell when at least half of their
   pixels lie inside the cell's box; pieces mostly outside (a neighbour's digit reaching in,
   printed text of the next cell) are painted over with paper, except that the part inside
   of a piece reaching farther into the cell than a digit overflows its own cell
   (``MIN_REACH_IN``) is kept (this cell's digit touching a neighbour's); where the row
   above's or below's digit touches this cell's, its part beyond the line goes;
5. ``classify_cell``: ``NO_USAR`` (the template's grey cells), ``EMPTY`` (no ink piece as
   large as a small digit stroke) or ``WRITTEN``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

from pipeline.forms import Box, FormTemplate
from pipeline.quantiles import histogram_median, median

CELL_DPI = 150  # resolution of the registered page the cells are cut from
MARGIN_Y = 0.3  # cut this share of the cell's height above and below it
MARGIN_X = 0.08  # ... and of its width left and right
MIN_OWN_SHARE = 0.5  # a piece of ink belongs to the cell with this share of its pixels inside
MAX_OVERFLOW = 0.36  # a digit crosses its cell's top or bottom line by less than this x cell height
MIN_REACH_IN = 0.4  # a digit's part inside a cell taller than this x cell height is its own
PAPER = 255
FAINT_INK = 12  # grey levels below the paper where a light pen stroke may start
FAINT_PEAK = 28  # ... and that a stroke's strong pixels must reach (noise does not)
FAINT_SIGMAS = 3.5  # the same two levels in robust standard deviations of the paper's noise
PEAK_SIGMAS = 6.0
STROKE_INK = 200  # a normalised stroke's strong pixels (a pressed ballpoint)
MAX_GAIN = 5.0
PRINT_GREY_PEAK = 110  # a piece paler than this and wide ...
PRINT_MIN_WIDTH_MM = 14.0  # ... at least this wide (more than a written number) ...
PRINT_MIN_FILL = 0.4  # ... and filling this share of its box is printing (text, a fill's edge)
FAINT_MARK_AREA = 15  # a piece too weak for a stroke but this large (px at CELL_DPI) is a faint
FAINT_MARK_HEIGHT = 0.3  # mark, and one this share of an EMPTY cell's height tall may be a digit
FAINT_MARK_INSET = 3  # px inside the cell's lines where a faint mark is looked for
PALE_SHARE = 0.45  # a piece whose peak is below this x the page's handwriting's is no writing
PALE_MIN_AREA = 40  # px at CELL_DPI: the pieces judged so, and that set the handwriting's peak

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
    faint_mark: an EMPTY cell holding a mark FAINT_MARK_HEIGHT of the cell tall
    (``faint_mark``) that was taken out: too weak for a stroke, a piece dropped as too pale for
    this page's writing (``pale_pieces``) or ink given to a neighbouring cell
    (``keep_own_ink``). A digit may be there: the cell is reviewed, not read a sure blank.
    """

    spot: CellSpot
    image: np.ndarray
    crop_box: PixelBox
    cell_box: PixelBox
    kind: CellKind
    faint_mark: bool = False


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


def _line_band(
    darkness: np.ndarray, expected: int, reach: int, floor: float
) -> tuple[int, int, float] | None:
    """Rows [a, b) of the ruled line's core near row ``expected`` of a (h,) mean-darkness
    profile (the peak within ``reach`` rows and its neighbours above half the peak), and the
    line's darkness. None if the peak is too faint to be a line.

    floor: the profile's median darkness (the paper), computed once per profile by the caller
    since both of a cell's lines along that axis are looked for in the same profile."""
    size = len(darkness)
    lo, hi = max(0, expected - reach), min(size, expected + reach + 1)
    if lo >= hi:
        return None
    window = darkness[lo:hi]
    peak = lo + int(np.argmax(window))
    level = float(darkness[peak])
    if level - floor < 40:
        return None
    half = floor + 0.5 * (level - floor)
    a, b = peak, peak + 1
    while a > lo and darkness[a - 1] >= half:
        a -= 1
    while b < hi and darkness[b] >= half:
        b += 1
    return a, b, level - floor


def _remove_band(image: np.ndarray, a: int, b: int, line_darkness: float) -> None:
    """Remove a ruled line whose core is rows [a, b) of (h, w) ``image``, in place.

    The rows just outside the core (the line's blurred rim) keep a pixel only where it and
    the next pixel outward are both dark (at least 60% of the line's darkness): a pen stroke
    running along the line; elsewhere the rim takes the next row out's value. The core is
    then replaced by a linear blend of the rows on either side: ink where a stroke crosses
    the line, paper where there was only line.
    """
    height = image.shape[0]
    pale_below = PAPER - 0.6 * line_darkness  # grey levels lighter than this are rim
    if a >= 2:  # a rim pixel stays only if the stroke goes on outward (not line blur, specks)
        rim = (image[a - 1] > pale_below) | (image[a - 2] > pale_below)
        image[a - 1, rim] = image[a - 2, rim]
    if b + 1 < height:
        rim = (image[b] > pale_below) | (image[b + 1] > pale_below)
        image[b, rim] = image[b + 1, rim]
    above = image[a - 1].astype(np.float32) if a > 0 else np.full(image.shape[1], PAPER, np.float32)
    below = (
        image[b].astype(np.float32) if b < height else np.full(image.shape[1], PAPER, np.float32)
    )
    steps = b - a + 1
    # row a - 1 + i is (1 - t) above + t below, t = i / steps, in float32 like a row at a time
    t = [i / steps for i in range(1, steps)]
    weight_below = np.array(t, np.float32)[:, None]
    weight_above = np.array([1 - v for v in t], np.float32)[:, None]
    image[a:b] = np.rint(weight_above * above + weight_below * below).astype(np.uint8)


def remove_ruled_lines(crop: np.ndarray, cell: PixelBox, line_px: float) -> np.ndarray:
    """Remove the cell's four ruled lines from ``crop`` (h, w) uint8 (a copy is returned).

    Each line is looked for within ``line_px + 3`` px of the template position, measured over
    the cell's inside span only (so neighbouring cells' writing weighs little), then removed
    by ``_remove_band`` (see the module docstring).
    """
    image = crop.copy()
    x0, y0, x1, y1 = cell
    reach = int(np.ceil(line_px)) + 3
    inset_x = max(1, (x1 - x0) // 10)
    inset_y = max(1, (y1 - y0) // 10)
    inner_columns = image[:, max(0, x0 + inset_x) : max(1, x1 - inset_x)]
    rows_profile = (PAPER - inner_columns.astype(np.float32)).mean(axis=1)
    rows_floor = median(rows_profile)
    for expected in (y0, y1):
        band = _line_band(rows_profile, expected, reach, rows_floor)
        if band is not None:
            _remove_band(image, *band)
    inner_rows = image[max(0, y0 + inset_y) : max(1, y1 - inset_y), :]
    cols_profile = (PAPER - inner_rows.astype(np.float32)).mean(axis=0)
    transposed = image.T.copy()
    cols_floor = median(cols_profile)
    for expected in (x0, x1):
        band = _line_band(cols_profile, expected, reach, cols_floor)
        if band is not None:
            _remove_band(transposed, *band)
    return np.ascontiguousarray(transposed.T)


@dataclass(frozen=True)
class StrokePage:
    """A page (or region) with its pen strokes normalised (``normalise_strokes``).

    image: (H, W) uint8, white paper, strokes at full strength, printing and noise removed;
    labels: (H, W) int32 piece of ink of each pixel (0 = none); area: (n,) pixels per piece;
    boxes: (n, 4) x, y, width, height of each piece (as cv2.connectedComponentsWithStats gives
    them; row 0, the paper's, is not used); faint: (H, W) bool, the pixels of the
    pieces removed as too weak for a stroke though FAINT_MARK_AREA or larger; peaks: (n,)
    float32, each piece's strongest darkness before it was normalised (grey levels below the
    paper, smoothed; 0 for row 0).
    """

    image: np.ndarray
    labels: np.ndarray
    area: np.ndarray
    boxes: np.ndarray
    faint: np.ndarray
    peaks: np.ndarray


def normalise_strokes(image: np.ndarray, dpi: float = CELL_DPI) -> StrokePage:
    """Pen strokes at full strength, paper white, grey printing gone, over a whole page.

    A ballpoint's trace varies: at 150-200 dpi a thin or light stroke scans 30-60 grey levels
    below the paper while a pressed one reaches 200, and an ink threshold relative to the
    strongest stroke (what segmentation uses) would drop the light digit of a number. Here
    ink is measured against the local paper (a 7x7 maximum, smoothed: strokes are thinner
    than that at ``CELL_DPI``; a large grey halftone fill is its own background and vanishes),
    lightly smoothed to bridge one-pixel gaps, and cut into pieces at a low threshold set by
    the paper's noise in the smoothed image (``FAINT_SIGMAS`` robust standard deviations, at
    least ``FAINT_INK``).
    Every piece reaching ``PEAK_SIGMAS`` (at least ``FAINT_PEAK``) is scaled so that its
    strongest pixels reach ``STROKE_INK`` (gain at most ``MAX_GAIN``), its 1 px rim with it;
    weaker pieces are noise and removed, and so are pale, solid pieces wider than any number
    (``PRINT_MIN_WIDTH_MM``, ``PRINT_MIN_FILL``: grey printed text, the edge of a halftone
    fill). Not sparse ones: on a grey, grainy scan, grey digits chained to their neighbours by
    the grain make a wide, pale piece too, and whole columns of digits were lost as printing.
    The weak pieces of FAINT_MARK_AREA or more are kept aside as ``faint`` marks (a digit too
    light for this scan may be one: ``faint_mark``).
    """
    # Few page-sized buffers, each reused through the steps (in place where cv2 allows it):
    # a fresh page-sized temporary costs more in page faults than the arithmetic on it.
    paper = cv2.dilate(image, np.ones((7, 7), np.uint8))
    cv2.blur(paper, (7, 7), dst=paper)
    work = np.subtract(paper, image, dtype=np.float32)  # darkness, whole grey levels
    del paper
    ink = cv2.GaussianBlur(work, (3, 3), 0.7)
    # The thresholds apply to the smoothed darkness, so its noise is measured there (the
    # smoothing divides white noise by ~2.4): medians of a histogram of rounded levels.
    sample = np.rint(ink[::4, ::4]).astype(np.int32) + 255
    sample_counts = np.bincount(sample.ravel(), minlength=511)
    levels = np.arange(-255, 256, dtype=np.float32)
    baseline = float(histogram_median(sample_counts, levels))
    noise = 1.4826 * float(histogram_median(sample_counts, np.abs(levels - baseline)))
    np.subtract(ink, baseline, out=ink)
    np.clip(ink, 0, 255, out=ink)
    low = ink >= max(FAINT_INK, FAINT_SIGMAS * noise)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        low.view(np.uint8), connectivity=8, ltype=cv2.CV_32S
    )
    area = stats[:, cv2.CC_STAT_AREA].astype(np.int64)
    boxes = stats[:, : cv2.CC_STAT_AREA].astype(np.int64)  # x, y, width, height
    if count <= 1:
        blank = np.full(image.shape, PAPER, np.uint8)
        peaks = np.zeros(count, np.float32)
        return StrokePage(blank, labels, area, boxes, np.zeros(image.shape, bool), peaks)
    where = np.flatnonzero(low)  # the labelled pixels
    pixel_labels = labels.ravel()[where]
    peaks = np.full(count, -np.inf, np.float32)  # strongest ink of each piece
    np.maximum.at(peaks, pixel_labels, ink.ravel()[where])
    peaks[0] = 0.0
    strong = peaks >= max(FAINT_PEAK, PEAK_SIGMAS * noise)
    gains = np.where(strong, np.clip(STROKE_INK / np.maximum(peaks, 1.0), 1.0, MAX_GAIN), 0.0)
    gains = gains.astype(np.float32)
    weak_marks = ~strong & (area >= FAINT_MARK_AREA)
    weak_marks[0] = False
    faint = np.zeros(image.shape, bool)
    faint.ravel()[where] = weak_marks[pixel_labels]
    gains[0] = 0.0
    gains[area < 3] = 0.0
    wide = boxes[:, 2] >= PRINT_MIN_WIDTH_MM / 25.4 * dpi
    solid = area >= PRINT_MIN_FILL * boxes[:, 2] * boxes[:, 3]
    gains[wide & solid & (peaks < PRINT_GREY_PEAK)] = 0.0
    work.fill(0.0)  # each pixel's piece gain (0 off the pieces)
    work.ravel()[where] = gains[pixel_labels]
    cv2.dilate(work, np.ones((3, 3), np.uint8), dst=work)  # the rim goes with its stroke
    np.multiply(ink, work, out=work)
    np.clip(work, 0, 255, out=work)  # the strong strokes
    np.subtract(PAPER, work, out=work)
    kept = np.where(gains > 0, np.arange(count), 0).astype(np.int32)  # dropped pieces -> 0
    labels.ravel()[where] = kept[pixel_labels]
    return StrokePage(work.astype(np.uint8), labels, area, boxes, faint, peaks)


def _neighbours_overflow(
    own: np.ndarray,
    labels: np.ndarray,
    boxes: np.ndarray,
    top_row: int,
    cell: PixelBox,
    line_px: float,
) -> np.ndarray:
    """(h, w) bool: ink of ``own`` beyond the cell's top or bottom line that belongs to the
    digits of the row above or below, touching this cell's digit.

    own: the cell's ink in the crop; labels: the stroke page's piece labels in the crop, boxes
    the pieces' page boxes (``StrokePage``); top_row: the crop's first page row.
    Cut at the line, the ink beyond it falls into pieces; a piece reaching farther than
    ``MAX_OVERFLOW`` of the cell's height past the line (measured on the page, where it may
    go on past the crop) is the neighbour's digit: a digit written across its own cell's line
    keeps most of its height inside and overflows by less.
    """
    height = own.shape[0]
    _, y0, _, y1 = cell
    reach = MAX_OVERFLOW * (y1 - y0)
    half_line = int(np.ceil(line_px / 2))
    foreign = np.zeros(own.shape, bool)
    for lo, hi, above in ((0, y0 - half_line, True), (y1 + half_line + 1, height, False)):
        lo, hi = max(0, lo), min(height, hi)
        if hi <= lo or not own[lo:hi].any():
            continue
        count, parts, stats, _ = cv2.connectedComponentsWithStats(
            own[lo:hi].astype(np.uint8), connectivity=8
        )
        for part in range(1, count):
            where = parts == part
            pieces = np.unique(labels[lo:hi][where])
            if above:  # the highest page row of the part's pieces, in crop rows
                far = y0 - min(lo + stats[part, cv2.CC_STAT_TOP], boxes[pieces, 1].min() - top_row)
            else:
                bottom = lo + stats[part, cv2.CC_STAT_TOP] + stats[part, cv2.CC_STAT_HEIGHT]
                far = max(bottom, (boxes[pieces, 1] + boxes[pieces, 3]).max() - top_row) - y1
            if far > reach:
                foreign[lo:hi] |= where
    return foreign


def keep_own_ink(
    strokes: StrokePage,
    crop_box: PixelBox,
    cell: PixelBox,
    line_px: float = 1.0,
    pale: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """This cell's ink only: pieces mostly outside the cell are painted over with paper.

    crop_box: the crop in the stroke page's pixels; cell: the cell's box in crop pixels;
    line_px: the ruled lines' width in pixels; pale: (n,) bool by piece label, the pieces too
    pale to be the writer's (``pale_pieces``), which are not the cell's either.
    A piece belongs to the cell when ``MIN_OWN_SHARE`` of its pixels (on the whole page) lie
    inside the cell's box; the part inside of a piece mostly outside is kept when it spans
    more than ``MIN_REACH_IN`` of the cell's height (this cell's digit touching a neighbour's,
    or crossing a line: a neighbour's digit reaching in overflows its own cell by less).
    Where the digit of the row above or below touches this cell's, the part of it beyond the
    line goes too (``_neighbours_overflow``).
    Returns (cleaned crop (h, w) uint8, own ink mask (h, w) bool).
    """
    cx0, cy0, cx1, cy1 = crop_box
    image = strokes.image[cy0:cy1, cx0:cx1]
    labels = strokes.labels[cy0:cy1, cx0:cx1]
    mask = labels > 0
    if not mask.any():
        return image.copy(), mask
    x0, y0, x1, y1 = cell
    inside = np.zeros(mask.shape, bool)
    inside[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
    pieces = labels[mask]
    present = np.flatnonzero(np.bincount(pieces))  # the pieces in the crop, ascending
    inside_counts = np.bincount(pieces, weights=inside[mask])[present]
    share = inside_counts / np.maximum(strokes.area[present], 1)
    pen = np.ones(len(present), bool) if pale is None else ~pale[present]
    keep = (share >= MIN_OWN_SHARE) & pen
    own_labels = np.zeros(len(strokes.area), bool)  # lookup table: np.isin costs ~10x more
    own_labels[present[keep]] = True
    own = own_labels[labels]
    reaching = ~keep & pen
    for label, count in zip(present[reaching], inside_counts[reaching], strict=True):
        if count <= 0:
            continue
        part = (labels == label) & inside
        rows = np.flatnonzero(part.any(axis=1))
        if rows.size and rows[-1] - rows[0] + 1 > MIN_REACH_IN * (y1 - y0):
            own |= part
    own &= ~_neighbours_overflow(own, labels, strokes.boxes, cy0, cell, line_px)
    foreign = mask & ~own
    if not foreign.any():
        return image.copy(), own
    cleaned = image.copy()
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
    # The pieces' boxes are their outer contours' boxes (cv2 pads the border; a piece inside
    # another's hole is smaller than it): ~4x cheaper than connectedComponentsWithStats.
    mask = own.astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    smallest = 0.15 * h
    for contour in contours:
        _, _, width, height = cv2.boundingRect(contour)
        if height >= smallest or width >= smallest:
            return CellKind.WRITTEN
    return CellKind.EMPTY


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

    The ruled lines of every field are removed first (cell by cell, in place on a copy of the
    page), then the strokes are normalised once for the whole page, then each field is cut
    with its margin and keeps its own ink.
    """
    page_w, page_h = template.page_size_px(dpi)
    line_px = max(1.0, template.line_width_mm / 25.4 * dpi)
    reach = int(np.ceil(line_px)) + 4
    spots = spots if spots is not None else cell_spots(template)
    clean = page.copy()
    placed = []
    for spot in spots:
        box = (
            spot.box.x0 * page_w - origin[0],
            spot.box.y0 * page_h - origin[1],
            spot.box.x1 * page_w - origin[0],
            spot.box.y1 * page_h - origin[1],
        )
        placed.append((spot, box))
        if spot.no_usar:
            continue
        x0, y0 = max(0, int(box[0]) - reach), max(0, int(box[1]) - reach)
        x1 = min(clean.shape[1], int(np.ceil(box[2])) + reach)
        y1 = min(clean.shape[0], int(np.ceil(box[3])) + reach)
        if x1 <= x0 or y1 <= y0:
            continue
        cell = (round(box[0]) - x0, round(box[1]) - y0, round(box[2]) - x0, round(box[3]) - y0)
        clean[y0:y1, x0:x1] = remove_ruled_lines(clean[y0:y1, x0:x1], cell, line_px)
    strokes = normalise_strokes(clean, dpi)
    pale = pale_pieces(strokes, [box for spot, box in placed if not spot.no_usar])
    out = []
    for spot, box in placed:
        crop, crop_box, cell = cut_cell(page, box, line_px)
        page_box = (
            crop_box[0] + origin[0],
            crop_box[1] + origin[1],
            crop_box[2] + origin[0],
            crop_box[3] + origin[1],
        )
        if spot.no_usar or crop.size == 0:
            out.append(CellCrop(spot, crop, page_box, cell, CellKind.NO_USAR))
            continue
        cleaned, own = keep_own_ink(strokes, crop_box, cell, line_px, pale)
        kind = classify_cell(own, cell, False)
        # A cell left EMPTY is no sure blank when a mark that may be its digit was taken out:
        # too faint for a stroke, or a piece of ink that is not the cell's own (a piece too
        # pale for this page's writing, a light digit among dark ones; ink given to a
        # neighbour, a number written across the line above and joined to that cell's digit).
        cx0, cy0, cx1, cy1 = crop_box
        taken_out = (strokes.labels[cy0:cy1, cx0:cx1] > 0) & ~own
        mark = kind == CellKind.EMPTY and (
            faint_mark(strokes.faint, crop_box, cell) or faint_mark(taken_out, (0, 0, 0, 0), cell)
        )
        out.append(CellCrop(spot, cleaned, page_box, cell, kind, mark))
    return out


def pale_pieces(strokes: StrokePage, fields: Sequence[tuple[float, ...]]) -> np.ndarray:
    """(n,) bool by piece label: the pieces of PALE_MIN_AREA or more too pale to be this
    page's writing, their peak darkness (``StrokePage.peaks``) below PALE_SHARE of the median
    peak of such pieces lying mostly (MIN_OWN_SHARE) inside the fields (x0, y0, x1, y1 in the
    stroke page's pixels); none when no field holds ink. Smaller fragments of a light stroke
    peak lower, and are never judged so.

    The writer's pen is the same across the page, so its strokes reach about the same
    darkness; a rubber stamp's faded ring is 2-5x paler, yet normalise_strokes raises each
    piece to full strength (gain up to MAX_GAIN), and an arc of it crossing a cell was read
    as a 1 ("5" read 15 at 0.96). The reference is the handwriting's, not the printing's: a
    light pen on a form printed in black must not lose its digits. A digit written much
    lighter than the others on its page is dropped too; its cell, if left EMPTY, is marked
    (``CellCrop.faint_mark``) and reviewed.
    """
    height, width = strokes.labels.shape
    inside = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in fields:
        inside[
            max(0, int(y0)) : max(0, int(np.ceil(y1))), max(0, int(x0)) : max(0, int(np.ceil(x1)))
        ] = True
    counts = np.bincount(strokes.labels[inside], minlength=len(strokes.area))
    large = strokes.area >= PALE_MIN_AREA
    large[0] = False  # the paper
    written = large & (counts >= MIN_OWN_SHARE * strokes.area)
    if not written.any():
        return np.zeros(len(strokes.area), bool)
    return large & (strokes.peaks < PALE_SHARE * float(np.median(strokes.peaks[written])))


def faint_mark(faint: np.ndarray, crop_box: PixelBox, cell: PixelBox) -> bool:
    """Is a mark of ``faint`` (bool: the faint marks, ``StrokePage.faint``, or other ink taken
    out of a cell) FAINT_MARK_HEIGHT of the cell's height tall inside the cell
    (FAINT_MARK_INSET px in from its lines, clear of their remnants)? On
    grey, grainy scans the lightest digits fall below the stroke threshold whole, and the
    cell read EMPTY with full confidence: of 15 such wrong EMPTY cells in 300 hard synthetic
    telegrams, 6 hold such a mark, which only 7 of 640 right EMPTY cells do.

    faint: the marks, page-sized (crop_box: the crop in its pixels) or crop-sized (crop_box
    (0, 0, 0, 0)); cell: the cell's box in crop pixels."""
    cx0, cy0 = crop_box[:2]
    x0, y0, x1, y1 = cell
    inset = FAINT_MARK_INSET
    inside = faint[cy0 + y0 + inset : cy0 + y1 - inset, cx0 + x0 + inset : cx0 + x1 - inset]
    if not inside.any():
        return False
    _, _, stats, _ = cv2.connectedComponentsWithStats(inside.view(np.uint8), connectivity=8)
    tall = stats[1:, cv2.CC_STAT_HEIGHT] >= FAINT_MARK_HEIGHT * (y1 - y0)
    return bool(np.any(tall & (stats[1:, cv2.CC_STAT_AREA] >= FAINT_MARK_AREA)))
