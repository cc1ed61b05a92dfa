"""The pipeline's medians and percentiles give numpy's figures exactly."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.quantiles import (
    histogram_median,
    histogram_median_below,
    histogram_percentile,
    median,
    percentile,
)


@pytest.mark.parametrize("size", [1, 2, 7, 300, 1001])
def test_sorted_median_and_percentile_equal_numpys(size):
    rng = np.random.default_rng(size)
    values = rng.normal(100, 40, size).astype(np.float32)
    assert median(values) == float(np.median(values))
    for q in (0, 2.5, 50, 90, 98, 99.9, 100):
        assert percentile(values, q) == float(np.percentile(values, q))
    integers = rng.integers(0, 9, size)
    assert median(integers) == float(np.median(integers))


@pytest.mark.parametrize("size", [1, 2, 51, 4096])
def test_histogram_median_and_percentile_equal_numpys_on_the_values(size):
    rng = np.random.default_rng(size)
    pixels = rng.integers(0, 256, size).astype(np.uint8)
    counts = np.bincount(pixels, minlength=256)
    levels = 255.0 - np.arange(256, dtype=np.float32)  # a decreasing map: ranks are re-sorted
    values = levels[pixels]
    assert histogram_median(counts, levels) == np.median(values)
    for q in (0, 50, 90, 99.9, 100):
        assert histogram_percentile(counts, levels, q) == float(np.percentile(values, q))


def test_histogram_median_below_a_bound_agrees_with_the_median():
    """Odd and even counts, the grey levels as they are and stretched from 0/1 to 0/255, and
    pixels split exactly in half at the bound, where the two middle values decide."""
    rng = np.random.default_rng(7)
    grey = np.arange(256, dtype=np.float32)
    for trial in range(400):
        size = int(rng.integers(1, 60))
        pixels = rng.integers(0, 256 if trial % 4 else 2, size)
        if trial % 3 == 0 and size % 2 == 0:  # half below 128, half at or above
            pixels = np.concatenate(
                [rng.integers(0, 128, size // 2), rng.integers(128, 256, size // 2)]
            )
        counts = np.bincount(pixels, minlength=256)
        levels = grey * 255.0 if trial % 4 == 0 else grey
        for bound in (1.0, 128.0, 200.5):
            expected = bool(histogram_median(counts, levels) < bound)
            assert histogram_median_below(counts, levels, bound) is expected, (trial, bound)
