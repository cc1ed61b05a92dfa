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


# ------------------------------------------------------------------------ averaged models


def _saved_model(path, seed: int, width: int = 4):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(width, bias_initializer="random_normal"),
            keras.layers.BatchNormalization(
                gamma_initializer="random_normal",
                beta_initializer="random_normal",
                moving_mean_initializer="random_normal",
                moving_variance_initializer="random_uniform",
            ),
        ]
    )
    model.save(path)
    return model.get_weights()


def test_averaged_model_holds_the_mean_of_its_members_weights(tmp_path):
    from pipeline.training import average_models

    paths = [tmp_path / f"m{seed}.keras" for seed in (1, 2, 3)]
    members = [_saved_model(path, seed) for seed, path in zip((1, 2, 3), paths, strict=True)]
    model, facts = average_models(paths)
    for layer, averaged in enumerate(model.get_weights()):
        expected = np.mean([weights[layer] for weights in members], axis=0)
        assert np.allclose(averaged, expected, atol=1e-6)
        assert not np.allclose(averaged, members[0][layer])
    assert [item["file"] for item in facts["averaged_from"]] == ["m1.keras", "m2.keras", "m3.keras"]


def test_models_of_other_shapes_are_not_averaged(tmp_path):
    from pipeline.errors import BadInput
    from pipeline.training import average_models

    _saved_model(tmp_path / "narrow.keras", 1, width=4)
    _saved_model(tmp_path / "wide.keras", 2, width=5)
    with pytest.raises(BadInput, match="wide.keras"):
        average_models([tmp_path / "narrow.keras", tmp_path / "wide.keras"])


def test_models_adapted_from_different_bases_are_not_averaged(tmp_path):
    import json

    from pipeline.errors import BadInput
    from pipeline.training import average_models

    for name, base in (("one", "aaa"), ("other", "bbb")):
        _saved_model(tmp_path / f"{name}.keras", 1)
        card = {"adapted_from": {"file": "base.keras", "sha256": base}}
        (tmp_path / f"{name}.card.json").write_text(json.dumps(card))
    with pytest.raises(BadInput, match="different bases"):
        average_models([tmp_path / "one.keras", tmp_path / "other.keras"])


def test_one_base_under_two_names_is_one_base(tmp_path):
    """A member's card names its base as its run called it ("base.keras", "default.keras at
    commit 16d6788"): the hash says whether it is the same base."""
    import json

    from pipeline.training import average_models

    for name, base in (("one", "base.keras"), ("other", "default.keras at commit 16d6788")):
        _saved_model(tmp_path / f"{name}.keras", 1)
        card = {"adapted_from": {"file": base, "sha256": "aaa"}}
        (tmp_path / f"{name}.card.json").write_text(json.dumps(card))
    _, facts = average_models([tmp_path / "one.keras", tmp_path / "other.keras"])
    assert len(facts["averaged_from"]) == 2


@pytest.mark.parametrize(
    "options, named",
    [
        ({"flagged_share": 1.5}, "flagged 1s"),
        ({"mnist_per_epoch": -1}, "per epoch"),
        ({"one_pair_share": -0.1}, "1s in a pair"),
    ],
)
def test_adapt_refuses_a_bad_option_before_any_work(tmp_path, options, named):
    """No telegram is written and no model loaded: the base and data are never touched."""
    from pipeline.errors import BadInput
    from pipeline.training import adapt

    with pytest.raises(BadInput, match=named):
        adapt(tmp_path / "missing.keras", None, tmp_path, **options)
    assert list(tmp_path.iterdir()) == []
