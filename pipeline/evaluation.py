"""Evaluating a digit classifier on a labelled digit file (``escrutinio evaluate digits``).

A digit file is an .npz holding either ``x`` and ``y`` or the Keras layout ``x_train, y_train,
x_test, y_test``. ``x`` is a uint8 (or other numeric/bool) array (N, H, W) or an object array of
N images of different sizes; either ink polarity (detected per image by ``ink_is_dark``).
``y`` holds N labels 0..9. Every image is reframed (``reframe_many``) before scoring.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import BadInput
from pipeline.metrics import classification_report
from pipeline.reframe import reframe_many

SPLITS = ("test", "train", "all")


@dataclass(frozen=True)
class DigitSet:
    """Labelled digits as read from a file: images (list or (N, H, W) array), labels (N,)."""

    images: object
    labels: np.ndarray
    source: str


def _as_images(x: np.ndarray, where: str) -> object:
    if x.dtype == object:
        images = list(x)
        for index, image in enumerate(images):
            array = np.asarray(image)
            if array.ndim not in (2, 3) or array.size == 0:
                raise BadInput(f"{where}: image {index} has shape {array.shape}, not (H, W)")
        return images
    if x.ndim not in (3, 4):
        raise BadInput(f"{where}: x must be (N, H, W) images, got shape {x.shape}")
    return x


def _as_labels(y: np.ndarray, count: int, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != count:
        raise BadInput(f"{where}: y must hold one label per image ({count}), got shape {y.shape}")
    if y.size and (not np.issubdtype(y.dtype, np.integer) or int(y.min()) < 0 or int(y.max()) > 9):
        raise BadInput(f"{where}: labels must be integers 0..9")
    return y.astype(np.int64)


def load_digit_set(path: Path, split: str = "test") -> DigitSet:
    """Read a digit file; ``split`` (test|train|all) applies to the Keras layout only."""
    path = Path(path)
    if split not in SPLITS:
        raise BadInput(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not path.is_file():
        raise BadInput(f"digit file not found: {path}")
    with open(path, "rb") as handle:
        if handle.read(4) != b"PK\x03\x04":
            raise BadInput(f"{path}: not a readable .npz file (no zip header)")
    try:
        # Pickle is needed for object arrays of ragged images; the file is the user's own.
        data = np.load(path, allow_pickle=True)
        files = set(data.files)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise BadInput(f"{path}: not a readable .npz file ({exc})") from exc
    with data:
        if {"x", "y"} <= files:
            pairs = [("x", "y")]
        elif {"x_train", "y_train", "x_test", "y_test"} <= files:
            pairs = {
                "test": [("x_test", "y_test")],
                "train": [("x_train", "y_train")],
                "all": [("x_train", "y_train"), ("x_test", "y_test")],
            }[split]
        else:
            raise BadInput(
                f"{path}: expected keys x, y or x_train, y_train, x_test, y_test; "
                f"found {', '.join(sorted(files)) or 'none'}"
            )
        parts: list = []
        labels = []
        for x_key, y_key in pairs:
            where = f"{path.name}[{x_key}]"
            x = _as_images(data[x_key], where)
            labels.append(_as_labels(data[y_key], len(x), where))
            parts.append(x)
    if len(parts) == 1:
        all_images = parts[0]
    elif (
        all(isinstance(part, np.ndarray) for part in parts)
        and len({part.shape[1:] for part in parts}) == 1
    ):
        all_images = np.concatenate(parts)
    else:
        all_images = [image for part in parts for image in part]
    label_array = np.concatenate(labels)
    layout = f" ({split})" if pairs[0][0] != "x" else ""
    return DigitSet(all_images, label_array, f"{path.name}{layout}")


def evaluate_digits(classifier, digit_set: DigitSet, method: str = "mnist") -> dict:
    """Reframe, classify and score -> ``classification_report`` dict plus ``model`` and ``source``.

    The prediction is the arg-max over all the model's classes, so a digit read as
    "not a digit" (class 10) counts as an error; the confusion matrix then has 11 columns.
    """
    digits = reframe_many(digit_set.images, method)
    probabilities = classifier.predict_proba(digits)
    predicted = probabilities.argmax(axis=1)
    report = classification_report(digit_set.labels, predicted, classifier.num_classes)
    report["model"] = classifier.version
    report["source"] = digit_set.source
    report["reframe"] = method
    return report


MNIST_SAMPLE = Path(__file__).resolve().parent / "fixtures" / "mnist_sample.npz"


def load_mnist_sample() -> tuple[np.ndarray, np.ndarray]:
    """The shipped fixture: 1,000 MNIST test digits (seeded sample) -> x (1000, 28, 28) uint8,
    y (1000,) uint8. Used by tests and as a fallback digit bank when ../shared is absent."""
    with np.load(MNIST_SAMPLE) as data:
        return data["x"], data["y"]
