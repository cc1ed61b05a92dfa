"""Registration: find the printed form on a scan and map it onto its template.

The telegram's ruled lines (the results table, the header boxes, the signature lines) are what
every scan of a form shares, whatever is written on it, so registration is fitted to them:

1. ``as_grey`` and a work copy of the page ``WORK_WIDTH`` pixels wide (about 100 dpi);
2. ``line_masks``: ink by a local threshold, then morphological openings with long thin
   kernels keep the horizontal and the vertical strokes (ruled lines, not letters or digits);
3. ``estimate_slopes``: the dominant slope of the long horizontal and vertical lines
   (rotation and shear, any small angle);
4. ``match_grid``: the mask's projection across the lines is a profile with one peak per ruled
   line; the template's line positions, scaled and shifted, are slid along it (1-D search over
   scale and offset), for the form as printed and turned 180 degrees. This gives a first affine
   map and tells an upside-down page or a page without this form's table;
5. ``refine``: every template line is sampled at points between its crossings; each sample is
   looked for across the line near where the current map puts it, and a homography is fitted
   to the found points by linear least squares on point-to-line constraints (a point found on
   template line ``v = c`` must map back to ``v = c``), with outliers (handwriting crossing a
   line) dropped. Three rounds at the work scale with shrinking search windows, a last one on
   the full-resolution scan for sub-pixel accuracy.

The result, :class:`Registration`, holds the homography from page-relative template
coordinates ``(u, v, 1)`` to scan pixels (the convention of ``pipeline.forms``: pixel ``i`` is
centred on coordinate ``i``) and a fit score: the share of the template's line samples found on
the scan where the homography puts them. :func:`warp_page` resamples the scan into the
template's frame at any dpi.

Errors: a blank page raises :class:`UnreadableScan`; a page without this form's table, upside
down, cut off, or fitting too few of the template's lines raises :class:`FormMismatch`. Never a
silent garbage registration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.errors import FormMismatch, UnreadableScan
from pipeline.forms import Box, FormTemplate

WORK_WIDTH = 850  # px: the work copy's width (a legal/letter sheet at ~100 dpi)
LINE_KERNEL = 0.035  # length of the line-opening kernels, share of the work width
MIN_FIT_SCORE = 0.6  # share of the template's line samples that must be found
MIN_GRID_SCORE = 0.45  # mean support of the template's lines in the 1-D grid match
OUTLINE_WEIGHT = (
    1.0  # extra weight of the outline in the 1-D grid match (3.0 measured worse on hard scans)
)
MIN_OUTLINE_FOUND = 0.5  # share of each table edge's samples that must be found
SCALE_RANGE = (0.8, 1.25)  # page size on the scan relative to the image size
FOUND_TOLERANCE_MM = 0.5  # a line sample counts as found within this distance of the fit
UPSIDE_DOWN_SCORE = 0.75  # grid support of the form turned 180 degrees that means upside down
BLANK_STD = 4.0  # grey-level spread below which a page is blank


@dataclass(frozen=True)
class Registration:
    """Where the template lies on a scan.

    homography: (3, 3) float64 from page-relative ``(u, v, 1)`` to scan pixels ``(x, y, 1)``.
    fit_score: 0..1 share of the template's line samples found where the homography puts them.
    residual_px: RMS distance (scan pixels) of the found samples to their fitted lines.
    scan_shape: (height, width) of the scan.
    upside_down_score / grid_score: 1-D grid match support of the form turned 180 degrees
    and as printed (diagnostics).
    """

    homography: np.ndarray
    fit_score: float
    residual_px: float
    scan_shape: tuple[int, int]
    grid_score: float = 0.0
    upside_down_score: float = 0.0

    def to_scan(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) page-relative (u, v) -> (N, 2) float scan pixel coordinates (x, y)."""
        return apply_homography(self.homography, points)

    def box_to_scan(self, box: Box) -> tuple[int, int, int, int]:
        """A template box -> the (x0, y0, x1, y1) integer bounding box of its image on the scan,
        clipped to the scan."""
        return self.boxes_to_scan([box])[0]

    def boxes_to_scan(self, boxes: Sequence[Box]) -> list[tuple[int, int, int, int]]:
        """``box_to_scan`` for many boxes with one homography product (a telegram's cells)."""
        corners = np.array(
            [[[b.x0, b.y0], [b.x1, b.y0], [b.x1, b.y1], [b.x0, b.y1]] for b in boxes], np.float64
        ).reshape(-1, 2)
        xy = self.to_scan(corners).reshape(-1, 4, 2)
        height, width = self.scan_shape
        low = np.floor(xy.min(axis=1))
        high = np.ceil(xy.max(axis=1))
        x0 = np.clip(low[:, 0], 0, width).astype(int).tolist()
        y0 = np.clip(low[:, 1], 0, height).astype(int).tolist()
        x1 = np.clip(high[:, 0], 0, width).astype(int).tolist()
        y1 = np.clip(high[:, 1], 0, height).astype(int).tolist()
        return list(zip(x0, y0, x1, y1, strict=True))


