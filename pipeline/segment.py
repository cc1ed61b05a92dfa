"""Segmentation: one value cell -> the digit images of the number written in it.

Input contract (``segment_cell``): one cell crop AFTER ruled-line removal, a 2-D array
``(H, W)``: ``uint8`` grey with dark ink on light paper (light ink on a dark background is
detected by the median and inverted), or ``bool`` with ``True`` = ink.

Steps, each a small function below:

1. ink map: ``ink = paper - grey`` (0 = paper, 255 = full ink); ink pixels are those above
   ``max(MIN_INK, INK_SHARE * strongest ink)``.
2. struck-through numbers: a thin horizontal run crossing the whole number in its middle band
   is recorded (``struck_through``) and erased so the digits under it can still be read.
   A piece crossed out by a line or an X beside other, unstruck digits (a correction) is
   dropped after step 4 and the cell flagged ``struck_through`` (``_struck_out_groups``).
3. ruled-line remnants: long runs along the cell's edges are erased, even where they touch a
   digit (``strip_edge_lines``); connected components (8-connected) follow, and long thin
   pieces lying along the edges are dropped.
4. broken strokes are merged: pieces overlapping in x (the bar of a 7, a 5's flag, the up-stroke
   of a 1 drawn apart from the stem), then small pieces close to a digit; isolated specks dropped.
5. touching digits: a piece that may hold several digits gets candidate splits (1..4 digits)
   along least-ink seams found by dynamic programming (a seam may bend, so slanted strokes are
   cut where they are thinnest), scored by a geometric log prior: the digit count given the
   piece's upright (deslanted) width/height (log-normal per count, measured on MNIST), cuts
   that cross more than one stroke or a closed loop penalised, parts that do not look like one
   digit penalised. Option 0 is the geometric guess; ``choose_splits`` lets the digit
   classifier weigh the options (recognition-driven check) and keeps their probabilities.
   With ``whole_first`` (the pipeline's way) a piece that could be one digit is offered whole
   first and cut only when the classifier does not read it surely whole (``cut_unless_sure``);
   a piece read surely whole keeps its whole option alone (``sure_whole``), and one whose best
   reading holds a "not a digit" part is cut again (``rejected``, ``resplit``).

Output crops (``DigitCrop.image``) are ink intensity, WHITE INK ON BLACK (0 = paper), masked to
the digit's own pixels and the faint edge of its strokes (the ink within EDGE_PX of them too
light for the mask, as MNIST digits have it; ``_piece_ink``), padded with background, ready for
``pipeline.reframe.reframe_digit``. ``DigitCrop.box`` is the strokes' own tight box.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from pipeline.decode import NOT_A_DIGIT
from pipeline.errors import BadInput
from pipeline.quantiles import (
    histogram_median_below,
    histogram_percentile,
    median,
)

# Ink must be this many grey levels darker than the paper to count at all (scanner noise).
MIN_INK = 60
# ... and at least this share of the cell's strongest ink (anti-aliased edges are not ink).
INK_SHARE = 0.35
# A piece keeps the fainter ink this many pixels around its strokes (their anti-aliased
# edge; see ``_piece_ink``), where at least this many grey levels darker than the paper.
EDGE_PX = 2
EDGE_MIN_INK = 15
# A digit is about this wide for its height (MNIST digits: 0.3 for a 1 up to ~1.0 for a 0).
DIGIT_ASPECT = 0.7
# Most digits a single connected piece is split into.
MAX_SPLIT = 4

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in cell pixels, x1/y1 exclusive


@dataclass(frozen=True)
class DigitCrop:
    """One digit: ``image`` (h, w) uint8 ink intensity, white ink on black, padded with
    background on every side; ``box`` its tight ink box (x0, y0, x1, y1) in cell pixels."""

    image: np.ndarray
    box: Box


@dataclass(frozen=True)
class Piece:
    """One connected (after merging) piece of ink and the ways it may be read.

    ``options[k]`` is one way to cut the piece into digits (left to right); option 0 is the
    geometric guess. ``log_priors[k]`` is a geometric plausibility score (0 = plausible,
    negative = odd digit shapes), used with the classifier's confidence by ``choose_splits``.
    """

    options: tuple[tuple[DigitCrop, ...], ...]
    log_priors: tuple[float, ...]
    box: Box
    # Set by choose_splits: each option's probability given the classifier, options sorted by
    # it (best first, options under MIN_OPTION_WEIGHT dropped). Empty = not yet decided.
    weights: tuple[float, ...] = ()
    # What the options were cut from (``split_options``), for cutting again (``resplit``):
    # the strokes (h, w) float32, their faint edge, and the box's (x, y) in the cell.
    ink: np.ndarray | None = field(default=None, compare=False, repr=False)
    edge: Edge | None = field(default=None, compare=False, repr=False)
    origin: tuple[int, int] = field(default=(0, 0), compare=False, repr=False)
    # Two pieces offered as one (``_halves_or_whole``): only a classifier that can answer "not
    # a digit" may read them whole (``choose_splits`` keeps them apart otherwise).
    joined: bool = field(default=False, compare=False, repr=False)
    # Offered whole, its cuts not made yet (``split_options(whole_first=True)``): they are made
    # by ``cut_unless_sure`` once the classifier has read the whole.
    uncut: bool = field(default=False, compare=False, repr=False)

    @property
    def ambiguous(self) -> bool:
        """True while the classifier still has to choose among several cuts."""
        return len(self.options) > 1 and not self.weights

    @property
    def confidence(self) -> float:
        """Probability that option 0 is the right cut (1.0 for an unambiguous piece)."""
        return self.weights[0] if self.weights else 1.0


@dataclass(frozen=True)
class CellSegmentation:
    """Result of ``segment_cell``.

    pieces: ink pieces left to right (each with its split options).
    struck_through: a stroke crossed out the whole number (the digits under it are still
    given), or a crossed-out number beside its correction was dropped (in ``dropped``).
    ink_fraction: share of the cell's pixels that are ink (before cleaning), 0..1.
    dropped: boxes of the pieces dropped as specks or ruled-line remnants (for debug views).
    """

    pieces: tuple[Piece, ...]
    struck_through: bool
    ink_fraction: float
    dropped: tuple[Box, ...] = field(default=())

    @property
    def digits(self) -> list[DigitCrop]:
        """The digits of the current choice (option 0 of every piece), left to right."""
        return [digit for piece in self.pieces for digit in piece.options[0]]

    @property
    def is_empty(self) -> bool:
        return not self.pieces

    @property
    def ambiguous(self) -> bool:
        return any(piece.ambiguous for piece in self.pieces)

    @property
    def split_confidence(self) -> float:
        """Probability that every piece was cut into the right digits (product over pieces)."""
        return float(np.prod([piece.confidence for piece in self.pieces]))


# --------------------------------------------------------------------------- ink map


def ink_map(cell: np.ndarray) -> np.ndarray:
    """(H, W) bool/uint8 cell -> (H, W) float32 ink intensity, 0 = paper, 255 = full ink."""
    array = np.asarray(cell)
    if array.ndim != 2 or array.size == 0:
        raise BadInput(f"cell must be a non-empty 2-D (H, W) array, got shape {array.shape}")
    if array.dtype == np.uint8:
        ink, _ = _uint8_ink(array)
        return ink
    if array.dtype == bool:
        return array.astype(np.float32) * 255.0
    if not np.issubdtype(array.dtype, np.number):
        raise BadInput(f"cell must be numeric or bool, got dtype {array.dtype}")
    grey = array.astype(np.float32)
    if grey.max() <= 1.0 and np.issubdtype(array.dtype, np.integer):
        grey = grey * 255.0
    if float(np.median(grey)) < 128.0:  # light ink on a dark background
        grey = 255.0 - grey
    paper = float(np.percentile(grey, 90))
    return np.clip(paper - grey, 0.0, 255.0)


def ink_mask(ink: np.ndarray) -> np.ndarray:
    """(H, W) float ink -> (H, W) bool: pixels dark enough to be pen strokes."""
    strongest = float(np.percentile(ink, 99.9)) if ink.size > 1000 else float(ink.max())
    threshold = max(MIN_INK, INK_SHARE * strongest)
    return ink >= threshold


def _ink_and_mask(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ink_map`` and ``ink_mask`` of one cell: (H, W) float32 ink, (H, W) bool mask. For a
    uint8 cell both are taken from its 256-level histogram (the same figures as ``ink_map``
    and ``ink_mask``, without sorting the pixels twice)."""
    array = np.asarray(cell)
    if array.ndim != 2 or array.size == 0 or array.dtype != np.uint8:
        ink = ink_map(array)
        return ink, ink_mask(ink)
    ink, (counts, levels) = _uint8_ink(array)
    if ink.size > 1000:
        strongest = histogram_percentile(counts, levels, 99.9)
    else:
        strongest = float(levels[counts > 0].max())
    threshold = max(MIN_INK, INK_SHARE * strongest)
    return ink, ink >= threshold


