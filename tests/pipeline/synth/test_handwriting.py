"""The digit bank and handwriting into cells."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import BadInput
from pipeline.synth.handwriting import (
    FIXTURE_MNIST,
    load_digit_bank,
    sample_writer,
    write_correction,
    write_number,
)


def test_fixture_bank_loads_with_every_digit() -> None:
    bank = load_digit_bank(FIXTURE_MNIST)
    assert bank.images.shape[1:] == (28, 28) and bank.images.dtype == np.uint8
    assert set(np.unique(bank.labels)) == set(range(10))


def test_keras_layout_is_read_from_its_test_split(tmp_path: Path) -> None:
    bank = load_digit_bank(FIXTURE_MNIST)
    path = tmp_path / "keras.npz"
    np.savez(
        path,
        x_train=bank.images[:20],
        y_train=bank.labels[:20],
        x_test=bank.images,
        y_test=bank.labels,
    )
    assert len(load_digit_bank(path).images) == len(bank.images)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"images": np.zeros((3, 28, 28), np.uint8)}, "keys"),
        ({"x": np.zeros((10, 28, 28), np.uint8), "y": np.zeros(10, np.int64)}, "0-9"),
        ({"x": np.zeros((10, 28), np.uint8), "y": np.arange(10)}, "(N, H, W)"),
    ],
)
def test_a_bad_digit_bank_is_rejected_naming_the_file(tmp_path: Path, content, message) -> None:
    path = tmp_path / "digits.npz"
    np.savez(path, **content)
    with pytest.raises(BadInput) as error:
        load_digit_bank(path)
    assert "digits.npz" in str(error.value) and message in str(error.value)
    with pytest.raises(BadInput, match="not found"):
        load_digit_bank(tmp_path / "missing.npz")


def test_a_number_is_written_in_ink_inside_its_cell() -> None:
    bank = load_digit_bank(FIXTURE_MNIST)
    rng = np.random.default_rng(4)
    for _ in range(20):
        page = np.full((300, 400, 3), 255, np.uint8)
        style = sample_writer(rng)
        box = (100, 120, 260, 180)
        write_number(page, box, "257", style, 200, bank, rng, cross_line_probability=0.0)
        ink = page.min(axis=2) < 160
        ys, xs = np.nonzero(ink)
        assert len(ys) > 100
        # The ink is centred near the cell and barely leaves it.
        inside = ink[box[1] - 8 : box[3] + 8, box[0] : box[2]].sum()
        assert inside / ink.sum() > 0.97
        # Blue ink is bluer than it is red (BGR); black ink is neutral.
        b, r = page[ink][:, 0].mean(), page[ink][:, 2].mean()
        assert (b > r + 20) == (style.ink_bgr[0] > style.ink_bgr[2] + 40)


def test_a_number_struck_out_by_a_line_shows_the_line_past_it() -> None:
    """A correction's strike line runs well past a one-digit number (a line ending at the
    digit's edges is a 4's or 7's own bar: nobody could see the correction)."""
    bank = load_digit_bank(FIXTURE_MNIST)
    rng = np.random.default_rng(9)
    box = (40, 40, 360, 120)
    past = 0
    for _ in range(20):
        style = sample_writer(rng)
        state = rng.bit_generator.state
        alone = np.full((200, 400, 3), 255, np.uint8)
        small = dataclasses.replace(style, height_frac=style.height_frac * 0.8)
        left_box = (box[0], box[1], box[0] + int(0.45 * (box[2] - box[0])), box[3])
        x0, y0, x1, y1 = write_number(alone, left_box, "4", small, 200, bank, rng, 0.0)
        rng.bit_generator.state = state  # the same draws again, now with the correction
        page = np.full((200, 400, 3), 255, np.uint8)
        write_correction(page, box, "4", "0", style, 200, bank, rng)
        ink_columns = np.flatnonzero((page[:, : left_box[2] + 30].min(axis=2) < 160).any(axis=0))
        reach = max(x0 - ink_columns[0], ink_columns[-1] - (x1 - 1))
        past += reach >= 0.25 * (y1 - y0)
    assert past >= 5  # about half the corrections are a line (the others an X)


def test_dark_ink_on_white_digits_are_inverted_to_the_bank_layout(tmp_path: Path) -> None:
    bank = load_digit_bank(FIXTURE_MNIST)
    path = tmp_path / "paper.npz"
    np.savez(path, x=255 - bank.images, y=bank.labels)
    assert np.array_equal(load_digit_bank(path).images, bank.images)
