"""``escrutinio evaluate digits`` and ``evaluate numbers``: output and bad-input errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from pipeline.evaluation import load_mnist_sample
from worker.cli import main


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory):
    """200 fixture digits written as x, y, half of them inverted (dark ink on white)."""
    x, y = load_mnist_sample()
    x, y = x[:200].copy(), y[:200]
    x[::2] = 255 - x[::2]
    path = tmp_path_factory.mktemp("digits") / "digits.npz"
    np.savez(path, x=x, y=y)
    return path


def run(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_evaluate_digits_json_reports_the_papers_metrics(capsys, digits_file, tmp_path):
    plot = tmp_path / "confusion.png"
    status, out, _ = run(
        capsys,
        "evaluate",
        "digits",
        str(digits_file),
        "--model",
        "paper",
        "--json",
        "--plot",
        str(plot),
    )
    assert status == 0
    report = json.loads(out)
    assert {
        "n",
        "accuracy",
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "per_class",
        "confusion",
    } <= set(report)
    assert report["n"] == 200 and report["accuracy"] >= 0.97
    assert sum(map(sum, report["confusion"])) == 200
    assert cv2.imread(str(plot)) is not None


def test_evaluate_digits_text_with_images_of_different_sizes(capsys, tmp_path):
    x, y = load_mnist_sample()
    images = np.empty(20, dtype=object)
    for i in range(20):
        size = 16 + 7 * (i % 5)
        images[i] = cv2.resize(255 - x[i], (size, size + 10))
    path = tmp_path / "ragged.npz"
    np.savez(path, x=images, y=y[:20])
    status, out, _ = run(capsys, "evaluate", "digits", str(path), "--model", "default")
    assert status == 0
    assert "accuracy" in out and "macro F1" in out and "confusion" in out


def one_line_error(capsys, *argv) -> str:
    status, _, err = run(capsys, *argv)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("escrutinio: error: ")
    return lines[0]


def test_missing_file(capsys, tmp_path):
    assert "not found" in one_line_error(capsys, "evaluate", "digits", str(tmp_path / "no.npz"))


def test_wrong_keys(capsys, tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, images=np.zeros((2, 28, 28), np.uint8))
    assert "expected keys" in one_line_error(capsys, "evaluate", "digits", str(path))


def test_label_count_mismatch(capsys, tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x=np.zeros((3, 28, 28), np.uint8), y=np.array([1, 2]))
    assert "one label per image" in one_line_error(capsys, "evaluate", "digits", str(path))


def test_blank_image_is_named(capsys, tmp_path):
    x, y = load_mnist_sample()
    x = x[:3].copy()
    x[1] = 0
    path = tmp_path / "blank.npz"
    np.savez(path, x=x, y=y[:3])
    line = one_line_error(capsys, "evaluate", "digits", str(path), "--model", "paper")
    assert "image 1" in line and "no ink" in line


def test_not_an_npz(capsys, tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("hello")
    assert "not a readable" in one_line_error(capsys, "evaluate", "digits", str(path))


def test_unknown_model(capsys, digits_file):
    line = one_line_error(capsys, "evaluate", "digits", str(digits_file), "--model", "nonesuch")
    assert "unknown model" in line


def test_evaluate_numbers_missing_directory(capsys, tmp_path):
    assert "not a directory" in one_line_error(
        capsys, "evaluate", "numbers", str(tmp_path / "missing")
    )


def test_evaluate_numbers_reads_a_numbers_directory(capsys, tmp_path):
    from pipeline.numbers import make_numbers, write_numbers_dir

    x, y = load_mnist_sample()
    images, labels = make_numbers(x[:40], y[:40], 12, seed=1)
    write_numbers_dir(tmp_path, images, labels)
    status, out, _ = run(
        capsys, "evaluate", "numbers", str(tmp_path), "--model", "default", "--json"
    )
    assert status == 0
    result = json.loads(out)
    assert result["n"] == 12
    assert 0.0 <= result["exact"] <= 1.0 and result["model"].startswith("default@")


def test_train_rejects_bad_arguments_before_training(capsys, tmp_path):
    line = one_line_error(
        capsys, "train", "--mnist", str(tmp_path / "none.npz"), "--out", str(tmp_path / "m.keras")
    )
    assert "MNIST file not found" in line
    assert ".keras" in one_line_error(capsys, "train", "--out", str(tmp_path / "model.h5"))


def test_adapt_rejects_bad_arguments_before_reading_anything(capsys, tmp_path):
    out = str(tmp_path / "m.keras")
    missing = one_line_error(capsys, "adapt", "--base", str(tmp_path / "none.keras"), "--out", out)
    assert "no such model file" in missing
    assert ".keras" in one_line_error(capsys, "adapt", "--base", "x.h5", "--out", out)
