"""Handwritten numbers from a digit bank, written the way people fill in telegrams.

A :class:`DigitBank` holds digit images in MNIST layout (``(N, 28, 28)`` uint8, white ink on
black). A :class:`WriterStyle` is one person's hand: size, slant, stroke width, ink colour,
digit spacing (gaps or touching), how far off centre they write and whether their "1" has
the long up-stroke and their "7" the crossbar of Argentine handwriting. :func:`write_number`
composites a number into a cell of a colour page ``(H, W, 3)`` uint8 (BGR) in place.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import BadInput

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED_MNIST = PACKAGE_ROOT.parent.parent / "shared" / "data" / "mnist.npz"
FIXTURE_MNIST = PACKAGE_ROOT / "fixtures" / "mnist_sample.npz"

#: Ink colours in BGR: ballpoint blues and blacks.
BLUE_INKS = ((150, 60, 25), (170, 80, 40), (120, 45, 30), (160, 70, 70))
BLACK_INKS = ((35, 35, 40), (55, 50, 50), (25, 25, 25))


@dataclass(frozen=True)
class DigitBank:
    """Digit images ``(N, 28, 28)`` uint8 (white ink on black) and labels ``(N,)`` 0..9."""

    images: np.ndarray
    labels: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        by_label = tuple(np.flatnonzero(self.labels == d) for d in range(10))
        object.__setattr__(self, "_by_label", by_label)

    def sample(self, digit: int, rng: np.random.Generator) -> np.ndarray:
        """One random image of ``digit``: ``(28, 28)`` uint8."""
        indices = self._by_label[digit]  # type: ignore[attr-defined]
        return self.images[indices[rng.integers(len(indices))]]


def default_digit_bank_path() -> Path:
    """MNIST test digits from ``../shared/data/mnist.npz``, else the bundled 1,000-digit fixture."""
    return DEFAULT_SHARED_MNIST if DEFAULT_SHARED_MNIST.exists() else FIXTURE_MNIST


def load_digit_bank(path: str | Path | None = None) -> DigitBank:
    """Load digits from an ``.npz`` in Keras layout (``x_test``/``y_test`` preferred, else
    ``x_train``/``y_train``) or with keys ``x``, ``y``.

    Images must be ``(N, H, W)``, uint8 or floats in 0..1 (resized to 28x28 if needed); dark
    ink on white is detected by the border and inverted to white on black. Every digit 0-9
    must occur. Raises :class:`BadInput` naming the file and the problem.
    """
    path = Path(path) if path is not None else default_digit_bank_path()
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            for x_key, y_key in (("x_test", "y_test"), ("x", "y"), ("x_train", "y_train")):
                if x_key in keys and y_key in keys:
                    images, labels = data[x_key], data[y_key]
                    break
            else:
                raise BadInput(
                    f"{path}: digit bank needs keys x_test/y_test (Keras layout) or x/y, "
                    f"found {sorted(keys)}"
                )
    except FileNotFoundError as exc:
        raise BadInput(f"{path}: digit bank file not found") from exc
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: not a readable .npz digit bank: {exc}") from exc
    if images.ndim != 3 or len(images) != len(labels) or len(images) == 0:
        raise BadInput(
            f"{path}: images must be (N, H, W) with one label each, got {images.shape} "
            f"and {labels.shape}"
        )
    if images.dtype != np.uint8:
        if images.max() <= 1.0:
            images = images * 255.0
        images = np.clip(images, 0, 255).astype(np.uint8)
    labels = labels.astype(np.int64).reshape(-1)
    if labels.min() < 0 or labels.max() > 9 or len(np.unique(labels)) != 10:
        raise BadInput(f"{path}: labels must cover every digit 0-9")
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], 1)
    if border.mean() > 127:  # dark ink on white paper: turn into the bank's white on black
        images = 255 - images
    if images.shape[1:] != (28, 28):
        images = np.stack([cv2.resize(im, (28, 28), interpolation=cv2.INTER_AREA) for im in images])
    return DigitBank(np.ascontiguousarray(images), labels.astype(np.uint8), str(path))


@dataclass(frozen=True)
class WriterStyle:
    """One writer's hand. Sizes are relative to the cell; pixels scale with the dpi."""

    height_frac: float  # digit height / cell height
    slant: float  # horizontal shear (x += slant * (centre_y - y)); positive leans right
    stroke_mm: float  # pen stroke width
    ink_bgr: tuple[int, int, int]
    opacity: float
    spacing: float  # gap between digits / digit width; negative = touching/overlapping
    off_centre: float  # std of the horizontal offset / cell width
    long_one: bool  # "1" written with the long up-stroke
    crossed_seven: bool  # "7" with a crossbar
    empty_zero: float  # probability of leaving a zero cell blank


