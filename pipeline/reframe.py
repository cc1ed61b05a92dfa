"""Reframing: turn any cropped digit into the 28x28 frame the digit models were trained on.

Two methods, both returning a ``(28, 28) uint8`` image with white ink on black:

* ``reframe_mnist`` -- the way MNIST itself was made: the ink's bounding box is scaled
  (keeping the aspect ratio, anti-aliased) to fit a 20x20 box, and that box is placed in the
  28x28 frame so that the ink's centre of mass falls on the frame's centre.
* ``reframe_paper`` -- the published four-step version: grey, pad to a square, add a margin,
  resize to 28x28, invert (here: make the ink white whatever its polarity).

``reframe_digit`` is the one the pipeline calls; it uses ``reframe_mnist``, which measured
better (see ``bench/bench_model.py --reframe`` and the model card figures).

Input may be any size, grey (H, W), colour (H, W, 3|4) or binary (bool or 0/1), with dark ink
on a light background or light ink on a dark one (``ink_is_dark`` decides). Pure numpy + cv2.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from pipeline.errors import BadInput
from pipeline.quantiles import median, percentile

FRAME = 28
BOX = 20
# Ink must stand this many grey levels (of 255) above the background to count as ink at all.
MIN_CONTRAST = 24
# Pixels fainter than this share of the ink's full contrast are background noise.
INK_FLOOR = 0.06


def to_grey(image: np.ndarray) -> np.ndarray:
    """Any 2-D/3-D image (bool, 0/1, uint8, uint16, float 0..1 or 0..255) -> (H, W) float32."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3 and array.shape[2] in (3, 4):
        array = array[:, :, :3].astype(np.float32)
        # ITU-R 601 luma, channel order agnostic enough for ink on paper.
        array = 0.299 * array[:, :, 0] + 0.587 * array[:, :, 1] + 0.114 * array[:, :, 2]
    if array.ndim != 2:
        raise BadInput(f"digit image must be 2-D grey or colour (H, W, 3), got shape {array.shape}")
    if array.size == 0 or min(array.shape) < 1:
        raise BadInput(f"digit image is empty (shape {array.shape})")
    if array.dtype == bool:
        return array.astype(np.float32) * 255.0
    grey = array.astype(np.float32)
    if array.dtype == np.uint8:  # the common case (digit crops): finite, at most 255
        return grey * 255.0 if array.max() <= 1 else grey
    if not np.all(np.isfinite(grey)):
        raise BadInput("digit image contains NaN or infinite values")
    top = float(grey.max())
    if array.dtype == np.uint16 or top > 255.0:
        grey = grey * (255.0 / max(top, 1.0))
    elif not np.issubdtype(array.dtype, np.integer) and top <= 1.0:
        grey = grey * 255.0  # float image in 0..1 (or binary 0/1 stored as float)
    elif np.issubdtype(array.dtype, np.integer) and top <= 1.0:
        grey = grey * 255.0  # binary 0/1 integers
    return grey


def _border(image: np.ndarray) -> np.ndarray:
    """The outermost ring of pixels, flattened (image at least 3x3)."""
    return np.concatenate([image[0, :], image[-1, :], image[1:-1, 0], image[1:-1, -1]])


def _background_level(grey: np.ndarray) -> float:
    """The background's grey level.

    Normally the median of the border pixels (right even when the ink touches one edge). When
    the border is split between dark and light (a tight crop whose strokes run along the edges),
    the median of the whole image: strokes cover less than half of a digit's crop.
    """
    if min(grey.shape) <= 2:
        return median(grey)
    border = _border(grey)
    if not border.any():  # a crop padded with black (the pipeline's): its median, cheaply
        return 0.0
    light_share = np.count_nonzero(border > 127.5) / border.size
    if 0.3 < light_share < 0.7:
        return median(grey)
    return median(border)


def ink_is_dark(image: np.ndarray) -> bool:
    """True when the ink is darker than the background (pen on paper), False for white on black.

    The background is the border's median grey (see ``_background_level``); ink is what
    differs from it.
    """
    return _background_level(to_grey(image)) > 127.5


