"""The digit bank and handwriting into cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import BadInput
from pipeline.synth.handwriting import (
    FIXTURE_MNIST,
    load_digit_bank,
    sample_writer,
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


def test_dark_ink_on_white_digits_are_inverted_to_the_bank_layout(tmp_path: Path) -> None:
    bank = load_digit_bank(FIXTURE_MNIST)
    path = tmp_path / "paper.npz"
    np.savez(path, x=255 - bank.images, y=bank.labels)
    assert np.array_equal(load_digit_bank(path).images, bank.images)
