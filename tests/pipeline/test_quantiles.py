"""The pipeline's medians and percentiles give numpy's figures exactly."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.quantiles import histogram_median, histogram_percentile, median, percentile


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