def apply_homography(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(3, 3) homography applied to (N, 2) points -> (N, 2) float64."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    ones = np.ones((len(points), 1))
    mapped = np.hstack([points, ones]) @ np.asarray(matrix, np.float64).T
    return mapped[:, :2] / mapped[:, 2:3]


def as_grey(image: np.ndarray) -> np.ndarray:
    """Any scan (H, W) grey / (H, W, 3|4) BGR(A) / bool / uint16 -> (H, W) uint8 grey."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3 and array.shape[2] in (3, 4):
        if array.dtype != np.uint8:
            array = _to_uint8(array)
        return cv2.cvtColor(np.ascontiguousarray(array[:, :, :3]), cv2.COLOR_BGR2GRAY)
    if array.ndim != 2:
        raise UnreadableScan(f"a scan must be a 2-D grey or colour image, got shape {array.shape}")
    if array.size == 0:
        raise UnreadableScan("the scan is empty (0 pixels)")
    return _to_uint8(array)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    values = array.astype(np.float64)
    top = float(values.max()) if values.size else 0.0
    if top <= 1.0:
        values = values * 255.0
    elif top > 255.0:
        values = values * (255.0 / (65535.0 if array.dtype == np.uint16 else top))
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- line features


@dataclass(frozen=True)
class LineFeature:
    """A printed straight line of the template: horizontal (at ``v = at``, from ``u = start``
    to ``end``) or vertical (at ``u = at``, from ``v = start`` to ``end``), page-relative.
    ``samples``: positions along it where it is looked for (between crossings)."""

    horizontal: bool
    at: float
    start: float
    end: float
    samples: tuple[float, ...]


def _between(edges: list[float], start: float, end: float) -> list[float]:
    """Midpoints and quarter points between consecutive crossings inside [start, end]."""
    cuts = sorted({start, end, *(e for e in edges if start < e < end)})
    points = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        if b - a < 0.012:
            points.append((a + b) / 2)
        else:
            points.extend((a + 0.25 * (b - a), a + 0.5 * (b - a), a + 0.75 * (b - a)))
    return points


def template_lines(template: FormTemplate) -> list[LineFeature]:
    """The template's ruled lines registration looks for: the table's grid (horizontal lines
    across the office columns, vertical lines through the rows they cross), the printed frames
    (header boxes) and the straight rules (signature lines, header box rules)."""
    table = template.table
    xs = template.vertical_lines()
    ys = template.horizontal_lines()
    office_x0 = template.columns[0].x0
    last_list_y1 = max((r.y1 for r in template.rows if r.votos_tipo == "POSITIVO"), default=None)
    features: list[LineFeature] = []
    office_edges = [c.x0 for c in template.columns] + [c.x1 for c in template.columns]
    for y in ys:
        full = y in (table.y0, table.y1, template.heading.y1)
        start = table.x0 if full else office_x0
        features.append(LineFeature(True, y, start, table.x1, tuple(_between(xs, start, table.x1))))
    if template.heading_split is not None:
        y = template.heading_split
        features.append(
            LineFeature(
                True, y, office_x0, table.x1, tuple(_between(office_edges, office_x0, table.x1))
            )
        )
    label_inner = {c.x0 for c in template.label_columns[1:]}
    for x in xs:
        end = table.y1
        if x in label_inner and x not in office_edges and last_list_y1 is not None:
            end = last_list_y1
        features.append(LineFeature(False, x, table.y0, end, tuple(_between(ys, table.y0, end))))
    for frame in template.frames:
        for y in (frame.y0, frame.y1):
            features.append(LineFeature(True, y, frame.x0, frame.x1, _spread(frame.x0, frame.x1)))
        for x in (frame.x0, frame.x1):
            features.append(LineFeature(False, x, frame.y0, frame.y1, _spread(frame.y0, frame.y1)))
    for rule in template.rules:
        if rule.y0 == rule.y1 and rule.x1 - rule.x0 > 0.05:
            lo, hi = sorted((rule.x0, rule.x1))
            features.append(LineFeature(True, rule.y0, lo, hi, _spread(lo, hi)))
        elif rule.x0 == rule.x1 and abs(rule.y1 - rule.y0) > 0.03:
            lo, hi = sorted((rule.y0, rule.y1))
            features.append(LineFeature(False, rule.x0, lo, hi, _spread(lo, hi)))
    return features


def _spread(start: float, end: float) -> tuple[float, ...]:
    """Sample positions along a frame edge or rule: every ~3% of the page, away from the ends."""
    count = max(2, int((end - start) / 0.03))
    return tuple(start + (end - start) * (i + 0.5) / count for i in range(count))


def _samples(features: list[LineFeature]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All samples: (N, 2) page-relative points, (N,) bool horizontal, (N,) the line's at."""
    points, horizontal, at = [], [], []
    for f in features:
        for s in f.samples:
            points.append((s, f.at) if f.horizontal else (f.at, s))
            horizontal.append(f.horizontal)
            at.append(f.at)
    return np.array(points, np.float64), np.array(horizontal, bool), np.array(at, np.float64)


# --------------------------------------------------------------------------- masks and slopes


def line_masks(work: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(h, w) uint8 grey work page -> (ink, horizontal lines, vertical lines) uint8 0/1 masks.

    Ink: darker than the local mean (31 px box) by 12 grey levels (uneven light, colour paper
    and 1-bit scans alike). Lines: ink thickened by 2 px across the line direction (so a line
    tilted by a few degrees stays connected), opened with a ``LINE_KERNEL``-long kernel.
    """
    local = cv2.blur(work, (31, 31))
    # work < local - 12, as work + 12 < local: cv2.add saturates at 255, which is no less
    # than any local mean, as work + 12 > 255 would not be
    ink = np.less(cv2.add(work, 12), local).view(np.uint8)
    length = max(15, round(LINE_KERNEL * work.shape[1]))
    horizontal = cv2.dilate(ink, np.ones((3, 1), np.uint8))
    horizontal = cv2.morphologyEx(horizontal, cv2.MORPH_OPEN, np.ones((1, length), np.uint8))
    vertical = cv2.dilate(ink, np.ones((1, 3), np.uint8))
    vertical = cv2.morphologyEx(vertical, cv2.MORPH_OPEN, np.ones((length, 1), np.uint8))
    return ink, horizontal, vertical


def _nonzero_xy(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(xs, ys) int32 of a 2-D mask's nonzero pixels in row-major order (np.nonzero's pixels;
    cv2.findNonZero is ~3x faster)."""
    if mask.dtype != np.uint8:
        mask = (mask != 0).view(np.uint8)
    points = cv2.findNonZero(np.ascontiguousarray(mask))
    if points is None:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    points = points.reshape(-1, 2)  # (N, 1, 2) or (N, 2) by OpenCV version
    return points[:, 0], points[:, 1]


def _coordinates(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) float32 of the mask's pixels, relative to the mask's centre."""
    xs, ys = _nonzero_xy(mask)
    height, width = mask.shape
    return ys.astype(np.float32) - height / 2, xs.astype(np.float32) - width / 2


def _projection(across: np.ndarray, along: np.ndarray, slope: float, size: int) -> np.ndarray:
    """Histogram (size,) of ``across - slope * along`` (coordinates relative to the centre)."""
    index = np.rint(across - slope * along + size / 2).astype(np.int64)
    np.clip(index, 0, size - 1, out=index)
    return np.bincount(index, minlength=size).astype(np.float32)


def estimate_slope(mask: np.ndarray, horizontal: bool) -> float:
    """Dominant slope of the long lines in ``mask``: dy/dx for horizontal lines, dx/dy for
    vertical ones. Each connected piece at least 12% of the page long and thin is fitted by
    least squares; the result is their length-weighted median (0 when there is none). Runs on
    every second pixel (the masks' lines are 3 px thick or more)."""
    array = np.ascontiguousarray((mask if horizontal else mask.T)[::2, ::2])
    count, labels, stats, _ = cv2.connectedComponentsWithStats(array, connectivity=8)
    min_length = 0.12 * array.shape[1]
    w, h = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    long = (w >= min_length) & ~(h > 0.2 * w + 6)
    long[0] = False
    chosen = np.flatnonzero(long)
    if not chosen.size:
        return 0.0
    weights = w[chosen].astype(np.float64)
    # np.polyfit on every piece costs most of this; the weighted median needs only the pieces'
    # order and then the median piece's own fit. Each piece's least-squares slope is exact
    # from its integer moments (one rounding; polyfit's is ~1e-15 off), so the order is
    # polyfit's except among pieces closer than 1e-9 (equal slopes): those are fitted as
    # before and ordered by their fits.
    cols, rows = _nonzero_xy(array)
    piece = labels[rows, cols]
    n, sx, sy, sxx, sxy = (
        np.bincount(piece, weights=v, minlength=count)[chosen].astype(np.int64)
        for v in (None, cols, rows, cols * cols, cols * rows)
    )
    spread = n * sxx - sx * sx  # exact integers (sums of small whole numbers)
    fitted = np.zeros(len(chosen), bool)
    if spread.all():
        slopes = (n * sxy - sx * sy) / spread
        ranked = np.sort(slopes)
        close = np.diff(ranked) <= 1e-9 * np.maximum(1.0, np.abs(ranked[1:]))
        fitted[np.isin(slopes, ranked[:-1][close]) | np.isin(slopes, ranked[1:][close])] = True
    else:
        slopes = np.zeros(len(chosen))
        fitted[:] = True
    for i in np.flatnonzero(fitted):
        slopes[i] = _piece_slope(labels, stats[chosen[i]], chosen[i])
    order = np.argsort(slopes)
    cumulative = np.cumsum(weights[order])
    median = order[np.searchsorted(cumulative, cumulative[-1] / 2)]
    if fitted[median]:
        return float(slopes[median])
    return _piece_slope(labels, stats[chosen[median]], chosen[median])


def _piece_slope(labels: np.ndarray, stat: np.ndarray, label: int) -> float:
    """Least-squares slope dy/dx (np.polyfit) of the pixels of one labelled piece."""
    x, y, w, h, _ = stat
    ys, xs = np.nonzero(labels[y : y + h, x : x + w] == label)
    return float(np.polyfit(xs.astype(np.float64), ys.astype(np.float64), 1)[0])


def _profile(across: np.ndarray, along: np.ndarray, slope: float, size: int) -> np.ndarray:
    """Smoothed projection profile across the lines at ``slope`` (see ``_projection``)."""
    hist = _projection(across, along, slope, size)
    return cv2.GaussianBlur(hist.reshape(-1, 1), (1, 7), 1.2).ravel()


def _grid_support(
    support: np.ndarray, rel: np.ndarray, scales: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    """(len(scales), len(offsets)) summed support of lines at ``scale * rel + offset``.

    support: (k, n) per line (k = len(rel)) its capped support at each profile position."""
    total = np.zeros((len(scales), len(offsets)), np.float32)
    size = support.shape[1]
    count = len(offsets)
    consecutive = (
        count > 0
        and np.issubdtype(offsets.dtype, np.integer)
        and bool(np.all(np.diff(offsets) == 1))
    )
    # With whole consecutive offsets, rint(base + o) = rint(base) + o unless base = scale * r
    # lies within rounding of a half (then the general way): each scale's row is then a slice
    # of the line's support padded with zeros, not a gather of computed indices.
    base = scales[None, :] * rel[:, None]  # (k, len(scales))
    fast = np.all(np.abs(base - np.floor(base) - 0.5) > 1e-6, axis=1) & consecutive
    if fast.any():
        first = np.rint(base).astype(np.int64) + (int(offsets[0]) if count else 0)
        lo, hi = int(first[fast].min()), int(first[fast].max()) + count
        padded = np.zeros((len(rel), hi - lo), support.dtype)
        a, b = max(lo, 0), min(hi, size)
        if a < b:
            padded[:, a - lo : b - lo] = support[:, a:b]
        windows = np.lib.stride_tricks.sliding_window_view(padded, count, axis=1)
    for line in range(len(rel)):  # summed line by line in float32, in order
        if fast[line]:
            total += windows[line, first[line] - lo]
            continue
        index = np.rint(base[line][:, None] + offsets[None, :]).astype(np.int64)
        inside = (index >= 0) & (index < size)
        total += np.where(inside, support[line, np.clip(index, 0, size - 1)], 0.0)
    return total


def _match_positions(
    profile: np.ndarray, positions: np.ndarray, lengths: np.ndarray, nominal: float
) -> tuple[float, float, float]:
    """Best (scale, offset, score) for lines at page-relative ``positions``: line i is expected
    at ``scale * (positions[i] - centre) + offset`` px; ``lengths`` (px) cap each line's
    support at 1. score = weighted mean capped support (0..1). The first and last lines (the
    table's outline) weigh ``OUTLINE_WEIGHT`` times more: rows of equal height would otherwise
    let the match lock one row off. Coarse search (4 px steps on a max-pooled profile), then a
    fine one (1 px) around the best."""
    rel = positions - float(positions.mean())
    span = float(np.abs(rel).max()) or 1.0
    weights = np.ones(len(rel))
    weights[[0, -1]] = OUTLINE_WEIGHT
    caps = np.maximum(4.0, 0.35 * lengths)[:, None]
    support = np.minimum(profile[None, :] / caps, 1.0) * weights[:, None]  # (k, n)
    size = support.shape[1]
    pool = 4
    pooled = support[:, : size - size % pool].reshape(len(rel), -1, pool).max(axis=2)
    scales = np.arange(SCALE_RANGE[0] * nominal, SCALE_RANGE[1] * nominal, pool * 0.6 / span)
    coarse = _grid_support(pooled, rel / pool, scales / 1.0, np.arange(pooled.shape[1]))
    si, oi = np.unravel_index(int(np.argmax(coarse)), coarse.shape)
    fine_scales = np.arange(
        scales[si] - pool * 0.6 / span, scales[si] + pool * 0.6 / span, 0.6 / span
    )
    fine_offsets = np.arange(max(0, oi * pool - 2 * pool), min(size, oi * pool + 3 * pool))
    fine = _grid_support(support, rel, fine_scales, fine_offsets)
    sj, oj = np.unravel_index(int(np.argmax(fine)), fine.shape)
    return float(fine_scales[sj]), float(fine_offsets[oj]), float(fine[sj, oj] / weights.sum())


@dataclass(frozen=True)
class _GridMatch:
    homography: np.ndarray  # page-relative -> work px (affine)
    score: float
    flipped_score: float


def match_grid(horizontal: np.ndarray, vertical: np.ndarray, template: FormTemplate) -> _GridMatch:
    """First affine map page-relative -> work pixels from the table grid's 1-D profiles."""
    height, width = horizontal.shape
    hy, hx = _coordinates(horizontal)
    vy, vx = _coordinates(vertical)
    slope_h = estimate_slope(horizontal, True)
    slope_v = estimate_slope(vertical, False)
    prof_h = _profile(hy, hx, slope_h, height)
    prof_v = _profile(vx, vy, slope_v, width)
    table = template.table
    ys = np.array(template.horizontal_lines())
    xs = np.array(template.vertical_lines())
    office_width = (table.x1 - template.columns[0].x0) * width
    len_h = np.full(len(ys), office_width)
    len_v = np.full(len(xs), (table.y1 - table.y0) * width * template.aspect)
    nominal_h, nominal_w = float(height), float(width)
    a_y, c_y, score_y = _match_positions(prof_h, ys, len_h, nominal_h)
    a_x, c_x, score_x = _match_positions(prof_v, xs, len_v, nominal_w)
    _, _, flip_y = _match_positions(prof_h, 1.0 - ys[::-1], len_h, nominal_h)
    _, _, flip_x = _match_positions(prof_v, 1.0 - xs[::-1], len_v, nominal_w)
    # Scan coordinates (x, y) of the template point (u, v) satisfy
    #   y - slope_h * (x - w/2) = a_y * (v - mean(ys)) + c_y
    #   x - slope_v * (y - h/2) = a_x * (u - mean(xs)) + c_x
    solve = np.linalg.inv(np.array([[1.0, -slope_v], [-slope_h, 1.0]]))
    rhs = np.array(
        [
            [a_x, 0.0, c_x - a_x * xs.mean() - slope_v * height / 2],
            [0.0, a_y, c_y - a_y * ys.mean() - slope_h * width / 2],
        ]
    )
    affine = np.vstack([solve @ rhs, [0.0, 0.0, 1.0]])
    return _GridMatch(affine, min(score_x, score_y), min(flip_x, flip_y))


# --------------------------------------------------------------------------- refinement


def _search_lines(
    mask: np.ndarray | None,
    grey: np.ndarray,
    predicted: np.ndarray,
    horizontal: np.ndarray,
    radius: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Look for each sample's line across it near its predicted position.

    mask: (h, w) line mask (or None: use darkness alone, for the final sub-pixel round);
    grey: (h, w) uint8 page; predicted: (N, 2) px; horizontal: (N,) bool.
    Returns (found (N, 2) px with the across-line coordinate measured, ok (N,) bool).
    """
    height, width = grey.shape
    n = len(predicted)
    steps = np.arange(-radius, radius + 1)
    strip = np.array([-1, 0, 1])
    px = np.rint(predicted[:, 0]).astype(np.int64)
    py = np.rint(predicted[:, 1]).astype(np.int64)
    along = np.where(horizontal, px, py)
    across = np.where(horizontal, py, px)
    across_idx = across[:, None] + steps[None, :]  # (N, S)
    along_idx = along[:, None] + strip[None, :]  # (N, 3)
    limit_across = np.where(horizontal, height, width)[:, None]
    limit_along = np.where(horizontal, width, height)[:, None]
    valid = (
        (across_idx[:, 0] >= 0)
        & (across_idx[:, -1] < limit_across[:, 0])
        & (along_idx[:, 0] >= 0)
        & (along_idx[:, -1] < limit_along[:, 0])
    )
    a_idx = np.clip(across_idx, 0, limit_across - 1)
    l_idx = np.clip(along_idx, 0, limit_along - 1)
    if horizontal.all():  # (N, S, 3) pixel indices, broadcast rather than built
        rows, cols = a_idx[:, :, None], l_idx[:, None, :]
    elif not horizontal.any():
        rows, cols = l_idx[:, None, :], a_idx[:, :, None]
    else:
        rows = np.where(horizontal[:, None, None], a_idx[:, :, None], l_idx[:, None, :])
        cols = np.where(horizontal[:, None, None], l_idx[:, None, :], a_idx[:, :, None])
    dark = 255.0 - grey[rows, cols].mean(axis=2, dtype=np.float32)  # (N, S)
    if mask is not None:
        on = mask[rows, cols].max(axis=2) > 0
    else:
        floor = dark.min(axis=1, keepdims=True)
        top = dark.max(axis=1, keepdims=True)
        on = (dark - floor) >= 0.5 * (top - floor)
        valid &= (top - floor)[:, 0] >= 40
    has = on.any(axis=1) & valid
    # the run of line pixels nearest the predicted position
    distance = np.where(on, np.abs(steps)[None, :], radius + 10)
    nearest = np.argmin(distance, axis=1)
    near = np.abs(np.arange(len(steps))[None, :] - nearest[:, None]) <= 2
    weights = np.where(on & near, np.maximum(dark - dark.min(axis=1, keepdims=True), 0.0), 0.0)
    total = weights.sum(axis=1)
    has &= total > 0
    offset = (weights * steps[None, :]).sum(axis=1) / np.maximum(total, 1e-9)
    found = predicted.copy()
    measured = across + offset
    found[:, 1] = np.where(horizontal, measured, found[:, 1])
    found[:, 0] = np.where(horizontal, found[:, 0], measured)
    if n == 0:
        return found, has
    return found, has


def fit_homography(
    found: np.ndarray,
    horizontal: np.ndarray,
    at: np.ndarray,
    page_px: tuple[float, float],
) -> np.ndarray:
    """Homography page-relative -> pixels from points found on template lines.

    found: (N, 2) pixel points; horizontal: (N,) whether each lies on a horizontal template
    line (``v = at``) or a vertical one (``u = at``). Solves the linear least squares
    ``G(x, y) . v = at`` for the inverse map G (pixels -> page-relative), residuals scaled to
    pixels by ``page_px`` (page width, height in pixels). Returns (3, 3) float64 (G inverted).
    """
    centre = found.mean(axis=0)
    scale = float(np.abs(found - centre).max()) or 1.0
    x = (found[:, 0] - centre[0]) / scale
    y = (found[:, 1] - centre[1]) / scale
    zeros = np.zeros_like(x)
    ones = np.ones_like(x)
    h_rows = np.stack([zeros, zeros, zeros, x, y, ones, -at * x, -at * y], axis=1)
    v_rows = np.stack([x, y, ones, zeros, zeros, zeros, -at * x, -at * y], axis=1)
    a = np.where(horizontal[:, None], h_rows, v_rows)
    weight = np.where(horizontal, page_px[1], page_px[0])
    solution, *_ = np.linalg.lstsq(a * weight[:, None], at * weight, rcond=None)
    g_norm = np.append(solution, 1.0).reshape(3, 3)
    normalise = np.array(
        [[1 / scale, 0, -centre[0] / scale], [0, 1 / scale, -centre[1] / scale], [0, 0, 1]]
    )
    g = g_norm @ normalise
    h = np.linalg.inv(g)
    return h / h[2, 2]


def _residuals(
    homography: np.ndarray, found: np.ndarray, horizontal: np.ndarray, at: np.ndarray, page_px
) -> np.ndarray:
    """Distance (px) of each found point to its template line, measured in the page frame."""
    g = np.linalg.inv(homography)
    uv = apply_homography(g, found)
    return np.where(horizontal, (uv[:, 1] - at) * page_px[1], (uv[:, 0] - at) * page_px[0])


def _robust_fit(found, horizontal, at, ok, page_px) -> tuple[np.ndarray, np.ndarray]:
    """Fit, drop points far off (3.5 robust sigmas, at least 1.5 px), refit; returns the
    homography and the inlier mask."""
    use = ok.copy()
    if use[horizontal].sum() < 6 or use[~horizontal].sum() < 6:
        raise FormMismatch("too few of the form's ruled lines were found on the scan")
    matrix = fit_homography(found[use], horizontal[use], at[use], page_px)
    for _ in range(3):
        residual = np.abs(_residuals(matrix, found, horizontal, at, page_px))
        sigma = 1.4826 * float(np.median(residual[use])) if use.any() else 0.0
        keep = ok & (residual <= max(1.5, 3.5 * sigma))
        if keep[horizontal].sum() < 6 or keep[~horizontal].sum() < 6 or np.array_equal(keep, use):
            break
        use = keep
        matrix = fit_homography(found[use], horizontal[use], at[use], page_px)
    return matrix, use


# --------------------------------------------------------------------------- entry point


def register_page(image: np.ndarray, template: FormTemplate) -> Registration:
    """Register a scan (any 2-D grey / 3-D colour / 1-bit image) to ``template``.

    Raises UnreadableScan (blank) or FormMismatch (not this form, upside down, cut off,
    too few lines fitted) with the reason.
    """
    grey = as_grey(image)
    height, width = grey.shape
    if min(height, width) < 200:
        raise UnreadableScan(f"the scan is too small to read ({width}x{height} px)")
    scale = WORK_WIDTH / width
    work = cv2.resize(
        grey, (WORK_WIDTH, max(1, round(height * scale))), interpolation=cv2.INTER_AREA
    )
    if _grey_std(work) < BLANK_STD:
        raise UnreadableScan("blank page: no printing or writing found on the scan")
    ink, hmask, vmask = line_masks(work)
    if cv2.countNonZero(ink) / ink.size < 0.002:  # ink.mean() of the 0/1 mask
        raise UnreadableScan("blank page: almost no ink on the scan")
    if cv2.countNonZero(hmask) == 0 or cv2.countNonZero(vmask) == 0:
        raise FormMismatch(f"no ruled lines found: not a {template.name} form")
    grid = match_grid(hmask, vmask, template)
    if grid.flipped_score >= UPSIDE_DOWN_SCORE and grid.flipped_score > grid.score + 0.1:
        raise FormMismatch(
            f"the page is upside down (the {template.name} table fits it turned 180 degrees)"
        )
    if grid.score < MIN_GRID_SCORE:
        raise FormMismatch(
            f"the table of form {template.name} was not found on the scan "
            f"(grid support {grid.score:.2f} < {MIN_GRID_SCORE})"
        )

    features = template_lines(template)
    points, horizontal, at = _samples(features)
    work_page = _page_px(grid.homography)
    matrix = grid.homography
    ok = np.zeros(len(points), bool)
    for radius in (12, 6, 3):
        predicted = apply_homography(matrix, points)
        found, ok = _search_both(hmask, vmask, work, predicted, horizontal, radius)
        matrix, _ = _robust_fit(found, horizontal, at, ok, work_page)
    _check_inside(matrix, template, work.shape)

    # Final round on the full-resolution scan: sub-pixel line centres.
    to_scan = np.diag([1 / scale, 1 / scale, 1.0])
    matrix = to_scan @ matrix
    matrix /= matrix[2, 2]
    page_px = _page_px(matrix)
    radius = max(2, int(np.ceil(1.5 / scale)))
    predicted = apply_homography(matrix, points)
    found, ok = _search_both(None, None, grey, predicted, horizontal, radius)
    matrix, inliers = _robust_fit(found, horizontal, at, ok, page_px)
    residual = np.abs(_residuals(matrix, found, horizontal, at, page_px))
    dpi = page_px[0] / (template.page_width_mm / 25.4)
    tolerance = max(1.0, FOUND_TOLERANCE_MM / 25.4 * dpi)
    good = ok & (residual <= tolerance)
    fit_score = float(good.mean())
    table = template.table
    edges = {
        "top": horizontal & (at == table.y0),
        "bottom": horizontal & (at == table.y1),
        "left": ~horizontal & (at == table.x0),
        "right": ~horizontal & (at == table.x1),
    }
    outline = {
        name: float(good[mask].mean()) if mask.any() else 1.0 for name, mask in edges.items()
    }
    rms = float(np.sqrt(np.mean(residual[inliers] ** 2))) if inliers.any() else float("inf")
    registration = Registration(
        homography=matrix,
        fit_score=fit_score,
        residual_px=rms,
        scan_shape=(height, width),
        grid_score=grid.score,
        upside_down_score=grid.flipped_score,
    )
    weakest = min(outline, key=outline.get)
    if fit_score >= MIN_FIT_SCORE and outline[weakest] < MIN_OUTLINE_FOUND:
        raise FormMismatch(
            f"the scan does not register to form {template.name}: the table's {weakest} edge "
            f"is not where the fit puts it ({outline[weakest]:.0%} of it found)"
        )
    if fit_score < MIN_FIT_SCORE:
        raise FormMismatch(
            f"the scan does not match form {template.name}: only {fit_score:.0%} of its ruled "
            f"lines were found where expected (need {MIN_FIT_SCORE:.0%})"
        )
    return registration


def _grey_std(grey: np.ndarray) -> float:
    """``float(grey.std())`` of a (h, w) uint8 image from its exact grey-level histogram, or
    numpy's own figure within 1e-6 of ``BLANK_STD`` (its rounding then decides, as before)."""
    n = grey.size
    if n == 0 or n >= 2**24:  # calcHist counts in float32: whole numbers below 2**24
        return float(grey.std())
    counts = cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    levels = np.arange(256, dtype=np.int64)
    total, squares = int(counts @ levels), int(counts @ (levels * levels))
    std = float(np.sqrt(n * squares - total * total)) / n
    if abs(std - BLANK_STD) < 1e-6:
        return float(grey.std())
    return std


def _search_both(hmask, vmask, grey, predicted, horizontal, radius):
    """``_search_lines`` with the horizontal mask for horizontal samples, vertical for the rest
    (each sample is searched on its own, so each mask is searched for its samples only; the
    masks may be None, for darkness alone)."""
    found = np.empty_like(predicted)
    ok = np.empty(len(predicted), bool)
    for mask, subset in ((hmask, horizontal), (vmask, ~horizontal)):
        found[subset], ok[subset] = _search_lines(
            mask, grey, predicted[subset], horizontal[subset], radius
        )
    return found, ok


def _page_px(matrix: np.ndarray) -> tuple[float, float]:
    """Approximate (width, height) in pixels of the whole page under ``matrix``."""
    corners = apply_homography(matrix, np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64))
    width = (np.linalg.norm(corners[1] - corners[0]) + np.linalg.norm(corners[2] - corners[3])) / 2
    height = (np.linalg.norm(corners[3] - corners[0]) + np.linalg.norm(corners[2] - corners[1])) / 2
    return float(width), float(height)


def _check_inside(matrix: np.ndarray, template: FormTemplate, shape: tuple[int, int]) -> None:
    """FormMismatch when the table or a header value box falls outside the image (cut off)."""
    height, width = shape
    boxes = {"the results table": template.table}
    boxes.update(
        {f"the {name} box": template.header[name] for name in ("votantes", "sobres", "diferencia")}
    )
    for name, box in boxes.items():
        corners = np.array([[box.x0, box.y0], [box.x1, box.y0], [box.x1, box.y1], [box.x0, box.y1]])
        xy = apply_homography(matrix, corners)
        margin = 2.0
        if (
            (xy[:, 0] < -margin).any()
            or (xy[:, 0] > width + margin).any()
            or ((xy[:, 1] < -margin).any() or (xy[:, 1] > height + margin).any())
        ):
            raise FormMismatch(f"the scan is cut off: {name} lies partly outside the image")


def warp_page(
    image: np.ndarray,
    registration: Registration,
    template: FormTemplate,
    dpi: float,
    region: Box | None = None,
) -> np.ndarray:
    """The scan resampled into the template's frame at ``dpi``: (h, w) uint8 grey.

    Without ``region`` the whole page ``template.page_size_px(dpi)``; with it only that box
    (page-relative), whose top-left pixel is the page pixel ``region.to_pixels(W, H)[:2]``.
    Outside the scan is white.
    """
    grey = as_grey(image)
    page_w, page_h = template.page_size_px(dpi)
    x0, y0, x1, y1 = (0, 0, page_w, page_h) if region is None else region.to_pixels(page_w, page_h)
    # page pixels (X, Y) of the output -> page-relative -> scan
    to_relative = np.array([[1 / page_w, 0, x0 / page_w], [0, 1 / page_h, y0 / page_h], [0, 0, 1]])
    matrix = registration.homography @ to_relative
    return cv2.warpPerspective(
        grey,
        matrix,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=255,
    )
