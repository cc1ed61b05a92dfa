"""Numbers datasets: building, reading both label layouts, bad input, evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import BadInput
from pipeline.numbers import (
    evaluate_numbers_dir,
    make_numbers,
    read_numbers_dir,
    write_numbers_dir,
)
from tests.pipeline.mnist_cells import mnist_sample


@pytest.fixture
def numbers_dir(tmp_path):
    x, y = mnist_sample()
    images, labels = make_numbers(x, y, 12, seed=3)
    write_numbers_dir(tmp_path, images, labels)
    return tmp_path, images, labels


def test_made_numbers_are_consecutive_digits_with_matching_labels():
    x, y = mnist_sample()
    images, labels = make_numbers(x, y, 30, seed=1)
    assert "".join(labels) == "".join(str(v) for v in y[: len("".join(labels))])
    assert all(1 <= len(label) <= 3 for label in labels)
    for image, label in zip(images, labels, strict=True):
        assert image.dtype == np.uint8 and image.ndim == 2
        assert np.median(image) == 255  # dark ink on white paper
        assert image.shape[1] >= 10 * len(label)  # wide enough for its digits


def test_made_numbers_include_touching_digits():
    import cv2

    x, y = mnist_sample()
    images, labels = make_numbers(x, y, 200, seed=2)
    touching = 0
    for image, label in zip(images, labels, strict=True):
        components = cv2.connectedComponents((image < 128).astype(np.uint8))[0] - 1
        touching += len(label) > 1 and components < len(label)
    assert touching >= 10


def test_reads_the_one_row_layout(numbers_dir):
    directory, images, labels = numbers_dir
    read_images, read_labels, names = read_numbers_dir(directory)
    assert read_labels == labels
    assert names == [f"{i}.png" for i in range(len(labels))]
    assert all(np.array_equal(a, b) for a, b in zip(read_images, images, strict=True))


def test_reads_the_file_label_layout(numbers_dir):
    directory, _, labels = numbers_dir
    lines = ["file,label"] + [f"{i}.png,{label}" for i, label in reversed(list(enumerate(labels)))]
    (directory / "labels.csv").write_text("\n".join(lines) + "\n")
    _, read_labels, names = read_numbers_dir(directory)
    assert dict(zip(names, read_labels, strict=True)) == {
        f"{i}.png": label for i, label in enumerate(labels)
    }


def test_missing_directory(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        read_numbers_dir(tmp_path / "nowhere")


def test_missing_labels_file(numbers_dir):
    directory, _, _ = numbers_dir
    (directory / "labels.csv").unlink()
    with pytest.raises(BadInput, match="missing labels file"):
        read_numbers_dir(directory)


def test_label_count_not_matching_images(numbers_dir):
    directory, _, labels = numbers_dir
    (directory / "labels.csv").write_text(",".join(labels[:-1]) + "\n")
    with pytest.raises(BadInput, match="11 labels .* but 12 numbered images"):
        read_numbers_dir(directory)


def test_unreadable_image(numbers_dir):
    directory, _, _ = numbers_dir
    (directory / "4.png").write_bytes(b"not a png at all")
    with pytest.raises(BadInput, match="unreadable image .*4.png"):
        read_numbers_dir(directory)


def test_missing_image_named_in_labels(numbers_dir):
    directory, _, labels = numbers_dir
    (directory / "5.png").rename(directory / "50.png")
    with pytest.raises(BadInput, match="missing image .*5.png"):
        read_numbers_dir(directory)


def test_non_digit_label(numbers_dir):
    directory, _, labels = numbers_dir
    (directory / "labels.csv").write_text(",".join(["1a"] + labels[1:]) + "\n")
    with pytest.raises(BadInput, match="'1a'"):
        read_numbers_dir(directory)


def test_malformed_file_label_row(numbers_dir):
    directory, _, _ = numbers_dir
    (directory / "labels.csv").write_text("file,label\n0.png,12\n1.png\n")
    with pytest.raises(BadInput, match="line 2"):
        read_numbers_dir(directory)


def test_evaluate_with_a_shipped_model(tmp_path):
    """Well-spaced numbers of real MNIST digits are read almost always exactly."""
    from pipeline.model import get_classifier

    x, y = mnist_sample()
    images, labels = make_numbers(x, y, 60, seed=5, touching=0.0, overlapping=0.0)
    write_numbers_dir(tmp_path, images, labels)
    classifier = get_classifier("default", intra_op_threads=1, inter_op_threads=1)
    report = evaluate_numbers_dir(tmp_path, classifier, confidence_threshold=0.9)
    assert report["n"] == 60
    assert report["digit_count_right"] >= 0.95
    assert report["exact"] >= 0.9
    assert 0.0 <= report["flagged"] <= 1.0
    assert report["accepted_exact"] >= report["exact"]
