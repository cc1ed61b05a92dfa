"""Adapting the digit model to the pipeline: the harvest of labelled telegram digits."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.synth.handwriting import FIXTURE_MNIST
from pipeline.synth.writer import SynthConfig, read_truth, write_dataset
from pipeline.training import harvest_telegram_digits
from tests.pipeline.reading_fixtures import FORM, classifier


@pytest.fixture(scope="module")
def harvest(tmp_path_factory):
    directory = tmp_path_factory.mktemp("harvest") / "telegrams"
    config = SynthConfig(
        outdir=directory, count=3, form=FORM, seed=31, digits=str(FIXTURE_MNIST), workers=1
    )
    write_dataset(config, progress=False)
    return directory, harvest_telegram_digits(directory, classifier(), FORM)


def test_harvest_labels_every_digit_of_the_cells_cut_right(harvest):
    directory, (x, y, counts) = harvest
    truth, _ = read_truth(directory)
    written = [value for value in truth.values() if value is not None]
    assert counts["pages"] == 3
    assert x.shape == (len(y), 28, 28) and x.dtype == np.uint8
    assert set(np.unique(y)) <= set(range(10))
    # most written cells are cut into the right number of digits, and each gives all of them
    assert counts["cells_used"] >= 0.8 * counts["cells"]
    assert len(y) >= counts["cells_used"]
    assert len(y) <= sum(len(str(value)) for value in written)


def test_harvested_labels_line_up_with_the_digits(harvest):
    """Labels are given left to right: the classifier agrees with nearly all of them (a
    shifted or reversed labelling would disagree on most multi-digit cells)."""
    _, (x, y, _) = harvest
    read = classifier().predict_proba(x).argmax(axis=1)
    assert (read == y).mean() >= 0.9
