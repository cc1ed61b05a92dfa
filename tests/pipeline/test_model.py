"""The batched classifier, with the real shipped weights (pipeline/models/)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from pipeline.errors import BadInput
from pipeline.evaluation import load_mnist_sample
from pipeline.model import MAX_BATCH, MODELS_DIR, NOT_A_DIGIT, get_classifier
from pipeline.training import card_path, sha256_file


@pytest.fixture(scope="module")
def sample():
    return load_mnist_sample()


@pytest.fixture(scope="module", params=["paper", "default"])
def classifier(request):
    return get_classifier(request.param, "cpu")


def test_shipped_models_have_cards_matching_their_files():
    for name in ("paper", "default"):
        model_file = MODELS_DIR / f"{name}.keras"
        assert model_file.stat().st_size < 5 * 1024 * 1024
        card = json.loads(card_path(model_file).read_text())
        assert card["sha256"] == sha256_file(model_file)
        assert card["seed"] is not None and card["epochs"] > 0
        assert card["metrics"]["mnist_test"]["accuracy"] > 0.98


def test_paper_model_is_the_published_architecture():
    paper = get_classifier("paper", "cpu")
    assert paper.num_classes == 10
    assert paper._model.count_params() == 34_826


def test_default_model_has_a_not_a_digit_class():
    assert get_classifier("default", "cpu").num_classes == NOT_A_DIGIT + 1


def test_version_names_the_model_and_its_file_hash(classifier):
    assert re.fullmatch(rf"{classifier.name}@[0-9a-f]{{12}}", classifier.version)


def test_shipped_model_reads_the_mnist_fixture(classifier, sample):
    x, y = sample
    predicted = classifier.predict_proba(x).argmax(axis=1)
    assert np.mean(predicted == y) >= 0.98


@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 130, MAX_BATCH, 2 * MAX_BATCH + 3])
def test_probability_shape_for_any_batch_size(classifier, sample, count):
    x = np.resize(sample[0], (count, 28, 28))
    probabilities = classifier.predict_proba(x)
    assert probabilities.shape == (count, classifier.num_classes)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)


def test_a_digit_s_scores_do_not_depend_on_its_batch(classifier, sample):
    x = sample[0][:9]
    alone = np.concatenate([classifier.predict_proba(x[i : i + 1]) for i in range(9)])
    together = classifier.predict_proba(x)
    np.testing.assert_allclose(alone, together, atol=1e-5)


def test_same_input_same_output(classifier, sample):
    x = sample[0][:100]
    assert np.array_equal(classifier.predict_proba(x), classifier.predict_proba(x))


def test_batches_of_any_size_reuse_one_traced_graph(classifier, sample):
    for count in (1, 2, 3, 5, 8, 11, 31, 33, 100, 200, 600):
        classifier.predict_proba(np.resize(sample[0], (count, 28, 28)))
    assert classifier._infer.experimental_get_tracing_count() == 1


def test_wrong_shapes_and_unknown_models_are_rejected(classifier):
    with pytest.raises(BadInput, match=r"\(N, 28, 28\)"):
        classifier.predict_proba(np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(BadInput, match="unknown model 'nonesuch'"):
        get_classifier("nonesuch", "cpu")
    with pytest.raises(BadInput, match="device"):
        get_classifier("paper", "tpu")


def test_classifier_is_cached_per_process():
    assert get_classifier("paper", "cpu") is get_classifier("paper", "cpu")


def test_importing_the_pipeline_does_not_start_tensorflow():
    """Fork safety: workers import the pipeline before forking, TF must come later."""
    code = (
        "import sys, pipeline.model, pipeline.reframe, pipeline.metrics, pipeline.evaluation, "
        "pipeline.augment, pipeline.training; "
        "sys.exit(1 if 'tensorflow' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_batch_norm_folding_keeps_the_saved_model_s_outputs(sample):
    import keras

    classifier = get_classifier("default", "cpu")
    saved = keras.models.load_model(MODELS_DIR / "default.keras", compile=False)
    assert len(classifier._model.layers) < len(saved.layers)  # BN layers merged away
    x = sample[0][:64]
    expected = saved.predict(x.astype(np.float32), verbose=0)
    np.testing.assert_allclose(classifier.predict_proba(x), expected, atol=1e-5)
