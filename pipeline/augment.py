"""Augmentation and synthesis for training the ``default`` digit model (seeded numpy + cv2).

Everything works on (28, 28) uint8 digits, white ink on black, drawn into a 44x44 canvas so
warps do not cut strokes off, and ends with ``reframe_digit`` so that training digits look
exactly like what the pipeline feeds the model.

* ``argentine_one``: adds the long diagonal up-stroke ("flag") Argentine writers put on a 1;
  ``branched_one`` the other common form, the flag leaving the stem partway down (an
  upside-down "y"); ``flagged_ones`` rewrites a share of a digit set's 1s either way.
* ``crossed_seven``: adds a horizontal bar through the stem of a 7; ``hooked_seven`` a short
  down-stroke at the left end of its top bar.
* ``distort``: rotation, shear/slant, independent x/y scale, stroke thickness (dilate/erode),
  elastic distortion, broken strokes, cell-line fragments near the digit.
* ``junk``: not-a-digit images (class ``NOT_A_DIGIT``): blobs, dashes, specks, line corners;
  ``digit_pair``: two touching digits reframed as one image (also not a digit);
  ``one_in_pair``: a 1 written into its neighbour (also not a digit).
* ``augmented_epoch``: one augmented copy of a training set plus ~18% not-a-digit images.
"""

from __future__ import annotations

import contextlib

import cv2
import numpy as np

from pipeline.errors import BadInput
from pipeline.reframe import reframe_digit

NOT_A_DIGIT = 10
CANVAS = 44
PAD = (CANVAS - 28) // 2


def to_canvas(digit: np.ndarray) -> np.ndarray:
    """(28, 28) uint8 -> (44, 44) float32 with the digit in the middle."""
    canvas = np.zeros((CANVAS, CANVAS), np.float32)
    canvas[PAD : PAD + 28, PAD : PAD + 28] = digit
    return canvas


def _ink_box(canvas: np.ndarray, level: float = 64.0) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero((canvas > level).any(axis=1))
    cols = np.flatnonzero((canvas > level).any(axis=0))
    if rows.size == 0 or cols.size == 0:
        return None
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _line(canvas: np.ndarray, p0, p1, thickness: int, value: float = 255.0) -> None:
    """Anti-aliased line in place (coordinates in pixels, x then y), with sub-pixel shift."""
    shift = 4
    scale = 1 << shift
    a = (int(round(p0[0] * scale)), int(round(p0[1] * scale)))
    b = (int(round(p1[0] * scale)), int(round(p1[1] * scale)))
    layer = np.zeros_like(canvas)
    cv2.line(layer, a, b, float(value), int(thickness), cv2.LINE_AA, shift)
    np.maximum(canvas, layer, out=canvas)


