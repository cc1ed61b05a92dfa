"""Reframing: any cropped digit -> 28x28 uint8, white ink on black, MNIST-style framing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.errors import BadInput
from pipeline.evaluation import load_mnist_sample
from pipeline.reframe import ink_is_dark, reframe_digit, reframe_many, reframe_paper


def scanned_seven(height: int = 90, width: int = 60) -> np.ndarray:
    """A dark-ink '7' on light paper, as cut from a scan: (H, W) uint8."""
    image = np.full((height, width), 235, np.uint8)
    cv2.line(image, (10, 12), (50, 12), 30, 6)
    cv2.line(image, (50, 12), (22, 80), 30, 6)
    return image


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(image.shape)
    total = image.sum()
    return float((ys * image).sum() / total), float((xs * image).sum() / total)


def ink_box(image: np.ndarray, level: int = 0) -> tuple[int, int]:
    rows = np.flatnonzero((image > level).any(axis=1))
    cols = np.flatnonzero((image > level).any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def scanned_zero(height: int = 70, width: int = 50) -> np.ndarray:
    """A dark-ink '0' (an ellipse, symmetric) on light paper: (H, W) uint8."""
    image = np.full((height, width), 230, np.uint8)
    cv2.ellipse(image, (width // 2, height // 2), (15, 25), 0, 0, 360, 20, 5)
    return image


def test_output_is_28x28_uint8_white_ink_on_black():
    frame = reframe_digit(scanned_zero())
    assert frame.shape == (28, 28) and frame.dtype == np.uint8
    assert frame.max() == 255
    # A symmetric digit sits in the middle with a 4-pixel black margin all round.
    assert frame[0].max() == 0 and frame[-1].max() == 0
    assert frame[:, 0].max() == 0 and frame[:, -1].max() == 0


def test_ink_fits_a_20_pixel_box_keeping_the_aspect_ratio():
    height, width = ink_box(reframe_digit(scanned_seven()))
    assert height == 20
    # The drawn 7 is 74 px high and 46 px wide: about 0.62 of its height.
    assert 0.5 < width / height < 0.75


def test_centre_of_mass_is_at_the_frame_centre():
    for image in (scanned_seven(), scanned_seven(40, 200), scanned_seven(300, 90)):
        y, x = centre_of_mass(reframe_digit(image).astype(np.float64))
        assert abs(y - 14) <= 1.0 and abs(x - 14) <= 1.0


def test_both_polarities_give_the_same_frame():
    dark_on_light = scanned_seven()
    light_on_dark = 255 - dark_on_light
    assert ink_is_dark(dark_on_light)
    assert not ink_is_dark(light_on_dark)
    difference = np.abs(
        reframe_digit(dark_on_light).astype(int) - reframe_digit(light_on_dark).astype(int)
    )
    assert difference.max() <= 1


def test_a_black_padded_crop_frames_exactly_as_its_negative():
    """The pipeline's crops are white ink padded with black, whose background is taken as 0
    without measuring it; their negatives (dark ink on white) go the measured way."""
    digits, _ = load_mnist_sample()
    for digit in digits[:50]:
        crop = np.pad(digit[3:-3, 3:-3], 4)
        assert np.array_equal(reframe_digit(crop), reframe_digit(255 - crop))


def test_colour_binary_and_float_inputs_are_accepted():
    grey = scanned_seven()
    colour = np.dstack([grey, grey, grey])
    binary = grey < 128
    as_float = grey.astype(np.float32) / 255.0
    reference = reframe_digit(grey)
    for image in (colour, binary, as_float):
        frame = reframe_digit(image)
        assert frame.shape == (28, 28) and frame.dtype == np.uint8
        # Same ink pixels, up to anti-aliasing at the stroke edges.
        assert np.mean((frame > 127) == (reference > 127)) > 0.95


@pytest.mark.parametrize(
    "image",
    [
        np.full((40, 30), 255, np.uint8),  # blank paper
        np.zeros((28, 28), np.uint8),  # blank black
        np.full((40, 30), 120, np.uint8) + np.eye(40, 30, dtype=np.uint8) * 10,  # too faint
        np.zeros((0, 10), np.uint8),  # empty array
        np.zeros((4, 4, 4, 4), np.uint8),  # not an image
    ],
    ids=["white", "black", "faint", "empty", "4d"],
)
def test_no_ink_is_rejected(image):
    with pytest.raises(BadInput):
        reframe_digit(image)


def test_mnist_digits_are_almost_unchanged():
    """MNIST was framed this way, so reframing its digits should be close to the identity."""
    x, _ = load_mnist_sample()
    frames = reframe_many(x[:200])
    assert np.abs(frames.astype(int) - x[:200].astype(int)).mean() < 2.0


def test_reframe_many_names_the_blank_image():
    images = [scanned_seven(), np.full((30, 30), 255, np.uint8)]
    with pytest.raises(BadInput, match="image 1"):
        reframe_many(images)


def test_published_method_pads_to_square_and_inverts():
    frame = reframe_paper(scanned_seven())
    assert frame.shape == (28, 28) and frame.dtype == np.uint8
    assert frame.max() > 200 and frame[0].max() == 0
    # No ink box: the crop's own whitespace stays, so the ink is smaller than 20 px.
    assert ink_box(frame, 64)[0] < 20


def test_paper_grain_does_not_count_as_ink():
    rng = np.random.default_rng(0)
    clean = scanned_zero()
    noisy = np.clip(clean.astype(int) + rng.normal(0, 6, clean.shape), 0, 255).astype(np.uint8)
    noisy_box = ink_box(reframe_digit(noisy))
    clean_box = ink_box(reframe_digit(clean))
    assert abs(noisy_box[0] - clean_box[0]) <= 1 and abs(noisy_box[1] - clean_box[1]) <= 1


def test_ink_touching_the_crop_edge_is_not_mistaken_for_noise():
    """A tight crop: the digit's strokes run along the border."""
    crop = np.zeros((30, 20), np.uint8)
    crop[:, :3] = 255  # a '1' filling the crop's left edge
    crop[0, :] = 255  # and a bar along the top
    frame = reframe_digit(crop)
    assert ink_box(frame) == (20, round(20 * 20 / 30))  # the 30x20 aspect is kept