def sample_writer(rng: np.random.Generator) -> WriterStyle:
    """A random writer (the president of one mesa)."""
    blue = rng.random() < 0.6
    inks = BLUE_INKS if blue else BLACK_INKS
    return WriterStyle(
        height_frac=float(rng.uniform(0.5, 0.85)),
        slant=float(rng.normal(0.12, 0.15)),
        stroke_mm=float(rng.uniform(0.25, 0.5)),
        ink_bgr=inks[int(rng.integers(len(inks)))],
        opacity=float(rng.uniform(0.8, 1.0)),
        spacing=float(rng.uniform(-0.15, 0.35)),
        off_centre=float(rng.uniform(0.02, 0.12)),
        long_one=bool(rng.random() < 0.65),
        crossed_seven=bool(rng.random() < 0.4),
        empty_zero=float(rng.choice([0.0, 0.0, 0.15, 0.5])),
    )


def _stroke_width(glyph: np.ndarray) -> float:
    """Mean stroke width in pixels of a white-on-black glyph: 2 x ink area / boundary pixels."""
    ink = (glyph > 127).astype(np.uint8)
    area = int(ink.sum())
    if area == 0:
        return 0.0
    boundary = area - int(cv2.erode(ink, np.ones((3, 3), np.uint8), borderValue=0).sum())
    return 2.0 * area / max(boundary, 1)


