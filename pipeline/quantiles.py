"""Medians and percentiles with numpy's figures, cheaper on the pipeline's small inputs.

``np.median`` and ``np.percentile`` cost tens of microseconds of machinery per call, which
adds up over the thousands of cells and digit crops of a chunk. These give the same numbers
(numpy's default "linear" method and its arithmetic: a float64 index, interpolation in the
values' dtype, the mean of the two middle values for an even median), either by sorting the
values or, for values that take few distinct levels (grey levels 0..255), from their
histogram without building or sorting the pixels.
"""

from __future__ import annotations

import math

import numpy as np


def _interpolate(a, b, gamma: float):
    """numpy's linear interpolation between neighbouring order statistics a <= b."""
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def median(values: np.ndarray) -> float:
    """``float(np.median(values))`` of finite values."""
    ordered = np.sort(values, axis=None)
    middle = ordered.size // 2
    if ordered.size % 2:
        return float(ordered[middle])
    return float(np.mean(ordered[middle - 1 : middle + 1]))


def percentile(values: np.ndarray, q: float) -> float:
    """``float(np.percentile(values, q))`` of finite values."""
    ordered = np.sort(values, axis=None)
    virtual = (ordered.size - 1) * (q / 100)
    if virtual >= ordered.size - 1:
        return float(ordered[-1])
    below = math.floor(virtual)
    return float(_interpolate(ordered[below], ordered[below + 1], virtual - below))


def _ranked(counts: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Levels sorted by value, the cumulative counts in that order, and the number of values."""
    order = np.argsort(levels, kind="stable")
    cumulative = np.cumsum(counts[order])
    return levels[order], cumulative, int(cumulative[-1])


def histogram_median(counts: np.ndarray, levels: np.ndarray):
    """``np.median`` of the values ``levels[i]`` repeated ``counts[i]`` times, in the levels'
    dtype (float32 levels give a float32 median, as np.median of float32 values does)."""
    values, cumulative, size = _ranked(counts, levels)
    middle = np.searchsorted(cumulative, [(size - 1) // 2, size // 2], side="right")
    return np.mean(values[middle]) if size % 2 == 0 else values[middle[1]]


def histogram_percentile(counts: np.ndarray, levels: np.ndarray, q: float) -> float:
    """``float(np.percentile(values, q))`` of the values ``levels[i]`` repeated ``counts[i]``
    times."""
    values, cumulative, size = _ranked(counts, levels)
    virtual = (size - 1) * (q / 100)
    if virtual >= size - 1:
        return float(values[np.searchsorted(cumulative, size - 1, side="right")])
    below = math.floor(virtual)
    at = np.searchsorted(cumulative, [below, below + 1], side="right")
    return float(_interpolate(values[at[0]], values[at[1]], virtual - below))


def histogram_median_below(counts: np.ndarray, levels: np.ndarray, bound: float) -> bool:
    """``histogram_median(counts, levels) < bound``, mostly from one count: the median is below
    ``bound`` when more than half the values are, and not when fewer than half are (or exactly
    half of an odd number); only an even split needs the two middle values."""
    size = int(counts.sum())
    half = size // 2
    below = int(counts[levels < bound].sum())
    if below > half:
        return True
    if below < half or size % 2:
        return False
    return bool(histogram_median(counts, levels) < bound)
