"""Cut a cell's crop out of its scan, by the box stored with the reading, for a person to look at.

Boxes are pixel rectangles (x0, y0, x1, y1) on the scan as stored (``cell_reading.box``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.errors import BadInput


def crop_box(image: np.ndarray, box: Sequence[int], margin: int = 6) -> np.ndarray:
    """The (h, w[, c]) part of ``image`` inside ``box`` widened by ``margin`` px, clipped.

    Raises BadInput for a box that is not four integers with x0 < x1, y0 < y1, or that lies
    wholly outside the image.
    """
    if len(box) != 4:
        raise BadInput(f"a crop box has four numbers (x0, y0, x1, y1), got {list(box)}")
    x0, y0, x1, y1 = (int(v) for v in box)
    if x0 >= x1 or y0 >= y1:
        raise BadInput(f"empty crop box {list(box)}: need x0 < x1 and y0 < y1")
    height, width = image.shape[:2]
    left, top = max(0, x0 - margin), max(0, y0 - margin)
    right, bottom = min(width, x1 + margin), min(height, y1 + margin)
    if left >= right or top >= bottom:
        raise BadInput(f"crop box {list(box)} lies outside the {width}x{height} scan")
    return image[top:bottom, left:right]


def read_crop(path: str | Path, box: Sequence[int] | None, margin: int = 6) -> np.ndarray | None:
    """The crop of ``box`` on the scan at ``path`` (uint8 grey), or None when the scan file is
    missing or unreadable or there is no usable box (the report then shows no picture)."""
    if box is None or not Path(path).is_file():
        return None
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        return None
    try:
        return crop_box(image, box, margin)
    except BadInput:
        return None


def png_bytes(image: np.ndarray) -> bytes:
    """``image`` (uint8, grey or BGR) encoded as PNG."""
    import cv2

    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise BadInput(f"cannot encode a {image.shape} {image.dtype} image as PNG")
    return encoded.tobytes()
