"""Training-data synthesis: Argentine 1s, crossed 7s, junk, seeded augmentation."""

from __future__ import annotations

import numpy as np

from pipeline.augment import (
    NOT_A_DIGIT,
    argentine_one,
    augmented_epoch,
    branched_one,
    crossed_seven,
    digit_pair,
    flagged_ones,
    junk,
    one_in_pair,
    to_canvas,
)
from pipeline.evaluation import load_mnist_sample
from pipeline.reframe import reframe_digit


def vertical_stroke() -> np.ndarray:
    """A plain '1': a vertical bar, (28, 28) uint8."""
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 13:16] = 255
    return digit


def test_argentine_one_adds_an_up_stroke_left_of_the_top():
    canvas = argentine_one(to_canvas(vertical_stroke()), np.random.default_rng(0))
    # Canvas pads by 8: the stem spans columns 21..23, rows 12..31.
    upper_left = canvas[12:24, :21]
    lower_left = canvas[26:, :21]
    assert upper_left.max() > 128
    assert lower_left.max() < 128 or upper_left.sum() > lower_left.sum()


def test_branched_one_adds_a_flag_from_partway_down_the_stem_to_the_lower_left():
    for seed in range(10):
        canvas = branched_one(to_canvas(vertical_stroke()), np.random.default_rng(seed))
        # The stem spans columns 21..23 and rows 12..31: left of it, the top of the 1 stays
        # bare and the flag's end lies in its lower half, well left of the stem.
        assert canvas[12:17, :20].max() < 64
        assert canvas[22:34, :17].max() > 128


def test_flagged_ones_gives_a_share_of_the_ones_a_flag_and_leaves_the_rest():
    x, y = load_mnist_sample()
    out = flagged_ones(x, y, 0.5, np.random.default_rng(4))
    changed = (out != x).any(axis=(1, 2))
    ones = np.flatnonzero(y == 1)
    assert not changed[y != 1].any()
    assert 0.3 < changed[ones].mean() < 0.7

    # A flagged 1 is wider than the same 1 only reframed: the flag adds ink beside the stem.
    def width(digit):
        return int((digit > 64).any(axis=0).sum())

    flagged = [i for i in ones if changed[i]]
    wider = [width(out[i]) > width(reframe_digit(to_canvas(x[i]))) for i in flagged]
    assert np.mean(wider) > 0.8


def test_a_share_of_zero_flags_no_one_and_a_share_of_one_flags_every_one():
    x, y = load_mnist_sample()
    assert np.array_equal(flagged_ones(x, y, 0.0, np.random.default_rng(5)), x)
    everyone = flagged_ones(x, y, 1.0, np.random.default_rng(5))
    assert (everyone != x).any(axis=(1, 2))[y == 1].all()


def test_crossed_seven_adds_a_bar_through_the_middle_of_the_stem():
    seven = np.zeros((28, 28), np.uint8)
    seven[4:7, 6:22] = 255  # top bar
    for row in range(7, 24):  # stem going down-left
        column = 20 - (row - 7) // 2
        seven[row, column - 1 : column + 2] = 255
    before = to_canvas(seven)
    after = crossed_seven(before.copy(), np.random.default_rng(1))
    middle = slice(8 + 12, 8 + 20)
    widest_before = (before[middle] > 128).sum(axis=1).max()
    widest_after = (after[middle] > 128).sum(axis=1).max()
    assert widest_after >= widest_before + 4


def test_junk_is_a_reframed_image():
    rng = np.random.default_rng(2)
    for _ in range(20):
        image = junk(rng)
        assert image.shape == (28, 28) and image.dtype == np.uint8 and image.max() > 0


def test_augmented_epoch_is_seeded_and_adds_not_a_digit_samples():
    x, y = load_mnist_sample()
    x, y = x[:50], y[:50]
    first = augmented_epoch(x, y, np.random.default_rng(3))
    second = augmented_epoch(x, y, np.random.default_rng(3))
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    images, labels = first
    assert images.shape == (50 + 5 + 4, 28, 28) and images.dtype == np.uint8  # 10% + 8%
    assert np.array_equal(labels[:50], y) and np.all(labels[50:] == NOT_A_DIGIT)
    assert not np.array_equal(images[:50], x)  # distorted, not copies


def ring() -> np.ndarray:
    """A '0': an ellipse outline 12 px wide, (28, 28) uint8."""
    import cv2

    digit = np.zeros((28, 28), np.uint8)
    cv2.ellipse(digit, (14, 14), (6, 10), 0, 0, 360, 255, 2)
    return digit


def aspect(image: np.ndarray) -> float:
    """Width over height of an image's ink."""
    rows = np.flatnonzero(image.max(axis=1) > 64)
    cols = np.flatnonzero(image.max(axis=0) > 64)
    return (cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1)


def test_a_one_written_into_its_neighbour_overlaps_it_more_than_a_touching_pair():
    """``digit_pair`` writes two digits -2..2 px apart; ``one_in_pair`` sinks the 1 into its
    neighbour by up to 60% of the 1's width (here 8 px): on average the pair is narrower."""
    one = np.zeros((28, 28), np.uint8)
    one[4:24, 10:18] = 255
    zero = ring()
    inside = [aspect(one_in_pair(one, zero, np.random.default_rng(seed))) for seed in range(100)]
    touching = [aspect(digit_pair(one, zero, np.random.default_rng(seed))) for seed in range(100)]
    assert all(image_aspect > 0 for image_aspect in inside)
    assert np.mean(inside) < np.mean(touching) - 0.03


def test_a_wide_slanted_one_beside_a_narrow_neighbour_stays_on_its_side():
    """The overlap is capped by the neighbour's width: a 20 px wide slanted 1 never passes
    beyond a 2 px wide neighbour (which once drew it off the canvas)."""
    slanted = np.zeros((28, 28), np.uint8)
    for row in range(4, 24):
        slanted[row, 24 - row : 27 - row] = 255
    narrow = np.zeros((28, 28), np.uint8)
    narrow[4:24, 13:15] = 255
    for seed in range(40):
        image = one_in_pair(slanted, narrow, np.random.default_rng(seed))
        assert image.shape == (28, 28) and image.max() > 0


def test_ones_in_pairs_are_added_after_the_other_images_without_changing_them():
    x, y = load_mnist_sample()
    x, y = x[:50], y[:50]
    plain = augmented_epoch(x, y, np.random.default_rng(3))
    with_pairs = augmented_epoch(x, y, np.random.default_rng(3), one_pair_share=0.2)
    assert np.array_equal(with_pairs[0][: len(plain[0])], plain[0])
    assert len(with_pairs[0]) == len(plain[0]) + 10
    assert np.all(with_pairs[1][len(plain[1]) :] == NOT_A_DIGIT)
    no_ones = y != 1
    without_ones = augmented_epoch(x[no_ones], y[no_ones], np.random.default_rng(3), 0.1, 0.08)
    again = augmented_epoch(x[no_ones], y[no_ones], np.random.default_rng(3), one_pair_share=0.2)
    assert np.array_equal(without_ones[0], again[0])
    too_few = augmented_epoch(x, y, np.random.default_rng(3), one_pair_share=0.005)  # 0.25
    assert np.array_equal(too_few[0], plain[0])