def _uint8_ink(array: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """``ink_map`` of a (H, W) uint8 cell worked out per grey level: each of the 256 levels'
    grey and ink values are computed as ``ink_map`` computes them per pixel, the median and
    the paper's percentile come from the level histogram. Returns the (H, W) float32 ink and
    (counts (256,) pixels per level, ink (256,) float32 per level)."""
    counts = np.bincount(array.ravel(), minlength=256)
    grey = np.arange(256, dtype=np.float32)
    if array.max() <= 1:
        grey = grey * 255.0
    if histogram_median_below(counts, grey, 128.0):  # light ink on a dark background
        grey = 255.0 - grey
    paper = histogram_percentile(counts, grey, 90)
    ink_levels = np.clip(paper - grey, 0.0, 255.0)
    return cv2.LUT(array, ink_levels), (counts, ink_levels)  # ink_levels[array], faster


# --------------------------------------------------------------------------- strike-through


def _longest_runs(mask: np.ndarray, gap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: length, start and end (exclusive) of the longest run of ink, gaps <= gap px
    bridged. Returns three (H,) int arrays."""
    closed = np.ascontiguousarray(mask, dtype=np.uint8)
    if gap > 0:
        kernel = np.ones((1, gap + 1), np.uint8)
        closed = cv2.morphologyEx(closed, cv2.MORPH_CLOSE, kernel)
    height = mask.shape[0]
    lengths = np.zeros(height, int)
    starts = np.zeros(height, int)
    ends = np.zeros(height, int)
    # All rows at once: pad each row with a 0 on both sides so every run has a rising edge
    # (+1) and a falling edge (-1) in the same row; in row-major order the k-th rising edge
    # pairs with the k-th falling edge.
    padded = np.zeros((height, closed.shape[1] + 2), np.int8)
    padded[:, 1:-1] = closed != 0
    steps = np.diff(padded, axis=1)
    run_rows, run_starts = np.nonzero(steps == 1)
    run_ends = np.nonzero(steps == -1)[1]
    if run_rows.size == 0:
        return lengths, starts, ends
    run_lengths = run_ends - run_starts
    row_best = np.zeros(height, run_lengths.dtype)
    np.maximum.at(row_best, run_rows, run_lengths)
    # the first run of each row that reaches the row's longest length (as np.argmax would)
    candidates = np.flatnonzero(run_lengths == row_best[run_rows])
    candidate_rows = run_rows[candidates]
    first = np.ones(candidates.size, bool)
    first[1:] = candidate_rows[1:] != candidate_rows[:-1]
    chosen = candidates[first]
    rows = run_rows[chosen]
    lengths[rows] = run_lengths[chosen]
    starts[rows] = run_starts[chosen]
    ends[rows] = run_ends[chosen]
    return lengths, starts, ends


# Where a strike through a whole number runs, as shares of the ink's height from its top. A
# wide 2's flat base (with the loop some writers add under it) lies at 70-80% of its height.
STRIKE_BAND = (0.3, 0.7)


def find_strike(mask: np.ndarray) -> tuple[int, int] | None:
    """Rows (r0, r1) of a stroke crossing out the whole number, or None.

    A strike is a thin band of rows whose longest (gap-bridged) horizontal run covers >= 85%
    of the ink's horizontal extent and is at least 1.1x the ink's height (longer than the
    bar of a 7 or a 4, which are about half a digit's height, and than most single digits are
    wide), lying in the middle 30-70% of the ink's height (``STRIKE_BAND``: a 5's flag, a
    7's top or a 2's base are at the top or bottom), and sticking out at least max(2 px, 5%
    of the height) beyond the rest of the ink on one side. A strike across a single narrow
    digit (a 1) is not told from a 7's or 4's bar and is missed; a wide 4's bar that sticks
    out past its stem is taken for a strike (the cell is flagged for review).
    """
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size < 4:
        return None
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    left, right = int(cols[0]), int(cols[-1]) + 1
    ink_h, ink_w = bottom - top, right - left
    needed = max(0.85 * ink_w, 1.1 * ink_h)
    if mask.sum(axis=1).max() < 0.7 * needed:  # no row holds enough ink for such a run
        return None
    lengths, starts, ends = _longest_runs(mask, gap=max(1, ink_h // 15))
    long_rows = np.flatnonzero(lengths >= needed)
    if long_rows.size == 0:
        return None
    r0, r1 = int(long_rows[0]), int(long_rows[-1]) + 1
    thin = (r1 - r0) <= max(2, 0.2 * ink_h) and (r1 - r0) == long_rows.size
    middle = top + STRIKE_BAND[0] * ink_h <= (r0 + r1) / 2 <= top + STRIKE_BAND[1] * ink_h
    if not (thin and middle):
        return None
    # A pen crossing out a number overshoots it on at least one side; a digit's own middle
    # stroke (a 2's or a 7's bar) ends where the digit does.
    rest = mask.copy()
    spread = max(2, round(0.1 * ink_h))  # a slanted strike's rows that fell short of `needed`
    rest[max(0, r0 - spread) : r1 + spread] = False
    rest_cols = np.flatnonzero(rest.any(axis=0))
    if rest_cols.size == 0:
        return None
    run_start, run_end = int(starts[long_rows].min()), int(ends[long_rows].max())
    overshoot = max(int(rest_cols[0]) - run_start, run_end - int(rest_cols[-1]) - 1)
    return (r0, r1) if overshoot >= max(2, 0.05 * ink_h) else None


# --------------------------------------------------------------------------- components


@dataclass
class _Group:
    """A set of component labels treated as one piece, with its bounding box and ink area."""

    labels: list[int]
    x0: int
    y0: int
    x1: int
    y1: int
    area: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def absorb(self, other: _Group) -> None:
        self.labels += other.labels
        self.x0, self.y0 = min(self.x0, other.x0), min(self.y0, other.y0)
        self.x1, self.y1 = max(self.x1, other.x1), max(self.y1, other.y1)
        self.area += other.area


def _without_remnants(
    groups: list[_Group], height: int, width: int, lines: Box | None
) -> tuple[list[_Group], list[_Group]]:
    """(the groups that are not line remnants, the remnants), each in the groups' order."""
    kept: list[_Group] = []
    remnants: list[_Group] = []
    for group in groups:
        (remnants if _is_line_remnant(group, height, width, lines) else kept).append(group)
    return kept, remnants


def _is_line_remnant(group: _Group, height: int, width: int, lines: Box | None = None) -> bool:
    """A long thin piece lying along a cell edge: what ruled-line removal left behind.
    With ``lines`` (see ``strip_edge_lines``), also a thin piece (after merging: a column of
    dots) lying on one of the cell's lines."""
    if lines is not None:
        x_left, y_top, x_right, y_bottom = lines
        cell_h = max(1, y_bottom - y_top)
        reach_x, reach_y = max(2, round(0.03 * width)), max(2, round(0.06 * height))
        on_vertical = any(
            x - reach_x <= group.x0 and group.x1 <= x + reach_x + 1 for x in (x_left, x_right)
        )
        if on_vertical and group.height >= 0.5 * cell_h:
            return True
        on_horizontal = any(
            y - reach_y <= group.y0 and group.y1 <= y + reach_y + 1 for y in (y_top, y_bottom)
        )
        if on_horizontal and group.width >= max(3 * group.height, 0.5 * cell_h):
            return True
    margin_y = max(2, round(0.08 * height))
    margin_x = max(2, round(0.08 * width))
    thin_h = group.height <= max(3, 0.1 * height)
    if thin_h and group.width >= 3 * group.height:
        along_edge = group.y0 <= margin_y or group.y1 >= height - margin_y
        if along_edge or group.width >= 0.6 * width:
            return True
    thin_w = group.width <= max(3, 0.06 * height)
    if thin_w and group.height >= max(3 * group.width, 0.6 * height):
        return group.x0 <= margin_x or group.x1 >= width - margin_x
    return False


def strip_edge_lines(mask: np.ndarray, lines: Box | None = None) -> np.ndarray:
    """Erase what is left of the cell's ruled lines even where it touches a digit.

    lines: where the cell's ruled lines run in this crop, (x_left, y_top, x_right, y_bottom)
    in crop pixels (a crop cut with a margin around the cell); None = at the crop's edges.
    Near each horizontal line (+-max(2, 6% of the height) rows), horizontal runs at least
    max(25% of the cell's width, its height) long are erased; near each vertical line
    (+-max(2, 3% of the width) columns), vertical runs at least 70% of the cell's height; runs
    bridge gaps up to 20% of the cell's height (dotted lines). When ``lines`` is None: the
    outer 12% of the rows, runs max(30% of the width, 80% of the height), the outer 6% of
    the columns, runs 70% of the height, gaps up to 3 px. A digit's own strokes are seldom
    that long (a 5's flag, a 7's bar are about half a digit wide). (H, W) bool -> copy."""
    height, width = mask.shape
    out = mask.copy()
    if lines is None:
        band_y, band_x = max(2, round(0.12 * height)), max(2, round(0.06 * width))
        row_bands = [(0, band_y), (height - band_y, height)]
        col_bands = [(0, band_x), (width - band_x, width)]
        cell_h = height
        need_x = max(0.3 * width, 0.8 * height)
        gap = 3
    else:
        x_left, y_top, x_right, y_bottom = lines
        reach_y, reach_x = max(2, round(0.06 * height)), max(2, round(0.03 * width))
        row_bands = [(y - reach_y, y + reach_y + 1) for y in (y_top, y_bottom)]
        col_bands = [(x - reach_x, x + reach_x + 1) for x in (x_left, x_right)]
        cell_h = max(1, y_bottom - y_top)
        need_x = max(0.25 * (x_right - x_left), 1.0 * cell_h)
        gap = max(3, round(0.2 * cell_h))  # dotted remnants of halftone lines
    for lo, hi in row_bands:
        lo, hi = max(0, lo), min(height, hi)
        if hi <= lo or not mask[lo:hi].any():
            continue
        lengths, starts, ends = _longest_runs(mask[lo:hi], gap=gap)
        for row in np.flatnonzero(lengths >= need_x):
            out[lo + row, starts[row] : ends[row]] = False
    need_y = 0.7 * cell_h
    for lo, hi in col_bands:
        lo, hi = max(0, lo), min(width, hi)
        if hi <= lo or not mask[:, lo:hi].any():
            continue
        lengths, starts, ends = _longest_runs(mask[:, lo:hi].T, gap=gap)
        for col in np.flatnonzero(lengths >= need_y):
            out[starts[col] : ends[col], lo + col] = False
    return out


def _x_overlap(a: _Group, b: _Group) -> int:
    return min(a.x1, b.x1) - max(a.x0, b.x0)


def _stacked(a: _Group, b: _Group) -> bool:
    """One piece above the other, close, together narrow: a stroke broken across (a slanted 1
    whose halves barely overlap in x). Side-by-side digits share most of their rows instead."""
    y_overlap = min(a.y1, b.y1) - max(a.y0, b.y0)
    if y_overlap > 0.3 * min(a.height, b.height):
        return False
    tall = max(a.y1, b.y1) - min(a.y0, b.y0)
    wide = max(a.x1, b.x1) - min(a.x0, b.x0)
    gap_y = max(0, -y_overlap)
    gap_x = max(0, -_x_overlap(a, b))
    return gap_y <= 0.2 * tall and gap_x <= max(2, 0.05 * tall) and wide <= 0.6 * tall


def _merge_overlapping(groups: list[_Group]) -> list[_Group]:
    """Merge pieces that share >= half of the narrower one's width, or that are ``_stacked``:
    one digit drawn in parts."""
    merged = True
    while merged:
        merged = False
        groups.sort(key=lambda g: g.x0)
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                a, b = groups[i], groups[j]
                if _x_overlap(a, b) >= 0.5 * min(a.width, b.width) or _stacked(a, b):
                    a.absorb(b)
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    return groups


def _attach_small(groups: list[_Group], reach: float = 0.15) -> tuple[list[_Group], list[_Group]]:
    """Small pieces (< 50% of the tallest) join the nearest piece when within ``reach`` x the
    tallest height; the tiny and far ones are dropped as specks. Returns (kept, dropped)."""
    if not groups:
        return groups, []
    tallest = max(g.height for g in groups)
    big = [g for g in groups if g.height >= 0.5 * tallest]
    small = [g for g in groups if g.height < 0.5 * tallest]
    dropped = []
    for piece in sorted(small, key=lambda g: -g.area):
        best, best_gap = None, math.inf
        for target in big:
            gap_x = max(0, max(target.x0, piece.x0) - min(target.x1, piece.x1))
            gap_y = max(0, max(target.y0, piece.y0) - min(target.y1, piece.y1))
            gap = math.hypot(gap_x, gap_y)
            if gap < best_gap:
                best, best_gap = target, gap
        if best is not None and best_gap <= reach * tallest:
            best.absorb(piece)
        elif piece.height >= 0.3 * tallest and piece.area >= 0.04 * tallest**2:
            big.append(piece)  # a small but real mark: let the classifier judge it
        else:
            dropped.append(piece)
    return sorted(big, key=lambda g: g.x0), dropped


# --------------------------------------------------------------------------- splitting


# Cost of a cut moving one column sideways per row, in ink units (255 = one full ink pixel):
# cuts bend around strokes but do not wander along the background.
SIDESTEP_COST = 25.0


def _seams(ink: np.ndarray, count: int) -> list[np.ndarray]:
    """Up to ``count`` top-to-bottom cuts through ``ink`` (h, w) crossing the least ink.

    One dynamic-programming pass over the piece (a seam moves at most one column per row,
    SIDESTEP_COST per move, confined to the inner 10-90% of the width) gives the cheapest seam
    ending at every bottom column; the seams ending at local minima of that cost are traced
    back, cheapest first, keeping those at least 2 px apart on average. Returns a list of (h,)
    int arrays (column per row), sorted left to right.
    """
    height, width = ink.shape
    lo, hi = max(1, round(0.1 * width)), min(width - 1, round(0.9 * width))
    if hi - lo < 1:
        return []
    cost = ink[:, lo:hi].astype(np.float64) + 1.0
    total = cost.copy()
    from_left = np.full(cost.shape[1], np.inf)
    from_right = np.full(cost.shape[1], np.inf)
    best = np.empty(cost.shape[1])
    for row in range(1, height):
        prev = total[row - 1]
        np.add(prev[:-1], SIDESTEP_COST, out=from_left[1:])
        np.add(prev[1:], SIDESTEP_COST, out=from_right[:-1])
        np.minimum(from_left, from_right, out=best)
        np.minimum(prev, best, out=best)
        total[row] += best
    # The moves, all rows at once from the finished totals (the same sums and minima as above).
    # -1: came from the left neighbour, +1: from the right, 0: straight down (ties)
    moves = np.zeros(cost.shape, np.int8)
    if height > 1:
        prev_rows = total[:-1]
        left_rows = np.full(prev_rows.shape, np.inf)
        right_rows = np.full(prev_rows.shape, np.inf)
        left_rows[:, 1:] = prev_rows[:, :-1] + SIDESTEP_COST
        right_rows[:, :-1] = prev_rows[:, 1:] + SIDESTEP_COST
        best_rows = np.minimum(prev_rows, np.minimum(left_rows, right_rows))
        moves[1:] = np.where(best_rows == prev_rows, 0, np.where(best_rows == left_rows, -1, 1))
    end = total[-1]
    padded = np.concatenate([[np.inf], end, [np.inf]])
    minima = np.flatnonzero((end <= padded[:-2]) & (end <= padded[2:]))
    minima = minima[np.argsort(end[minima], kind="stable")]  # cheapest first, ties left first
    move_rows = moves.tolist()
    seams: list[np.ndarray] = []
    for column in minima.tolist():
        steps = [column] * height
        for row in range(height - 1, 0, -1):
            steps[row - 1] = steps[row] + move_rows[row][steps[row]]
        path = np.array(steps, int)
        if all(np.mean(np.abs(path - other)) >= 2.0 for other in seams):
            seams.append(path)
        if len(seams) == count:
            break
    return sorted((seam + lo for seam in seams), key=lambda seam: float(seam.mean()))


def _crossings(ink: np.ndarray, path: np.ndarray) -> int:
    """How many separate strokes the cut path crosses (runs of ink along it, top to bottom)."""
    along = ink[np.arange(ink.shape[0]), path] > 0
    return int(np.count_nonzero(along[1:] & ~along[:-1]) + int(along[0]))


@dataclass(frozen=True)
class Edge:
    """The faint edge around a piece's strokes (see ``_piece_ink``), in the piece's box grown
    by up to EDGE_PX on each side: ``ink`` (H, W) float32, the strokes and their edge;
    ``strokes`` (H, W) float32, the strokes alone; ``offset`` (x, y) of the piece's own box
    within it."""

    ink: np.ndarray
    strokes: np.ndarray
    offset: tuple[int, int]


@dataclass(frozen=True)
class _Part:
    """One part of a cut piece before it becomes a ``DigitCrop`` (only the parts of the options
    kept are made into crops): its strokes (h, w) in the piece's box, the region between its
    cuts (None = the whole piece), and its tight box in the piece's box."""

    ink: np.ndarray
    inside: np.ndarray | None
    box: Box


def _part_between(
    piece_ink: np.ndarray, left: np.ndarray | None, right: np.ndarray | None
) -> _Part | None:
    """The part of ``piece_ink`` (h, w) between two cut paths ((h,) column per row; None = the
    piece's edge), cleaned of slivers; None when it has no ink."""
    height, width = piece_ink.shape
    columns = np.arange(width)[None, :]
    lo = np.zeros(height, int) if left is None else left
    hi = np.full(height, width) if right is None else right
    inside = (columns >= lo[:, None]) & (columns < hi[:, None])
    part = _drop_fragments(np.where(inside, piece_ink, 0.0))
    box = _ink_box(part)
    return None if box is None else _Part(part, inside, box)


def _ink_box(ink: np.ndarray) -> Box | None:
    """Tight box (x0, y0, x1, y1) of the ink in ``ink`` (h, w); None when it holds fewer than
    4 pixels' worth of rows x columns."""
    x, y, width, height = cv2.boundingRect((ink != 0).view(np.uint8))  # 1/3 of np.any per axis
    if width == 0:
        return None
    # One row or column of ink: its rows x columns is its pixel count.
    if (width == 1 or height == 1) and np.count_nonzero(ink) < 4:
        return None
    return x, y, x + width, y + height


def _drop_fragments(part: np.ndarray) -> np.ndarray:
    """Remove slivers a cut left over from the neighbour digit (< 6% of the part's ink)."""
    mask = (part > 0).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 2:
        return part
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.concatenate([[False], areas >= 0.06 * areas.sum()])
    return np.where(keep[labels], part, 0.0)


def _crop_from_ink(
    ink: np.ndarray,
    origin: tuple[int, int],
    edge: Edge | None = None,
    inside: np.ndarray | None = None,
) -> DigitCrop | None:
    """Tight ink box of ``ink`` (local coordinates, origin = its (x, y) in the cell), padded.

    With ``edge``: the image also holds the faint pixels of ``edge.ink`` within EDGE_PX of
    ``ink``'s strokes that are no stroke of the piece and lie ``inside`` the part's cuts
    (extended outwards past the piece's box). ``box`` stays the strokes' tight box either
    way (the digit's size and place, for the shape priors)."""
    local = _ink_box(ink)
    if local is None:
        return None
    x0, y0, x1, y1 = local
    box = (origin[0] + x0, origin[1] + y0, origin[0] + x1, origin[1] + y1)
    tight = ink[y0:y1, x0:x1] if edge is None else _with_edge(ink, edge, inside)
    pad = max(2, round(0.1 * max(tight.shape)))
    image = np.zeros((tight.shape[0] + 2 * pad, tight.shape[1] + 2 * pad), np.uint8)
    image[pad:-pad, pad:-pad] = np.clip(tight, 0, 255)
    return DigitCrop(image=image, box=box)


_EDGE_KERNEL = np.ones((2 * EDGE_PX + 1, 2 * EDGE_PX + 1), np.uint8)


def _with_edge(part: np.ndarray, edge: Edge, inside: np.ndarray | None) -> np.ndarray:
    """``part`` (h, w, the piece's box) with its strokes' faint edge from ``edge``: returns
    the tight box of the strokes and their edge, in ``edge.ink``'s grown frame."""
    height, width = part.shape
    ox, oy = edge.offset
    strokes = np.zeros(edge.ink.shape, np.float32)
    strokes[oy : oy + height, ox : ox + width] = part
    near = cv2.dilate((strokes > 0).view(np.uint8), _EDGE_KERNEL)
    faint = (near > 0) & (edge.strokes <= 0) & (edge.ink > 0)
    if inside is not None:  # beyond the piece's box, the nearest row / column of `inside`
        grown_h, grown_w = edge.ink.shape
        row_of = np.clip(np.arange(grown_h) - oy, 0, height - 1)
        col_of = np.clip(np.arange(grown_w) - ox, 0, width - 1)
        faint &= inside[row_of[:, None], col_of[None, :]]
    both = np.where(faint, edge.ink, strokes)
    rows = np.flatnonzero(both.any(axis=1))
    cols = np.flatnonzero(both.any(axis=0))
    return both[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _shape_log_prior(boxes: Sequence[Box], piece_height: int) -> float:
    """Geometric plausibility of the parts: each should look like one digit (aspect
    0.12..1.15 of its height, height >= 55% of the piece's). 0 when all parts do."""
    score = 0.0
    for x0, y0, x1, y1 in boxes:
        aspect = (x1 - x0) / max(1, y1 - y0)
        if aspect > 1.15:
            score -= 3.0 * (aspect - 1.15)
        if aspect < 0.12:
            score -= 1.0
        height_share = (y1 - y0) / max(1, piece_height)
        if height_share < 0.75:  # touching digits are both about the piece's height
            score -= 8.0 * (0.75 - height_share)
    return score


# Width/height of a piece holding n handwritten digits (ink boxes, MNIST train digits written
# side by side 2 px apart on average): log-normal, median and spread of log(aspect) per n.
ASPECT_MEDIAN = {1: 0.80, 2: 1.45, 3: 2.23, 4: 3.0}
ASPECT_LOG_SD = {1: 0.24, 2: 0.19, 3: 0.15, 4: 0.13}


def _upright_width(ink: np.ndarray) -> float:
    """Width (px) of the ink once its slant is sheared away: a slanted 0 is as wide as a
    pair of upright digits, its upright width is not. The slant is the ink's x-on-y regression
    slope (capped at 0.6 px per px), measured on pixels weighted by ink."""
    on = ink > 0
    ys, xs = np.nonzero(on)
    if ys.size < 3:
        return float(ink.shape[1])
    weights = ink[on].astype(np.float64)
    total = weights.sum()  # np.average(a, weights=weights), its sum computed once

    def average(values: np.ndarray) -> np.float64:
        return np.multiply(values, weights, dtype=np.float64).sum() / total

    y_mean = average(ys)
    x_mean = average(xs)
    dy = ys - y_mean
    var_y = average(dy**2)
    if var_y <= 0:
        return float(ink.shape[1])
    slope = average((xs - x_mean) * dy) / var_y
    slope = float(np.clip(slope, -0.6, 0.6))
    upright = xs - slope * (ys - y_mean)
    return float(min(ink.shape[1], upright.max() - upright.min() + 1))


def _count_log_prior(aspect: float, count: int) -> float:
    """log P(width/height | count digits) + log of the spread normaliser, minus SPLIT_PENALTY
    per cut: how well a piece's shape fits ``count`` digits side by side. The log-normal
    figures (``ASPECT_MEDIAN``, ``ASPECT_LOG_SD``) were measured on MNIST train digits
    (1-99.9th percentiles of a single digit's aspect: 0.4-1.67, median 0.8; two digits 2 px
    apart: median 1.45; three: 2.23)."""
    z = (math.log(max(aspect, 1e-3)) - math.log(ASPECT_MEDIAN[count])) / ASPECT_LOG_SD[count]
    return (
        -0.5 * z * z
        - math.log(ASPECT_LOG_SD[count] / ASPECT_LOG_SD[1])
        - SPLIT_PENALTY * (count - 1)
    )


def _cut_ink_log_prior(
    ink: np.ndarray, path: np.ndarray, stroke: float, holes: np.ndarray
) -> float:
    """Penalty for cuts that cross more strokes than one, run along a stroke (more ink pixels
    on the path than about one stroke width) or cross a closed loop (``holes``, the loop of a
    0, 6, 8 or 9; two touching digits seldom enclose one): all mean cutting through a digit."""
    rows = np.arange(ink.shape[0])
    crossings = _crossings(ink, path)
    on_ink = int(np.count_nonzero(ink[rows, path] > 0))
    penalty = CROSSING_PENALTY * max(0, crossings - 1) + 0.5 * max(0.0, on_ink / stroke - 1.5)
    if holes[rows, path].any():
        penalty += HOLE_PENALTY
    return -penalty


def _holes(ink: np.ndarray) -> np.ndarray:
    """(h, w) bool: background enclosed by ink (loops), ignoring pockets smaller than
    (0.15 h)^2 that touching strokes leave. A loop left open by a gap narrower than
    HOLE_GAP x h (a 0 whose ends do not quite meet) counts as closed."""
    size = max(3, round(HOLE_GAP * ink.shape[0]) | 1)  # closing bridges gaps below its size
    kernel = np.ones((size, size), np.uint8)
    closed = cv2.morphologyEx((ink > 0).astype(np.uint8), cv2.MORPH_CLOSE, kernel)
    background = np.pad(closed == 0, 1, constant_values=True).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=4)
    outside = labels[0, 0]
    min_area = (0.15 * ink.shape[0]) ** 2
    keep = np.zeros(count, bool)
    for label in range(1, count):
        keep[label] = label != outside and stats[label, cv2.CC_STAT_AREA] >= min_area
    return keep[labels][1:-1, 1:-1]


def _run_edges(ink: np.ndarray) -> np.ndarray:
    """(h, w + 1) int8 of an (h, w) ink image: +1 where a horizontal run of ink starts, -1
    just after it ends (each row padded with paper on both sides)."""
    padded = np.zeros((ink.shape[0], ink.shape[1] + 2), np.int8)
    padded[:, 1:-1] = ink > 0
    return np.diff(padded, axis=1)


def _stroke_width(ink: np.ndarray) -> float:
    """Median length of the horizontal ink runs: the pen's width in pixels."""
    edges = _run_edges(ink)
    starts, ends = np.nonzero(edges == 1), np.nonzero(edges == -1)
    lengths = ends[1] - starts[1]
    return max(1.0, median(lengths)) if lengths.size else 1.0


# Cutting a stroke more than once means cutting through a digit's body (a 3, 8, 0...).
CROSSING_PENALTY = 1.5
HOLE_PENALTY = 3.0
HOLE_GAP = 0.3
SPLIT_PENALTY = 1.0
MAX_OPTIONS = 6
OPTION_MARGIN = 5.0  # nats of geometric log prior below the best option
MIN_OPTION_WEIGHT = 0.01  # a cut less probable than this after classification is dropped


def split_options(
    piece_ink: np.ndarray,
    origin: tuple[int, int],
    force: bool = False,
    edge: Edge | None = None,
    whole_first: bool = False,
    whole_crop: DigitCrop | None = None,
) -> Piece:
    """Candidate ways to cut one piece (h, w) of ink into 1..MAX_SPLIT digits, best first.

    Cut candidates are the least-ink seams through the piece (``_seams``); every combination of
    up to MAX_SPLIT - 1 of them is an option, scored by a geometric log prior: digit count given
    the width/height ratio, penalties for cuts crossing more than one stroke or running along
    one (``_cut_ink_log_prior``), and the parts' shapes. The MAX_OPTIONS best within
    OPTION_MARGIN of the best are kept; option 0 is the best.
    Pieces narrower than 0.5 of their height are one digit.

    force: the classifier rejected every earlier cut ("not a digit", see ``resplit``), so
    it is cut even when narrow, and the digit count is not judged by the piece's width
    (touching digits written close and slanted are much narrower than MNIST's side by side).
    whole_first: a piece that may be cut but is not too wide for one digit (its whole stays
    within OPTION_MARGIN of any cut's count prior) is returned whole and ``uncut``: its cuts
    are made by ``cut_unless_sure`` only if the classifier does not read the whole surely as
    one digit (most pieces are one digit read surely; their cuts were a third of the
    segmentation's time and a third of the crops classified).
    whole_crop: the crop of the whole piece, already made (and classified) for its
    ``whole_first`` offer: the whole option reuses it.
    """
    height, width = piece_ink.shape
    whole_box = _ink_box(piece_ink)
    assert whole_box is not None  # a piece has ink by construction
    whole = _Part(piece_ink, None, whole_box)
    aspect = _upright_width(piece_ink) / max(1, height)

    def count_prior(count: int) -> float:
        return -SPLIT_PENALTY * (count - 1) if force else _count_log_prior(aspect, count)

    scored: list[tuple[float, tuple[_Part, ...]]] = [
        (count_prior(1) + _shape_log_prior([whole.box], height), (whole,))
    ]
    best_split = max(count_prior(n) for n in range(2, MAX_SPLIT + 1))
    may_cut = (force or aspect >= 0.5) and best_split >= scored[0][0] - OPTION_MARGIN
    if may_cut and whole_first and not force and scored[0][0] >= best_split - OPTION_MARGIN:
        crop = _crop_from_ink(piece_ink, origin, edge)
        assert crop is not None  # a piece has ink by construction
        return Piece(
            options=((crop,),),
            log_priors=(scored[0][0],),
            box=_offset(whole_box, origin),
            ink=piece_ink,
            edge=edge,
            origin=origin,
            uncut=True,
        )
    if may_cut:
        paths = _seams(piece_ink, 5)
        stroke = _stroke_width(piece_ink)
        holes = _holes(piece_ink)
        cut_priors = [_cut_ink_log_prior(piece_ink, p, stroke, holes) for p in paths]
        max_cuts = min(MAX_SPLIT - 1, max(1, round(aspect / (0.3 if force else 0.4)) - 1))
        parts: dict[tuple[int, int], _Part | None] = {}  # (left cut, right cut) -> part
        last = len(paths)  # index -1 = the piece's left side, last = its right side

        def part(i: int, j: int) -> _Part | None:
            if (i, j) not in parts:
                left = None if i < 0 else paths[i]
                right = None if j == last else paths[j]
                parts[(i, j)] = _part_between(piece_ink, left, right)
            return parts[(i, j)]

        for n_cuts in range(1, max_cuts + 1):
            for combo in itertools.combinations(range(len(paths)), n_cuts):
                cuts = [paths[i] for i in combo]
                if not all(np.all(a < b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)):
                    continue
                bounds = (-1, *combo, last)
                found = [part(i, j) for i, j in itertools.pairwise(bounds)]
                if any(p is None for p in found):
                    continue
                option = tuple(p for p in found if p is not None)
                prior = (
                    count_prior(n_cuts + 1)
                    + sum(cut_priors[i] for i in combo)
                    + _shape_log_prior([p.box for p in option], height)
                )
                scored.append((prior, option))
    if force and len(scored) > 1:
        scored = scored[1:]  # the whole was rejected: the margin counts from the best split
    scored.sort(key=lambda item: -item[0])
    # An option this far below the best cannot win unless the classifier all but rejects the
    # best (digit probability < e^-5 = 0.7%): not worth classifying.
    kept = [item for item in scored[:MAX_OPTIONS] if item[0] >= scored[0][0] - OPTION_MARGIN]
    crops: dict[int, DigitCrop] = {}  # id(part) -> its crop: options share parts, and crops
    if whole_crop is not None:
        crops[id(whole)] = whole_crop

    def crop_of(part: _Part) -> DigitCrop:
        if id(part) not in crops:
            crop = _crop_from_ink(part.ink, origin, edge, part.inside)
            assert crop is not None  # a part has ink by construction
            crops[id(part)] = crop
        return crops[id(part)]

    return Piece(
        options=tuple(tuple(crop_of(p) for p in option) for _, option in kept),
        log_priors=tuple(prior for prior, _ in kept),
        box=_offset(whole.box, origin),
        ink=piece_ink,
        edge=edge,
        origin=origin,
    )


def _offset(box: Box, origin: tuple[int, int]) -> Box:
    """``box`` in a piece's coordinates -> in the cell's (origin: the piece's (x, y))."""
    x0, y0, x1, y1 = box
    return origin[0] + x0, origin[1] + y0, origin[0] + x1, origin[1] + y1


def _not_a_digit(probs: np.ndarray) -> bool:
    """(C,) probabilities: the classifier's "not a digit" class (index 10) above one half."""
    return probs.shape[-1] > NOT_A_DIGIT and float(probs[NOT_A_DIGIT]) > 0.5


def rejected(piece: Piece, probs_of: Callable[[DigitCrop], np.ndarray]) -> bool:
    """True when the way ``piece`` would be read, its best option as ``choose_splits`` scores
    them (``option_scores``), holds a part the classifier reads as "not a digit": touching
    digits the geometric guess did not cut where they touch, worth ``resplit``. Such a part
    would be dropped from the number as a speck is: "107" read "7" when the touching "10"
    was one part that is no digit, though the whole read as some digit."""
    scores = option_scores(piece, lambda crop: float(digit_score(probs_of(crop)[None])[0]))
    best = piece.options[int(np.argmax(scores))]
    return any(_not_a_digit(probs_of(crop)) for crop in best)


# A piece the classifier reads whole as one digit at least this surely is not cut.
SURE_WHOLE = 0.99


def _surely_one_digit(probs: np.ndarray) -> bool:
    """(C,) probabilities: one digit class (0-9) at SURE_WHOLE or more."""
    return float(probs[:NOT_A_DIGIT].max()) >= SURE_WHOLE


def sure_whole(piece: Piece, probs_of: Callable[[DigitCrop], np.ndarray]) -> Piece:
    """``piece`` with its whole option alone when the classifier reads the whole as one digit
    (classes 0-9) with probability >= SURE_WHOLE; else ``piece`` unchanged.

    The cut options' geometric priors are fitted to MNIST's shapes, and a digit wider than
    those lost to them however surely it read: a wide 0 read "0" at 1.00 was cut into "6"
    "7" (0.76, 0.67) because a 1.7-wide single digit costs 5.7 nats of shape prior. Read
    surely whole, no cut is weighed against it. On 100 telegrams (seed 5), cells read with
    too many digits fell from 39 to 26 (MNIST digits) and from 35 to 25 (USPS).
    """
    if len(piece.options) < 2:
        return piece
    for prior, option in zip(piece.log_priors, piece.options, strict=True):
        if len(option) != 1:
            continue
        probs = probs_of(option[0])
        if piece.joined and probs.shape[-1] <= NOT_A_DIGIT:
            return piece  # no "not a digit" class: two pieces apart are never read whole
        if _surely_one_digit(probs):
            return replace(piece, options=(option,), log_priors=(prior,))
    return piece


def cut_unless_sure(piece: Piece, probs_of: Callable[[DigitCrop], np.ndarray]) -> Piece:
    """An ``uncut`` piece (``split_options(whole_first=True)``) read whole surely as one
    digit (SURE_WHOLE) stays whole; otherwise its cuts are made now, as ``split_options``
    makes them for any piece. Any other piece is returned as it is."""
    if not piece.uncut:
        return piece
    ((whole,),) = piece.options
    if _surely_one_digit(probs_of(whole)):
        return replace(piece, uncut=False)
    if piece.ink is None:
        raise ValueError("an uncut piece keeps its ink (split_options(whole_first=True))")
    return split_options(piece.ink, piece.origin, edge=piece.edge, whole_crop=whole)


def resplit(piece: Piece) -> Piece:
    """``piece`` read whole (its one-part options, as before) or cut as
    ``split_options(force=True)`` finds for its ink, in place of the earlier cuts."""
    if piece.ink is None:  # not made by split_options: nothing to cut again
        return piece
    wholes = [
        (prior, option)
        for prior, option in zip(piece.log_priors, piece.options, strict=True)
        if len(option) == 1
    ]
    forced = split_options(piece.ink, piece.origin, force=True, edge=piece.edge)
    splits = [
        (prior, option)
        for prior, option in zip(forced.log_priors, forced.options, strict=True)
        if len(option) > 1
    ]
    if not splits:
        return piece
    kept = wholes + splits
    return replace(
        piece,
        options=tuple(option for _, option in kept),
        log_priors=tuple(prior for prior, _ in kept),
    )


# --------------------------------------------------------------------------- struck-out pieces

# A strike line over part of a cell covers this share of its length with ink (1 px tolerance).
STRIKE_COVERAGE = 0.95
# ... and an X's two diagonals this share each.
CROSS_COVERAGE = 0.9
# A strike overshoots the digits it crosses by this share of their height on both sides.
LINE_OVERSHOOT = 0.05
# ... and is this close to horizontal (rise over run; ~14 degrees): a z-shaped 2 or a 8 lying
# on its side is steeper from end to end.
MAX_STRIKE_SLOPE = 0.25
# ... and reach within this share of the piece's smaller side (city-block) of its 4 corners.
CORNER_REACH = 0.15


def _coverage(ink: np.ndarray, start: tuple[float, float], end: tuple[float, float]) -> float:
    """Share of the straight segment start -> end ((x, y) pixels) lying on ``ink`` (h, w) bool
    (already widened by 1 px so a slightly wavy or anti-aliased stroke still counts)."""
    (xa, ya), (xb, yb) = start, end
    steps = int(max(abs(xb - xa), abs(yb - ya))) + 1
    xs = np.rint(np.linspace(xa, xb, steps)).astype(int)
    ys = np.rint(np.linspace(ya, yb, steps)).astype(int)
    return float(ink[ys, xs].mean())


def _end_row(column: np.ndarray) -> float:
    """Mean row of the ink in one column (h,) bool."""
    return float(np.flatnonzero(column).mean())


def _strike_line(own: np.ndarray) -> tuple[float, float] | None:
    """The rows (y at the left edge, y at the right edge) of a straight stroke running from a
    piece's (h, w) bool leftmost to its rightmost ink, or None: its ends are thin (the stroke
    alone: a 2's base or a 7's top reaching both ends is not), it is at most
    ``MAX_STRIKE_SLOPE`` from horizontal, crosses the middle 25-75% of the piece's height and
    ``STRIKE_COVERAGE`` of the segment between the ends' mean rows is ink."""
    height, width = own.shape
    left_end = own[:, :2].any(axis=1)
    right_end = own[:, -2:].any(axis=1)
    thin = max(4, round(0.2 * height))  # a pen stroke, seen across (a few px at 200 dpi)
    if left_end.sum() > thin or right_end.sum() > thin:  # an end that is not a thin stroke
        return None
    y_left, y_right = _end_row(left_end), _end_row(right_end)
    if abs(y_right - y_left) > MAX_STRIKE_SLOPE * width:
        return None
    if not 0.25 * height <= (y_left + y_right) / 2 <= 0.75 * height:
        return None
    if _coverage(_widen(own), (0, y_left), (width - 1, y_right)) < STRIKE_COVERAGE:
        return None
    return y_left, y_right


def _off_the_line(own: np.ndarray, line: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The ink of a piece (h, w) bool above and below its strike line (``_strike_line``), a
    band of 15% of the height around the line left out: the digits it crosses."""
    height, width = own.shape
    y_left, y_right = line
    band = max(2, round(0.15 * height))
    rows = np.arange(height)[:, None]
    line_rows = y_left + (y_right - y_left) * np.arange(width)[None, :] / max(1, width - 1)
    return own & (rows < line_rows - band), own & (rows > line_rows + band)


def _struck_by_line(own: np.ndarray, above: np.ndarray, below: np.ndarray) -> bool:
    """A piece (h, w) bool crossed out by one straight stroke (``_strike_line``; above and
    below: the ink off it, ``_off_the_line``) that has digits under it (ink both above and
    below it), overshoots them on both sides by ``LINE_OVERSHOOT`` of the height (a pen
    crossing out overshoots what it crosses; a digit's own stroke ends where the digit does),
    and is at least 1.1x the piece's height long (longer than the bar of a 7 or a 4, about
    half a digit's height, and than most single digits are wide). A single struck 1 has too
    little ink under the line for this: ``_struck_single_stroke``.
    """
    height, width = own.shape
    if width < 1.1 * height:
        return False
    if above.sum() < height or below.sum() < height:
        return False
    cols = np.flatnonzero((above | below).any(axis=0))
    needed = max(2.0, LINE_OVERSHOOT * height)
    return bool(cols[0] >= needed and width - 1 - cols[-1] >= needed)


# A struck 1 (a "+"): every row of the ink off the line spans at most this share of the
# piece's height beyond the pen's width (one stroke, slanted or with a flag) ...
ONE_STROKE_WIDTH = 0.35
# ... and where it meets the line the strike overshoots it on both sides by this share.
ONE_OVERSHOOT = 0.15


def _struck_single_stroke(
    own: np.ndarray, line: tuple[float, float], above: np.ndarray, below: np.ndarray
) -> bool:
    """A 1 crossed out by one straight stroke (a "+", which the classifier reads as a 4 at
    0.99): a strike line (``_strike_line``; above and below: the ink off it,
    ``_off_the_line``) with one stroke under it, reaching at least 15% of
    the height above and below the line, each row of it within ``ONE_STROKE_WIDTH`` of the
    height plus the pen's width; where it meets the line (its rows within a quarter of the
    height of the band left out around the line's middle row, ``_off_the_line``) one run of
    ink per row, overshot by the line on both sides by
    ``ONE_OVERSHOOT`` of the height. Not a 4: next to its bar a 4 has two strokes, its left
    branch and its stem; not a crossed 7: its top bar is wide."""
    height, width = own.shape
    reach = 0.15 * height
    if np.count_nonzero(above.any(axis=1)) < reach or np.count_nonzero(below.any(axis=1)) < reach:
        return False
    stroke = above | below
    rows = np.flatnonzero(stroke.any(axis=1))
    first = stroke[rows].argmax(axis=1)
    last = width - 1 - stroke[rows, ::-1].argmax(axis=1)
    if (last - first + 1).max() > ONE_STROKE_WIDTH * height + _stroke_width(stroke):
        return False
    middle = (line[0] + line[1]) / 2
    near = rows[np.abs(rows - middle) <= 0.25 * height + max(2, round(0.15 * height))]
    if near.size == 0:
        return False
    if (_run_edges(stroke[near]) == 1).sum(axis=1).max() > 1:  # two strokes in a row
        return False
    cols = np.flatnonzero(stroke[near].any(axis=0))
    needed = max(3.0, ONE_OVERSHOOT * height)
    return bool(cols[0] >= needed and width - 1 - cols[-1] >= needed)


def _struck_by_cross(own: np.ndarray) -> bool:
    """A piece (h, w) bool crossed out with an X: two straight strokes from corner to corner
    of the piece (top-left to bottom-right, bottom-left to top-right; the corners are the
    ink pixels farthest along each diagonal direction), each spanning >= 70% of the piece's
    height and >= 25% of it in width, ``CROSS_COVERAGE`` of each segment on ink. Digits' own
    strokes are curved or do not reach both opposite corners."""
    height, width = own.shape
    if height < 6 or width < 0.25 * height:
        return False
    reach = max(2.0, CORNER_REACH * min(height, width))
    r = int(reach) + 1
    if not (own[:r, :r].any() and own[-r:, -r:].any() and own[-r:, :r].any()):
        return False  # cheap test first: ink near three of the corners
    ys, xs = np.nonzero(own)
    top_left = int(np.argmin(xs + ys))
    bottom_right = int(np.argmax(xs + ys))
    bottom_left = int(np.argmin(xs - ys))
    top_right = int(np.argmax(xs - ys))
    # The strokes' ends are the piece's corners (a pen crossing out overshoots the digits);
    # a digit's outline is rounded there (an 8, a 3, a 6) or reaches only some corners.
    for index, (corner_x, corner_y) in zip(
        (top_left, bottom_right, bottom_left, top_right),
        ((0, 0), (width - 1, height - 1), (0, height - 1), (width - 1, 0)),
        strict=True,
    ):
        if abs(xs[index] - corner_x) + abs(ys[index] - corner_y) > reach:
            return False
    wide = _widen(own)
    for a, b, down in ((top_left, bottom_right, True), (bottom_left, top_right, False)):
        dx, dy = xs[b] - xs[a], ys[b] - ys[a]
        if dx < 0.25 * height or abs(dy) < 0.7 * height or (dy > 0) != down:
            return False
        if _coverage(wide, (xs[a], ys[a]), (xs[b], ys[b])) < CROSS_COVERAGE:
            return False
    return True


def is_struck_out(own: np.ndarray) -> bool:
    """True when a piece of ink (h, w) bool (its own pixels, cropped to its box) is a number
    crossed out by a strike line or an X (``_struck_by_line``, ``_struck_single_stroke``,
    ``_struck_by_cross``)."""
    line = _strike_line(own) if own.shape[0] >= 6 else None
    if line is not None:
        above, below = _off_the_line(own, line)
        if _struck_by_line(own, above, below) or _struck_single_stroke(own, line, above, below):
            return True
    return _struck_by_cross(own)


def _widen(own: np.ndarray) -> np.ndarray:
    """(h, w) bool ink grown by 1 px (3x3): a slightly wavy or anti-aliased stroke still
    lies on a straight segment drawn along it."""
    return cv2.dilate(own.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


def _own_pixels(labels: np.ndarray, group: _Group) -> np.ndarray:
    """(h, w) bool: the group's own pixels within its box (a plain comparison for the common
    one-label group, else a lookup table over the box's labels: np.isin costs ~10x more)."""
    box = labels[group.y0 : group.y1, group.x0 : group.x1]
    if len(group.labels) == 1:
        return box == group.labels[0]
    own_labels = np.zeros(int(box.max()) + 1, bool)  # the group's labels all lie in its box
    own_labels[group.labels] = True
    return own_labels[box]


def _struck_out_groups(groups: Sequence[_Group], labels: np.ndarray) -> set[int]:
    """Indices of the pieces crossed out (``is_struck_out``) beside a correction. Only pieces
    at least half as tall as the tallest count, and only when some other such piece is not
    crossed out (a number struck out with nothing else written is left to ``find_strike``:
    read and flagged). labels: (H, W) component labels of the cell, as in the groups."""
    if len(groups) < 2:
        return set()
    tallest = max(g.height for g in groups)
    struck = {
        i
        for i, g in enumerate(groups)
        if g.height >= 0.5 * tallest and g.height >= 6 and is_struck_out(_own_pixels(labels, g))
    }
    if not struck:
        return struck
    kept = [g for i, g in enumerate(groups) if i not in struck and g.height >= 0.5 * tallest]
    return struck if kept else set()


# --------------------------------------------------------------------------- main entry


def segment_cell(
    cell: np.ndarray, lines: Box | None = None, whole_first: bool = False
) -> CellSegmentation:
    """Split one cell (H, W) into digit pieces, left to right. See the module docstring.

    cell: (H, W) uint8 grey, dark ink on light paper (either polarity accepted), or bool
    (True = ink), ruled lines already removed (remnants along the edges are dropped here).
    lines: where the cell's ruled lines run in the crop, (x_left, y_top, x_right, y_bottom) in
    crop pixels, when the crop has a margin around the cell (see ``strip_edge_lines``).
    whole_first: pieces that may hold one digit or several are offered whole, their cuts
    left to ``cut_unless_sure`` (see ``split_options``); the pipeline's way, through
    ``pipeline.read.classify_segmentations``. False: every piece's cuts are made now.
    """
    ink, mask = _ink_and_mask(cell)
    stroke_mask = mask
    height, width = mask.shape
    ink_fraction = float(mask.mean())
    if not mask.any():
        return CellSegmentation(pieces=(), struck_through=False, ink_fraction=ink_fraction)
    mask = strip_edge_lines(mask, lines)

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    groups = [_group_of(stats, label) for label in range(1, count)]
    groups, remnants = _without_remnants(groups, height, width, lines)

    struck = False
    if groups:
        kept_labels = np.zeros(count, bool)  # a lookup table: np.isin costs ~10x more
        kept_labels[[label for g in groups for label in g.labels]] = True
        written = kept_labels[labels]
        strike = find_strike(written)
        if strike is not None:
            struck = True
            r0, r1 = strike
            written[max(0, r0 - 1) : r1 + 1] = False
            count, labels, stats, _ = cv2.connectedComponentsWithStats(written.astype(np.uint8), 8)
            groups = [_group_of(stats, label) for label in range(1, count)]

    groups = [g for g in groups if g.area >= 3]
    groups = _merge_overlapping(groups)
    if lines is not None:  # dotted lines only show as remnants once their dots are merged
        groups, more = _without_remnants(groups, height, width, lines)
        remnants += more
    # Erasing a strike also erases what it covered (a 4's bar): reattach farther pieces.
    groups, specks = _attach_small(groups, reach=0.4 if struck else 0.15)
    # A number crossed out beside its correction: drop it, read the correction, flag the cell.
    struck_out = _struck_out_groups(groups, labels)
    if struck_out:
        struck = True
        specks += [g for i, g in enumerate(groups) if i in struck_out]
        groups = [g for i, g in enumerate(groups) if i not in struck_out]

    pieces = []
    index = 0
    while index < len(groups):
        group = groups[index]
        if index + 1 < len(groups) and _halves_of_one_digit(group, groups[index + 1]):
            pieces.append(_halves_or_whole(ink, stroke_mask, labels, group, groups[index + 1]))
            index += 2
            continue
        strokes, origin, edge = _piece_ink(ink, stroke_mask, labels, group)
        pieces.append(split_options(strokes, origin, edge=edge, whole_first=whole_first))
        index += 1
    dropped = tuple((g.x0, g.y0, g.x1, g.y1) for g in remnants + specks)
    return CellSegmentation(
        pieces=tuple(pieces), struck_through=struck, ink_fraction=ink_fraction, dropped=dropped
    )


# Two pieces side by side are offered read as one digit when the gap between them is at most
# this share of their joint height and together they are no wider than a digit (width/height).
HALVES_GAP = 0.12
HALVES_ASPECT = 1.4


def _halves_of_one_digit(left: _Group, right: _Group) -> bool:
    """Could ``left`` and ``right`` (adjacent pieces, left to right) be the two halves of one
    digit whose strokes broke apart where the pen ran thin (a 0 written as "( )")? Side by
    side with a small gap, overlapping in height, and together no wider than one digit."""
    top, bottom = min(left.y0, right.y0), max(left.y1, right.y1)
    joint_height = bottom - top
    gap = right.x0 - left.x1
    overlap = min(left.y1, right.y1) - max(left.y0, right.y0)
    return (
        gap <= max(2, HALVES_GAP * joint_height)
        and overlap >= 0.5 * min(left.height, right.height)
        and (max(left.x1, right.x1) - left.x0) <= HALVES_ASPECT * joint_height
    )


def _halves_or_whole(
    ink: np.ndarray, stroke_mask: np.ndarray, labels: np.ndarray, left: _Group, right: _Group
) -> Piece:
    """One piece of two (``_halves_of_one_digit``) with two options: read whole, or as the two
    digits they are on the page. In ``choose_splits`` neither is favoured: no cut is invented
    (SPLIT_PENALTY is the price of a cut through ink), so "( )" read as a 0 beats "6" "1" only
    when the classifier is surer of the 0 than of the two parts together, and two 1s written
    close stay "11" though their whole reads as a 4 at 0.85 (at the split's old price, e^-1,
    seed 7's "11" read "4"). Before that choice, a whole read surely as one digit
    (``sure_whole``) stays whole, and a piece whose best reading holds a "not a digit" part is
    cut again by ``resplit``, whose forced cuts pay SPLIT_PENALTY each, this apart cut too. A
    classifier without the "not a digit" class never reads the two whole (``Piece.joined``)."""
    joint = replace(left, labels=list(left.labels))
    joint.absorb(right)
    strokes, origin, edge = _piece_ink(ink, stroke_mask, labels, joint)
    whole = _crop_from_ink(strokes, origin, edge)
    parts = []
    for half in (left, right):
        own = _own_pixels(labels, replace(joint, labels=half.labels))
        parts.append(_crop_from_ink(np.where(own, strokes, 0.0), origin, edge))
    assert whole is not None and all(part is not None for part in parts)  # both have ink
    return Piece(
        options=((whole,), tuple(part for part in parts if part is not None)),
        log_priors=(0.0, 0.0),
        box=whole.box,
        ink=strokes,
        edge=edge,
        origin=origin,
        joined=True,
    )


def _piece_ink(
    ink: np.ndarray, stroke_mask: np.ndarray, labels: np.ndarray, group: _Group
) -> tuple[np.ndarray, tuple[int, int], Edge]:
    """What ``split_options`` cuts for one piece: its own stroke pixels ((h, w) float32 in
    its box), the box's (x, y) in the cell, and the strokes' faint edge: the
    pixels within EDGE_PX of them, at least EDGE_MIN_INK, too faint for ``stroke_mask`` (the
    cell's ink mask before anything was erased from it: a strike line or a ruled line's
    remnant never comes back as an edge) and of no piece, in the box grown by EDGE_PX.

    Why the edge: the classifier learned MNIST digits, whose strokes fade out over 1-2 px.
    With the edge back, whole numbers of MNIST test digits read exactly 0.9795 instead of
    0.977 (bench/bench_numbers.py, BENCHMARKS.md)."""
    height, width = ink.shape
    x0, y0 = max(0, group.x0 - EDGE_PX), max(0, group.y0 - EDGE_PX)
    x1, y1 = min(width, group.x1 + EDGE_PX), min(height, group.y1 + EDGE_PX)
    grown = _Group(labels=group.labels, x0=x0, y0=y0, x1=x1, y1=y1, area=group.area)
    own = _own_pixels(labels, grown)
    near = cv2.dilate(own.astype(np.uint8), _EDGE_KERNEL) > 0
    box_ink = ink[y0:y1, x0:x1]
    faint = (
        near & ~stroke_mask[y0:y1, x0:x1] & (labels[y0:y1, x0:x1] == 0) & (box_ink >= EDGE_MIN_INK)
    )
    grown_strokes = np.where(own, box_ink, 0.0).astype(np.float32)
    ox, oy = group.x0 - x0, group.y0 - y0
    edge = Edge(np.where(own | faint, box_ink, 0.0).astype(np.float32), grown_strokes, (ox, oy))
    strokes = grown_strokes[oy : oy + group.height, ox : ox + group.width]
    return strokes, (group.x0, group.y0), edge


def _group_of(stats: np.ndarray, label: int) -> _Group:
    x, y, w, h, area = (int(v) for v in stats[label])
    return _Group(labels=[label], x0=x, y0=y, x1=x + w, y1=y + h, area=area)


# --------------------------------------------------------------------------- recognition check

Classify = Callable[[np.ndarray], np.ndarray]
Reframe = Callable[[np.ndarray], np.ndarray]


def _default_reframe() -> Reframe:
    from pipeline.reframe import reframe_digit

    return reframe_digit


def digit_score(probs: np.ndarray) -> np.ndarray:
    """(N, C) probabilities -> (N,) log of the best DIGIT class probability (classes 0-9; an
    11th "not a digit" class, when present, only lowers it)."""
    return np.log(np.clip(probs[:, :10].max(axis=1), 1e-9, 1.0))


def option_scores(piece: Piece, score_of: Callable[[DigitCrop], float]) -> list[float]:
    """Each option's score (``choose_splits``): its digits' ``score_of`` (``digit_score`` of
    their probabilities) summed, plus its geometric log prior."""
    return [
        float(sum(score_of(crop) for crop in option)) + prior
        for option, prior in zip(piece.options, piece.log_priors, strict=True)
    ]


def choose_splits(
    segmentations: Sequence[CellSegmentation],
    classify: Classify | None = None,
    reframe: Reframe | None = None,
    *,
    probs_of: Callable[[DigitCrop], np.ndarray] | None = None,
) -> list[CellSegmentation]:
    """Let the classifier pick among the split options of every ambiguous piece.

    classify: (N, 28, 28) uint8 -> (N, C) probabilities (C = 10, or 11 with "not a digit").
    reframe: digit crop -> (28, 28) uint8; default ``pipeline.reframe.reframe_digit``.
    All distinct candidate digits of all cells go through ``reframe`` (in order, once each) and
    then ``classify`` in ONE batch. Or, when the crops were already classified, ``probs_of``
    (DigitCrop -> (C,) probabilities) answers instead and nothing is classified here.
    An option's score is the sum of its digits' log best-digit probability plus its geometric
    log prior; an option's probability (``Piece.weights``) is its softmax share of the scores.
    Options are re-ordered best first (option 0 = the chosen cut, ``CellSegmentation.digits``);
    those under MIN_OPTION_WEIGHT are dropped. Unambiguous cells are returned as is.
    Pieces whose cuts are still to be made (``Piece.uncut``) are refused: ``cut_unless_sure``
    comes first (``pipeline.read.classify_segmentations``).
    """
    if any(piece.uncut for segmentation in segmentations for piece in segmentation.pieces):
        raise ValueError("choose_splits: cut the uncut pieces first (cut_unless_sure)")
    unique: dict[int, int] = {}  # id(crop) -> row in the batch (options share part crops)
    crops: list[DigitCrop] = []
    for segmentation in segmentations:
        for piece in segmentation.pieces:
            if piece.ambiguous:
                for option in piece.options:
                    for crop in option:
                        if id(crop) not in unique:
                            unique[id(crop)] = len(crops)
                            crops.append(crop)
    if not crops:
        return list(segmentations)
    if probs_of is not None:
        probs = np.stack([probs_of(crop) for crop in crops])
    else:
        if classify is None:
            raise ValueError("choose_splits needs classify or probs_of")
        reframe = reframe or _default_reframe()
        frames = np.stack([reframe(crop.image) for crop in crops])
        probs = np.asarray(classify(frames))
    scores = digit_score(probs)
    can_reject = probs.shape[1] > 10
    chosen = []
    for segmentation in segmentations:
        pieces = []
        for piece in segmentation.pieces:
            if piece.joined and not can_reject:  # no "not a digit" to refuse the whole
                apart = [i for i, option in enumerate(piece.options) if len(option) > 1]
                piece = replace(
                    piece,
                    options=tuple(piece.options[i] for i in apart),
                    log_priors=tuple(piece.log_priors[i] for i in apart),
                )
            if not piece.ambiguous:
                pieces.append(piece)
                continue
            scored = option_scores(piece, lambda crop: scores[unique[id(crop)]])
            weights = np.exp(np.array(scored) - max(scored))
            weights /= weights.sum()
            order = [
                i for i in np.argsort(-weights, kind="stable") if weights[i] >= MIN_OPTION_WEIGHT
            ]
            pieces.append(
                Piece(
                    options=tuple(piece.options[i] for i in order),
                    log_priors=tuple(piece.log_priors[i] for i in order),
                    box=piece.box,
                    weights=tuple(float(weights[i]) for i in order),
                )
            )
        chosen.append(replace(segmentation, pieces=tuple(pieces)))
    return chosen


def choose_split(
    segmentation: CellSegmentation, classify: Classify, reframe: Reframe | None = None
):
    """``choose_splits`` for one cell."""
    return choose_splits([segmentation], classify, reframe)[0]