def argentine_one(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add a long up-stroke from the top of a 1 going down-left (in place; returns canvas)."""
    box = _ink_box(canvas)
    if box is None:
        return canvas
    top, bottom, _, _ = box
    height = bottom - top + 1
    top_cols = np.flatnonzero(canvas[top : top + 2].max(axis=0) > 64)
    x_top = float(top_cols.mean())
    # Telegram 1s often look like a narrow inverted V: the flag nearly as long as the stem.
    length = height * rng.uniform(0.35, 0.85)
    angle = np.deg2rad(rng.uniform(30, 75))  # below the horizontal, towards the left
    end = (x_top - length * np.cos(angle), top + length * np.sin(angle))
    _line(canvas, (x_top, top + 0.5), end, int(rng.integers(2, 4)))
    if rng.random() < 0.2:  # a foot serif as well
        half = height * rng.uniform(0.15, 0.3)
        x_bottom = float(np.flatnonzero(canvas[bottom - 1 : bottom + 1].max(axis=0) > 64).mean())
        _line(canvas, (x_bottom - half, bottom), (x_bottom + half, bottom), int(rng.integers(2, 4)))
    return canvas


def branched_one(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add a flag that leaves the stem of a 1 partway down and curves down-left, flattening
    towards its end (in place; returns canvas).

    The form of every 1 on the real 2019 telegram (../shared/data/telegrams): the stroke
    joins the stem at 30-60% of its height and ends at 75-100%, about half the height to the
    left. Read by a model that never saw it, it is a "4" (the flag's flat end a crossbar).
    """
    box = _ink_box(canvas)
    if box is None:
        return canvas
    top, bottom, _, _ = box
    height = bottom - top + 1
    y_join = int(round(top + height * rng.uniform(0.3, 0.6)))
    stem_cols = np.flatnonzero(canvas[y_join] > 64)
    if stem_cols.size == 0:
        return canvas
    start = np.array([float(stem_cols.mean()), float(y_join)])
    end = start + height * np.array([-rng.uniform(0.3, 0.55), 0.0])
    end[1] = top + height * rng.uniform(0.75, 1.0)
    # A quadratic Bezier: steep where it leaves the stem, flatter at its end; bend 0 = straight.
    bend = rng.uniform(0.0, 0.7)
    steep = start + np.array([0.3, 0.9]) * (end - start)
    control = (1 - bend) * (start + end) / 2 + bend * steep
    t = np.linspace(0.0, 1.0, 9)[:, None]
    points = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end
    thickness = int(rng.integers(2, 4))
    for p0, p1 in zip(points[:-1], points[1:], strict=True):
        _line(canvas, p0, p1, thickness)
    return canvas


def flagged_ones(
    x: np.ndarray, y: np.ndarray, share: float, rng: np.random.Generator
) -> np.ndarray:
    """x (N, 28, 28) uint8 MNIST-format digits with labels y (N,) -> a copy in which ``share``
    of the 1s carry a flag (``argentine_one`` or ``branched_one``, half each), reframed.
    """
    out = x.copy()
    for index in np.flatnonzero(y == 1):
        if rng.random() >= share:
            continue
        flag = argentine_one if rng.random() < 0.5 else branched_one
        with contextlib.suppress(BadInput):  # no ink to reframe: the plain 1 stays
            out[index] = reframe_digit(flag(to_canvas(x[index]), rng))
    return out


def hooked_seven(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add a short down-stroke at the left end of a 7's top bar (in place; returns canvas)."""
    box = _ink_box(canvas)
    if box is None:
        return canvas
    top, bottom, _, _ = box
    height = bottom - top + 1
    cols = np.flatnonzero(canvas[top : top + 3].max(axis=0) > 64)
    if cols.size == 0:
        return canvas
    x_left = float(cols[0])
    length = height * rng.uniform(0.12, 0.3)
    slant = rng.uniform(-0.3, 0.2) * length
    _line(canvas, (x_left, top + 1), (x_left + slant, top + 1 + length), int(rng.integers(2, 4)))
    return canvas


def crossed_seven(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add a horizontal bar through the middle of a 7's stem (in place; returns canvas)."""
    box = _ink_box(canvas)
    if box is None:
        return canvas
    top, bottom, left, right = box
    height, width = bottom - top + 1, right - left + 1
    row = int(round(top + height * rng.uniform(0.45, 0.62)))
    cols = np.flatnonzero(canvas[row] > 64)
    if cols.size == 0:
        return canvas
    centre = float(cols.mean())
    half = max(width, 0.6 * height) * rng.uniform(0.22, 0.38)
    tilt = rng.uniform(-1.5, 1.5)
    _line(canvas, (centre - half, row - tilt), (centre + half, row + tilt), int(rng.integers(2, 4)))
    return canvas


def _affine(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotation +-15 deg, shear +-0.35, x/y scale 0.75..1.25 about the canvas centre."""
    centre = (CANVAS - 1) / 2
    angle = np.deg2rad(rng.uniform(-15, 15))
    shear = rng.uniform(-0.35, 0.35)
    sx, sy = rng.uniform(0.75, 1.2), rng.uniform(0.8, 1.25)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = rotation @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([sx, sy])
    offset = np.array([centre, centre]) - linear @ np.array([centre, centre])
    matrix = np.hstack([linear, offset[:, None]]).astype(np.float32)
    return cv2.warpAffine(canvas, matrix, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR)


def _elastic(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Simard-style elastic distortion: smoothed random displacement field, ~1-2 px."""
    sigma = rng.uniform(3.5, 5.0)
    alpha = rng.uniform(20, 40)
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, canvas.shape).astype(np.float32), (0, 0), sigma)
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, canvas.shape).astype(np.float32), (0, 0), sigma)
    ys, xs = np.indices(canvas.shape, dtype=np.float32)
    return cv2.remap(canvas, xs + alpha * dx, ys + alpha * dy, cv2.INTER_LINEAR)


