"""Cells built from real MNIST digits for the segmentation and numbers tests.

Digits come from ``pipeline/fixtures/mnist_sample.npz`` (1,000 MNIST test digits, keys x, y),
or from ../shared/data/mnist.npz when the fixture is missing.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).resolve().parents[2] / "pipeline" / "fixtures" / "mnist_sample.npz"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist.npz"


@cache
def mnist_sample() -> tuple[np.ndarray, np.ndarray]:
    """(x (N, 28, 28) uint8 white ink on black, y (N,) int)."""
    if FIXTURE.is_file():
        data = np.load(FIXTURE)
        return data["x"], data["y"].astype(int)
    data = np.load(SHARED)
    return data["x_test"][:1000], data["y_test"][:1000].astype(int)


def digit(label: int, nth: int = 0) -> np.ndarray:
    """The nth sample digit of this class, cut to its ink box: (h, w) uint8 white on black."""
    x, y = mnist_sample()
    image = x[np.flatnonzero(y == label)[nth]]
    rows = np.flatnonzero(image.max(axis=1) > 0)
    cols = np.flatnonzero(image.max(axis=0) > 0)
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def compose(
    digits: list[np.ndarray], gaps: list[int], height: int = 44, margin: int = 8
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Paper cell (height, W) uint8, dark ink on white, with the digits side by side.

    gaps[i] is the space in px between digit i and i+1 (negative: they overlap, ink combined
    by maximum). Returns the cell and each digit's (x0, x1) column range."""
    width = sum(d.shape[1] for d in digits) + sum(gaps) + 2 * margin
    ink = np.zeros((height, width), np.uint8)
    ranges = []
    x = margin
    for index, image in enumerate(digits):
        y = (height - image.shape[0]) // 2
        region = ink[y : y + image.shape[0], x : x + image.shape[1]]
        np.maximum(region, image, out=region)
        ranges.append((x, x + image.shape[1]))
        x += image.shape[1] + (gaps[index] if index < len(gaps) else 0)
    return 255 - ink, ranges