def ink_white_on_black(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 0..255 with the background at 0 and the strongest ink at 255.

    Raises ``BadInput`` when no pixel stands ``MIN_CONTRAST`` levels out of the background.
    """
    grey = to_grey(image)
    background = _background_level(grey)
    if background > 127.5:  # dark ink on light paper
        grey = 255.0 - grey
        background = 255.0 - background
    ink = grey - background
    np.maximum(ink, 0.0, out=ink)
    top = float(ink.max())
    if top < MIN_CONTRAST:
        raise BadInput(
            f"digit image {grey.shape[1]}x{grey.shape[0]} has no ink "
            f"(contrast {top:.0f} < {MIN_CONTRAST} grey levels)"
        )
    # Paper grain and scanner noise: what the border's background pixels show above their
    # median is not ink. Border pixels brighter than half the ink are ink touching the edge.
    border = _border(ink) if min(ink.shape) > 2 else np.zeros(0, np.float32)
    background = border[border < 0.5 * top]
    noise = percentile(background, 98) if background.any() else 0.0
    floor = min(max(INK_FLOOR * top, 1.5 * noise), 0.35 * top)
    ink[ink <= floor] = 0.0
    if not ink.any():
        raise BadInput(
            f"digit image {grey.shape[1]}x{grey.shape[0]} has no ink above the paper's noise"
        )
    ink *= 255.0 / top
    return ink


def _ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the nonzero pixels, bottom/right exclusive."""
    x, y, width, height = cv2.boundingRect((ink != 0).view(np.uint8))  # 1/3 of np.any per axis
    return y, y + height, x, x + width


def _resize(ink: np.ndarray, width: int, height: int) -> np.ndarray:
    """Anti-aliased resize: area averaging to shrink, bilinear to enlarge, copy when equal."""
    if ink.shape == (height, width):
        return ink.copy()
    shrinking = width * height < ink.shape[0] * ink.shape[1]
    method = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(ink, (width, height), interpolation=method)


@lru_cache(maxsize=512)
def _indices(shape: tuple[int, int]) -> np.ndarray:
    """``np.indices(shape, dtype=np.float64)``, made once per shape (read-only)."""
    indices = np.indices(shape, dtype=np.float64)
    indices.flags.writeable = False
    return indices


def reframe_mnist(image: np.ndarray) -> np.ndarray:
    """MNIST method: ink box into 20x20 keeping aspect, centre of mass at the 28x28 centre.

    image: any cropped digit, see module docstring. Returns (28, 28) uint8, white ink on black.
    """
    ink = ink_white_on_black(image)
    top, bottom, left, right = _ink_box(ink)
    ink = ink[top:bottom, left:right]
    height, width = ink.shape
    scale = BOX / max(height, width)
    new_w = max(1, min(BOX, round(width * scale)))
    new_h = max(1, min(BOX, round(height * scale)))
    box = _resize(ink, new_w, new_h)
    total = float(box.sum())
    ys, xs = _indices(box.shape)
    centre_y = float((ys * box).sum() / total)
    centre_x = float((xs * box).sum() / total)
    # Integer placement of the box so its centre of mass lands on pixel (14, 14), where MNIST
    # puts it (measured: mean 13.98, 14.01 on the test set), while the box stays in the frame.
    offset_y = min(max(round(FRAME / 2 - centre_y), 0), FRAME - new_h)
    offset_x = min(max(round(FRAME / 2 - centre_x), 0), FRAME - new_w)
    frame = np.zeros((FRAME, FRAME), np.float32)
    frame[offset_y : offset_y + new_h, offset_x : offset_x + new_w] = box
    # The ink is 0..255 and both resizes interpolate, so only rounding can pass 255.
    return np.minimum(np.rint(frame, out=frame), 255.0, out=frame).astype(np.uint8)


def reframe_paper(image: np.ndarray, margin_ratio: float = 0.2) -> np.ndarray:
    """Published four steps: grey, pad to square, add a margin, resize to 28x28, invert.

    The crop is used as given (no ink box, no centre of mass); the margin is ``margin_ratio``
    of the square's side on each side. The inversion is replaced by polarity detection so
    light-on-dark input is handled too. Returns (28, 28) uint8, white ink on black.
    """
    ink = ink_white_on_black(image)
    height, width = ink.shape
    side = max(height, width)
    margin = max(1, round(side * margin_ratio))
    full = side + 2 * margin
    square = np.zeros((full, full), np.float32)
    top = margin + (side - height) // 2
    left = margin + (side - width) // 2
    square[top : top + height, left : left + width] = ink
    frame = _resize(square, FRAME, FRAME)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def reframe_digit(image: np.ndarray) -> np.ndarray:
    """The pipeline's reframing (MNIST method). (H, W[, C]) any polarity -> (28, 28) uint8."""
    return reframe_mnist(image)


METHODS = {"mnist": reframe_mnist, "paper": reframe_paper}


def reframe_many(images, method: str = "mnist") -> np.ndarray:
    """Reframe a sequence of digit images -> (N, 28, 28) uint8. method: "mnist" or "paper".

    A blank image raises ``BadInput`` naming its index.
    """
    if method not in METHODS:
        raise BadInput(f"reframe method must be one of {', '.join(METHODS)}, got {method!r}")
    reframe = METHODS[method]
    out = np.zeros((len(images), FRAME, FRAME), np.uint8)
    for index in range(len(images)):
        try:
            out[index] = reframe(images[index])
        except BadInput as exc:
            raise BadInput(f"image {index}: {exc}") from exc
    return out