def _thickness(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Thicker (dilate) or thinner (erode) strokes, in half-pixel steps (worked at 2x size).

    Thin strokes matter: a pen digit cut from a scan and shrunk to 20 px has finer strokes
    than MNIST's.
    """
    size = int(rng.integers(2, 6))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    large = cv2.resize(canvas, (2 * CANVAS, 2 * CANVAS), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        large = cv2.dilate(large, kernel)
    else:
        thinner = cv2.erode(large, kernel)
        if (thinner > 128).sum() < 80:  # the digit would vanish
            return canvas
        large = thinner
    return cv2.resize(large, (CANVAS, CANVAS), interpolation=cv2.INTER_AREA)


def _break_strokes(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Erase one or two short thin lines across the ink: gaps as from a dry pen or a scan."""
    box = _ink_box(canvas)
    if box is None:
        return canvas
    top, bottom, left, right = box
    for _ in range(int(rng.integers(1, 3))):
        x, y = rng.uniform(left, right), rng.uniform(top, bottom)
        angle = rng.uniform(0, np.pi)
        half = rng.uniform(2, 5)
        dx, dy = half * np.cos(angle), half * np.sin(angle)
        mask = np.zeros_like(canvas)
        _line(mask, (x - dx, y - dy), (x + dx, y + dy), 1, 1.0)
        canvas = canvas * (1.0 - mask)
    return canvas


def _cell_line_fragment(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A short, thin, possibly faint piece of a form's cell line just beside the digit."""
    box = _ink_box(canvas)
    if box is None:
        return canvas
    top, bottom, left, right = box
    value = rng.uniform(90, 255)
    gap = rng.uniform(1, 3)
    if rng.random() < 0.5:  # horizontal, above or below
        y = top - gap if rng.random() < 0.5 else bottom + gap
        span = (right - left) * rng.uniform(0.3, 0.9)
        x0 = rng.uniform(left - 2, right - span + 2)
        _line(canvas, (x0, y), (x0 + span, y), 1, value)
    else:  # vertical, left or right
        x = left - gap if rng.random() < 0.5 else right + gap
        span = (bottom - top) * rng.uniform(0.2, 0.5)
        y0 = top if rng.random() < 0.5 else bottom - span
        _line(canvas, (x, y0), (x, y0 + span), 1, value)
    return canvas


def distort(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random mix of the distortions above, on a (44, 44) float32 canvas."""
    if rng.random() < 0.9:
        canvas = _affine(canvas, rng)
    if rng.random() < 0.5:
        canvas = _elastic(canvas, rng)
    if rng.random() < 0.5:
        canvas = _thickness(canvas, rng)
    if rng.random() < 0.12:
        canvas = _break_strokes(canvas, rng)
    if rng.random() < 0.1:
        canvas = _cell_line_fragment(canvas, rng)
    return canvas


def _shift(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Off-centre by up to 2 px, as an imperfect crop would be."""
    dx, dy = rng.integers(-2, 3, size=2)
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(digit, matrix, (28, 28), flags=cv2.INTER_NEAREST)


def junk(rng: np.random.Generator) -> np.ndarray:
    """One not-a-digit image, reframed: (28, 28) uint8."""
    canvas = np.zeros((CANVAS, CANVAS), np.float32)
    kind = rng.integers(0, 5)
    centre = np.array([CANVAS / 2, CANVAS / 2]) + rng.uniform(-4, 4, size=2)
    if kind == 0:  # blob: filled ellipse
        axes = (int(rng.integers(3, 12)), int(rng.integers(3, 12)))
        cv2.ellipse(
            canvas, tuple(int(v) for v in centre), axes, rng.uniform(0, 180), 0, 360, 255.0, -1
        )
    elif kind == 1:  # dash: near-horizontal stroke
        length = rng.uniform(8, 30)
        angle = np.deg2rad(rng.uniform(-25, 25))
        d = 0.5 * length * np.array([np.cos(angle), np.sin(angle)])
        _line(canvas, centre - d, centre + d, int(rng.integers(1, 5)))
    elif kind == 2:  # speck or a few specks
        for _ in range(int(rng.integers(1, 4))):
            spot = centre + rng.uniform(-6, 6, size=2)
            cv2.circle(canvas, tuple(int(v) for v in spot), int(rng.integers(1, 4)), 255.0, -1)
    elif kind == 3:  # corner of a cell: two thin lines at a right angle
        a, b = rng.uniform(10, 25), rng.uniform(10, 25)
        sx, sy = rng.choice([-1, 1]), rng.choice([-1, 1])
        _line(canvas, centre, centre + np.array([sx * a, 0.0]), int(rng.integers(1, 3)))
        _line(canvas, centre, centre + np.array([0.0, sy * b]), int(rng.integers(1, 3)))
    else:  # smudge: blurred irregular blob
        for _ in range(int(rng.integers(2, 5))):
            spot = centre + rng.uniform(-5, 5, size=2)
            cv2.circle(canvas, tuple(int(v) for v in spot), int(rng.integers(2, 6)), 255.0, -1)
        canvas = cv2.GaussianBlur(canvas, (0, 0), rng.uniform(0.8, 2.0))
    if rng.random() < 0.5:
        canvas = _elastic(canvas, rng)
    try:
        return reframe_digit(canvas)
    except BadInput:
        return junk(rng)


def _columns_of_ink(digit: np.ndarray) -> np.ndarray:
    """A (28, 28) digit cut to the columns that hold ink: (28, W)."""
    cols = np.flatnonzero(digit.max(axis=0) > 0)
    return digit[:, cols[0] : cols[-1] + 1] if cols.size else digit


def _side_by_side(pieces: list[np.ndarray], gap: int, rng: np.random.Generator) -> np.ndarray:
    """(28, W) pieces written left to right ``gap`` px apart (negative: overlapping), each
    shifted up to 3 px up or down, reframed as ONE image: (28, 28) uint8."""
    width = sum(piece.shape[1] for piece in pieces) + gap * (len(pieces) - 1) + 8
    canvas = np.zeros((36, max(width, 36)), np.float32)
    x = 4
    for piece in pieces:
        y = 4 + int(rng.integers(-3, 4))
        region = canvas[y : y + 28, x : x + piece.shape[1]]
        np.maximum(region, piece, out=region)
        x += piece.shape[1] + gap
    return reframe_digit(canvas)


def digit_pair(first: np.ndarray, second: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two (28, 28) digits written touching or overlapping, reframed as ONE image: not a digit.

    Teaches the model that two merged digits are not one digit, so the segmentation's
    recognition-checked splits cut them apart. Returns (28, 28) uint8.
    """
    pieces = [_columns_of_ink(first), _columns_of_ink(second)]
    return _side_by_side(pieces, int(rng.integers(-2, 3)), rng)


ONE_OVERLAP = 0.6


def one_in_pair(one: np.ndarray, neighbour: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A (28, 28) 1 written into its (28, 28) neighbour, reframed as ONE image: not a digit.

    The 1 stands left or right of the neighbour, overlapping it by 0 to ``ONE_OVERLAP`` of
    the 1's own width, never by more than the neighbour is wide (a slanted 1 can be wider
    than a narrow neighbour). ``digit_pair``'s gaps of -2..2 px rarely make a 1 enter the
    other digit, and a 1 inside a 0 reads as a confident "0" (the real 2019 telegram's
    "10"), so the segmentation never tries the cut. Returns (28, 28) uint8.
    """
    stroke = _columns_of_ink(one)
    other = _columns_of_ink(neighbour)
    overlap = int(round(rng.uniform(0.0, ONE_OVERLAP) * stroke.shape[1]))
    overlap = min(overlap, other.shape[1])
    pieces = [stroke, other] if rng.random() < 0.5 else [other, stroke]
    return _side_by_side(pieces, -overlap, rng)


def augment_digit(
    digit: np.ndarray, label: int, rng: np.random.Generator, branched_ones: bool = False
) -> np.ndarray:
    """One augmented, reframed version of a (28, 28) uint8 digit with the given label.

    branched_ones: a flagged 1's flag is ``branched_one``'s half of the time, else always
    ``argentine_one``'s (as the base model of 16d6788 was trained; off, no random draw is
    added, so earlier runs repeat draw for draw).
    """
    canvas = to_canvas(digit)
    if label == 1 and rng.random() < 0.55:
        if branched_ones and rng.random() >= 0.5:
            canvas = branched_one(canvas, rng)
        else:
            canvas = argentine_one(canvas, rng)
    elif label == 7:
        if rng.random() < 0.35:
            canvas = crossed_seven(canvas, rng)
        if rng.random() < 0.25:
            canvas = hooked_seven(canvas, rng)
    canvas = distort(canvas, rng)
    try:
        out = reframe_digit(canvas)
    except BadInput:
        return digit
    if rng.random() < 0.25:
        out = _shift(out, rng)
    return out


def augmented_epoch(
    x: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    junk_share: float = 0.1,
    pair_share: float = 0.08,
    branched_ones: bool = False,
    one_pair_share: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One augmented copy of (x (N, 28, 28) uint8, y (N,)) plus not-a-digit images:
    ``junk_share * N`` blobs/dashes/specks/corners, ``pair_share * N`` merged digit pairs and
    ``one_pair_share * N`` 1s written into a neighbour (``one_in_pair``; none, and no random
    draw, when that rounds to 0 or ``y`` holds no 1, so earlier runs repeat draw for draw).
    branched_ones: as in ``augment_digit``.

    Returns (x_aug (M, 28, 28) uint8, y_aug (M,) int32), M = N + the not-a-digit images.
    """
    n_junk = int(round(junk_share * len(x)))
    n_pairs = int(round(pair_share * len(x)))
    ones = np.flatnonzero(np.asarray(y) == 1)
    n_ones = int(round(one_pair_share * len(x))) if ones.size else 0
    out = np.zeros((len(x) + n_junk + n_pairs + n_ones, 28, 28), np.uint8)
    for index in range(len(x)):
        out[index] = augment_digit(x[index], int(y[index]), rng, branched_ones)
    for index in range(len(x), len(x) + n_junk):
        out[index] = junk(rng)
    partners = rng.integers(0, len(x), size=(n_pairs, 2))
    for offset, (a, b) in enumerate(partners):
        out[len(x) + n_junk + offset] = digit_pair(x[a], x[b], rng)
    if n_ones:  # else no draw, so that runs without them repeat draw for draw
        firsts = rng.choice(ones, n_ones)
        seconds = rng.integers(0, len(x), size=n_ones)
        start = len(x) + n_junk + n_pairs
        for offset, (a, b) in enumerate(zip(firsts, seconds, strict=True)):
            out[start + offset] = one_in_pair(x[a], x[b], rng)
    not_digits = np.full(len(out) - len(x), NOT_A_DIGIT, np.int32)
    labels = np.concatenate([np.asarray(y, np.int32), not_digits])
    return out, labels