def _glyph(
    digit: int, style: WriterStyle, height_px: int, dpi: float, bank: DigitBank, rng
) -> np.ndarray:
    """One handwritten digit as ink alpha ``(h, w)`` float32 in 0..1, about ``height_px`` high."""
    image = bank.sample(digit, rng).copy()
    if digit == 1 and style.long_one:
        ys, xs = np.nonzero(image > 100)
        if len(ys):
            top = int(ys.min())
            x_top = int(round(xs[ys <= top + 1].mean()))
            cv2.line(image, (x_top, top), (max(x_top - 6, 0), top + 7), 255, 2, cv2.LINE_AA)
    if digit == 7 and style.crossed_seven:
        ys, xs = np.nonzero(image > 100)
        if len(ys):
            row = int(ys.min() + 0.55 * (ys.max() - ys.min()))
            cols = xs[np.abs(ys - row) <= 1]
            centre = int(cols.mean()) if len(cols) else int(xs.mean())
            cv2.line(image, (max(centre - 4, 0), row), (min(centre + 4, 27), row), 255, 2)
    ys, xs = np.nonzero(image > 20)
    if len(ys) == 0:
        return np.zeros((max(height_px, 1), max(height_px // 2, 1)), np.float32)
    crop = image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h = max(4, int(round(height_px * rng.uniform(0.9, 1.1))))
    scale = h / crop.shape[0]
    w = max(2, int(round(crop.shape[1] * scale * rng.uniform(0.9, 1.1))))
    glyph = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
    # Stroke width: measure this glyph's (2 x area / boundary length of its ink) and thin or
    # thicken it towards the writer's pen width.
    stroke_px = style.stroke_mm / 25.4 * dpi
    current = _stroke_width(glyph)
    pad = 2 + int(abs(style.slant) * h / 2 + 0.1 * h)
    glyph = cv2.copyMakeBorder(glyph, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    change = int(round((stroke_px - current) / 2))
    if change > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * change + 1, 2 * change + 1))
        glyph = cv2.dilate(glyph, kernel)
    elif change < 0:
        size = min(-change, int(current - 2.5) // 2)  # never thinner than about 2.5 px
        if size > 0:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * size + 1, 2 * size + 1))
            glyph = cv2.erode(glyph, kernel)
    angle = np.deg2rad(rng.normal(0.0, 4.0))
    slant = style.slant + rng.normal(0.0, 0.05)
    ch, cw = glyph.shape[0] / 2, glyph.shape[1] / 2
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shear = np.array([[1.0, -slant], [0.0, 1.0]])
    linear = rotation @ shear
    offset = np.array([cw, ch]) - linear @ np.array([cw, ch])
    matrix = np.hstack([linear, offset[:, None]]).astype(np.float32)
    glyph = cv2.warpAffine(glyph, matrix, (glyph.shape[1], glyph.shape[0]), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(glyph > 10)
    if len(ys):
        glyph = glyph[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    # Ballpoint ink is opaque: only the stroke edges are soft, not the (resampled) strokes.
    return np.minimum(glyph.astype(np.float32) * (1.6 / 255.0), 1.0)


def render_number(
    text: str, style: WriterStyle, height_px: int, dpi: float, bank: DigitBank, rng
) -> np.ndarray:
    """The digits of ``text`` side by side: ink alpha ``(h, w)`` float32 in 0..1."""
    glyphs = [_glyph(int(ch), style, height_px, dpi, bank, rng) for ch in text]
    baseline_jitter = [int(rng.normal(0, 0.05 * height_px)) for _ in glyphs]
    gaps = [
        int(round(style.spacing * g.shape[1] + rng.normal(0, 0.05 * height_px))) for g in glyphs
    ]
    top_pad = max(0, -min(baseline_jitter)) + 1
    height = max(g.shape[0] for g in glyphs) + top_pad + max(0, max(baseline_jitter)) + 1
    xs, x = [], 0
    for glyph, gap in zip(glyphs, gaps, strict=True):
        xs.append(x)
        x += glyph.shape[1] + gap
    x_min = min(xs)
    width = max(xv - x_min + g.shape[1] for xv, g in zip(xs, glyphs, strict=True)) + 1
    canvas = np.zeros((height, width), np.float32)
    for glyph, xv, dy in zip(glyphs, xs, baseline_jitter, strict=True):
        top = top_pad + dy + (height - top_pad - 1 - glyph.shape[0]) // 2
        top = min(max(top, 0), height - glyph.shape[0])
        left = xv - x_min
        region = canvas[top : top + glyph.shape[0], left : left + glyph.shape[1]]
        np.maximum(region, glyph, out=region)
    return canvas


def composite_ink(
    page: np.ndarray, alpha: np.ndarray, left: int, top: int, ink_bgr, opacity: float
) -> None:
    """Lay ink ``alpha`` ``(h, w)`` on ``page`` ``(H, W, 3)`` uint8 at ``(left, top)``, clipped."""
    height, width = page.shape[:2]
    h, w = alpha.shape
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + w, width), min(top + h, height)
    if x0 >= x1 or y0 >= y1:
        return
    a = alpha[y0 - top : y1 - top, x0 - left : x1 - left, None] * opacity
    region = page[y0:y1, x0:x1].astype(np.float32)
    ink = np.asarray(ink_bgr, np.float32)
    # Ink darkens the paper (multiplicative, like a pen over printed lines).
    blended = region * (1 - a) + np.minimum(region, ink) * a
    page[y0:y1, x0:x1] = blended.astype(np.uint8)


def write_number(
    page: np.ndarray,
    box_px: tuple[int, int, int, int],
    text: str,
    style: WriterStyle,
    dpi: float,
    bank: DigitBank,
    rng: np.random.Generator,
    cross_line_probability: float = 0.06,
) -> tuple[int, int, int, int]:
    """Write ``text`` (digits) by hand into the cell ``box_px`` of ``page`` (in place).

    The number is off centre by the writer's habit and, with ``cross_line_probability``,
    shifted so that it crosses one of the cell's ruled lines. Returns the ink's bounding box
    ``(x0, y0, x1, y1)`` in page pixels.
    """
    x0, y0, x1, y1 = box_px
    cell_w, cell_h = x1 - x0, y1 - y0
    height_px = max(6, int(round(cell_h * style.height_frac)))
    alpha = render_number(text, style, height_px, dpi, bank, rng)
    max_w = 0.92 * cell_w
    if alpha.shape[1] > max_w:
        factor = max_w / alpha.shape[1]
        size = (max(1, int(alpha.shape[1] * factor)), max(1, int(alpha.shape[0] * factor)))
        alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
    h, w = alpha.shape
    cx = (x0 + x1) / 2 + rng.normal(0, style.off_centre) * cell_w
    cy = (y0 + y1) / 2 + rng.normal(0, 0.06) * cell_h
    cx = float(np.clip(cx, x0 + w / 2, x1 - w / 2)) if w < cell_w else (x0 + x1) / 2
    if rng.random() < cross_line_probability:
        side = rng.choice([-1, 1])
        cy = (y0 + y1) / 2 + side * (cell_h / 2 - h / 2 + rng.uniform(0.1, 0.3) * h)
    left, top = int(round(cx - w / 2)), int(round(cy - h / 2))
    composite_ink(page, alpha, left, top, style.ink_bgr, style.opacity)
    return left, top, left + w, top + h


def write_correction(
    page: np.ndarray,
    box_px: tuple[int, int, int, int],
    wrong: str,
    right: str,
    style: WriterStyle,
    dpi: float,
    bank: DigitBank,
    rng: np.random.Generator,
) -> None:
    """A corrected cell: ``wrong`` struck through on the left, ``right`` beside it."""
    x0, y0, x1, y1 = box_px
    split = x0 + int(0.45 * (x1 - x0))
    small = replace(style, height_frac=style.height_frac * 0.8)
    bx0, by0, bx1, by1 = write_number(page, (x0, y0, split, y1), wrong, small, dpi, bank, rng, 0.0)
    thickness = max(1, int(round(style.stroke_mm / 25.4 * dpi)))
    alpha = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.float32)
    mid = (by0 + by1) // 2 - y0
    # A pen crossing a number out runs well past it: a line ending 2 px beyond a single "4"
    # is the 4's own bar, a correction nobody could see.
    over = max(3, round(0.3 * (by1 - by0)))
    if rng.random() < 0.5:
        cv2.line(alpha, (bx0 - x0 - over, mid + 2), (bx1 - x0 + over, mid - 3), 1.0, thickness)
    else:  # crossed out with an X
        cv2.line(alpha, (bx0 - x0, by0 - y0), (bx1 - x0, by1 - y0), 1.0, thickness)
        cv2.line(alpha, (bx0 - x0, by1 - y0), (bx1 - x0, by0 - y0), 1.0, thickness)
    composite_ink(page, alpha, x0, y0, style.ink_bgr, style.opacity)
    write_number(page, (split, y0, x1, y1), right, style, dpi, bank, rng, 0.0)


def draw_squiggle(
    page: np.ndarray,
    box_px: tuple[int, int, int, int],
    style: WriterStyle,
    dpi: float,
    rng: np.random.Generator,
) -> None:
    """A signature-like scribble filling ``box_px`` (a random smooth loop line)."""
    x0, y0, x1, y1 = box_px
    n = int(rng.integers(6, 14))
    t = np.linspace(0, 1, n * 8)
    xs = x0 + (x1 - x0) * (t + 0.04 * np.sin(2 * np.pi * rng.uniform(3, 8) * t))
    freq, phase = rng.uniform(4, 12), rng.uniform(0, 2 * np.pi)
    ys = (y0 + y1) / 2 + (y1 - y0) / 2 * np.sin(2 * np.pi * freq * t + phase) * rng.uniform(
        0.4, 1.0, size=t.shape
    ).cumsum() / np.arange(1, len(t) + 1)
    points = np.stack([xs, ys], axis=1).round().astype(np.int32)
    thickness = max(1, int(round(style.stroke_mm / 25.4 * dpi)))
    colour = tuple(int(c) for c in style.ink_bgr)
    cv2.polylines(page, [points], False, colour, thickness, cv2.LINE_AA)


def draw_stray_mark(
    page: np.ndarray,
    centre: tuple[int, int],
    style: WriterStyle,
    dpi: float,
    rng: np.random.Generator,
) -> None:
    """A small stray pen mark at ``centre``: a dot, a tick or a short dash."""
    size = max(2, int(rng.uniform(0.5, 2.0) / 25.4 * dpi))
    x, y = centre
    colour = tuple(int(c) for c in style.ink_bgr)
    thickness = max(1, int(round(style.stroke_mm / 25.4 * dpi)))
    kind = rng.integers(3)
    if kind == 0:
        cv2.circle(page, (x, y), max(1, thickness), colour, -1, cv2.LINE_AA)
    elif kind == 1:
        cv2.line(page, (x, y), (x + size, y - size), colour, thickness, cv2.LINE_AA)
    else:
        cv2.line(
            page, (x - size, y), (x + size, y + int(size * 0.2)), colour, thickness, cv2.LINE_AA
        )
