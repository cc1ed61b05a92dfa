"""Handwritten-number datasets: build them from MNIST digits, read them, evaluate a classifier.

A numbers directory holds ``0.png ... N-1.png`` (one handwritten number per image, as cut from a
telegram cell) and ``labels.csv`` in either layout:

* one comma-separated row whose i-th value is the label of ``i.png`` (the published
  "Handwritten Numbers" dataset), or
* a two-column ``file,label`` CSV (a header row ``file,label`` is optional).

Labels are digit strings ("07" stays "07"). ``evaluate_numbers_dir`` reads every image through
the telegram pipeline's own path: ``segment_cell(whole_first=True)`` ->
``classify_segmentations`` (reframing, batched classification of all numbers together, split
choice) -> ``decode_cell``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from pipeline.decode import Calibration, NumberReading, calibration_for, decode_cell
from pipeline.errors import BadInput
from pipeline.segment import CellSegmentation, segment_cell

LABELS_FILE = "labels.csv"
# Shares of the gaps between consecutive digits that touch (0-1 px) or overlap (1-2 px).
TOUCHING = 0.2
OVERLAPPING = 0.1


class Classifier(Protocol):
    """What the evaluation needs of a digit classifier (pipeline.model.DigitClassifier)."""

    num_classes: int

    def predict_proba(self, frames: np.ndarray) -> np.ndarray:
        """(N, 28, 28) uint8 white-on-black frames -> (N, num_classes) float probabilities."""
        ...


# --------------------------------------------------------------------------- building


def make_number_image(
    digits: Sequence[np.ndarray],
    rng: np.random.Generator,
    touching: float = TOUCHING,
    overlapping: float = OVERLAPPING,
) -> np.ndarray:
    """Place MNIST digits (each (28, 28) uint8, white ink on black) side by side as one number.

    Each digit is cut to its ink columns and placed after the previous one with a gap drawn
    like handwriting: a share ``overlapping`` of the gaps overlap by 1-2 px (ink combined by
    maximum, so the digits touch), a share ``touching`` are 0-1 px, the rest 2-7 px. Each digit
    is shifted up or down by up to 2 px. Returns (H, W) uint8, dark ink on white, 4 px margin.
    """
    pieces = []
    for digit in digits:
        cols = np.flatnonzero(digit.max(axis=0) > 0)
        pieces.append(digit[:, cols[0] : cols[-1] + 1] if cols.size else digit)
    gaps = []
    for _ in pieces[1:]:
        kind = rng.random()
        if kind < overlapping:
            gaps.append(-int(rng.integers(1, 3)))
        elif kind < overlapping + touching:
            gaps.append(int(rng.integers(0, 2)))
        else:
            gaps.append(int(rng.integers(2, 8)))
    margin = 4
    width = sum(p.shape[1] for p in pieces) + sum(gaps) + 2 * margin
    canvas = np.zeros((28 + 2 * margin, max(width, 2 * margin + 1)), np.uint8)
    x = margin
    for index, piece in enumerate(pieces):
        y = margin + int(rng.integers(-2, 3))
        region = canvas[y : y + 28, x : x + piece.shape[1]]
        np.maximum(region, piece, out=region)
        x += piece.shape[1] + (gaps[index] if index < len(gaps) else 0)
    return 255 - canvas


def make_numbers(
    x: np.ndarray,
    y: np.ndarray,
    count: int,
    seed: int = 0,
    max_digits: int = 3,
    touching: float = TOUCHING,
    overlapping: float = OVERLAPPING,
) -> tuple[list[np.ndarray], list[str]]:
    """``count`` numbers of 1..max_digits CONSECUTIVE digits of (x (N,28,28) uint8, y (N,)),
    taken in order from index 0 (wrapping around). Returns (images, labels as digit strings)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    position = 0
    for _ in range(count):
        length = int(rng.integers(1, max_digits + 1))
        index = [(position + k) % len(x) for k in range(length)]
        position += length
        images.append(make_number_image([x[i] for i in index], rng, touching, overlapping))
        labels.append("".join(str(int(y[i])) for i in index))
    return images, labels


def write_numbers_dir(directory: Path, images: Sequence[np.ndarray], labels: Sequence[str]) -> None:
    """Write images as ``i.png`` and ``labels.csv`` as one comma-separated row."""
    directory.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        if not cv2.imwrite(str(directory / f"{index}.png"), image):
            raise BadInput(f"cannot write {directory / f'{index}.png'}")
    (directory / LABELS_FILE).write_text(",".join(labels) + "\n")


# --------------------------------------------------------------------------- reading


def read_labels(path: Path) -> dict[str, str]:
    """labels.csv in either layout -> {file name: label}. Raises BadInput naming the problem."""
    if not path.is_file():
        raise BadInput(f"missing labels file {path}")
    rows = [row for row in csv.reader(path.read_text().splitlines()) if any(c.strip() for c in row)]
    if not rows:
        raise BadInput(f"{path} is empty")
    if len(rows) == 1:
        return {f"{i}.png": label.strip() for i, label in enumerate(rows[0])}
    if [c.strip().lower() for c in rows[0]] == ["file", "label"]:
        rows = rows[1:]
    labels = {}
    for line, row in enumerate(rows, start=1):
        if len(row) != 2:
            raise BadInput(f"{path} line {line}: expected 'file,label', got {len(row)} fields")
        labels[row[0].strip()] = row[1].strip()
    return labels


def read_numbers_dir(directory: Path) -> tuple[list[np.ndarray], list[str], list[str]]:
    """A numbers directory -> (grey images (H, W) uint8, labels, file names), in label order.

    Raises BadInput for: a missing directory or labels.csv, a label that is not a digit string,
    label count not matching the images 0.png..N-1.png, a missing or unreadable image.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise BadInput(f"numbers directory {directory} does not exist")
    labels = read_labels(directory / LABELS_FILE)
    pngs = {p.name for p in directory.glob("*.png")}
    numbered = {name for name in pngs if name[:-4].isdigit()}
    if len(numbered) != len(labels):
        raise BadInput(
            f"{directory}: {len(labels)} labels in {LABELS_FILE} "
            f"but {len(numbered)} numbered images"
        )
    images, names, texts = [], [], []
    for name, label in labels.items():
        if not label.isdigit():
            raise BadInput(f"{directory / LABELS_FILE}: label {label!r} of {name} is not digits")
        path = directory / name
        if not path.is_file():
            raise BadInput(f"missing image {path}")
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None or image.size == 0:
            raise BadInput(f"unreadable image {path}")
        images.append(image)
        names.append(name)
        texts.append(label)
    return images, texts, names


# --------------------------------------------------------------------------- reading numbers


@dataclass(frozen=True)
class NumberResult:
    """One image read: its segmentation and reading."""

    segmentation: CellSegmentation
    reading: NumberReading


def read_numbers(
    images: Sequence[np.ndarray],
    classifier: Classifier,
    *,
    calibration: Calibration | None = None,
    confidence_threshold: float | None = None,
) -> list[NumberResult]:
    """Segment and read number images (each (H, W) uint8, dark ink on light).

    The telegram pipeline's own stage 4 (``pipeline.read.classify_segmentations``): every
    candidate digit crop of all images reframed once and classified in batches for all of
    them (pieces whole first, then the cuts of those not read surely whole, then the pieces
    cut again); ``decode_cell`` then works from those probabilities.
    calibration: None = the fitted one of this classifier (``calibration_for``);
    confidence_threshold: the LOW_CONFIDENCE threshold (default
    ``pipeline.decode.LOW_CONFIDENCE``).
    """
    from pipeline.read import classify_segmentations

    if calibration is None:
        calibration = calibration_for(classifier)
    chosen, batch = classify_segmentations(
        [segment_cell(image, whole_first=True) for image in images], classifier
    )
    options = {} if confidence_threshold is None else {"low_confidence": confidence_threshold}
    results = []
    for segmentation in chosen:
        reading = decode_cell(segmentation, batch.probs_of, calibration=calibration, **options)
        results.append(NumberResult(segmentation, reading))
    return results


def evaluate_numbers_dir(
    directory: Path,
    classifier: Classifier,
    confidence_threshold: float,
    *,
    calibration: Calibration | None = None,
) -> dict:
    """``escrutinio evaluate numbers DIR``: read every image and compare with its label.

    Returns {"n", "exact" (share read exactly, as digit strings), "digit_count_right" (share
    with the right number of digits), "flagged" (share below confidence_threshold or with a
    review flag), "accepted_exact" (exact share among the numbers not flagged; None if all
    flagged), "confidence_threshold"}.
    """
    images, labels, _ = read_numbers_dir(Path(directory))
    if calibration is None:
        calibration = calibration_for(classifier)
    results = read_numbers(
        images, classifier, calibration=calibration, confidence_threshold=confidence_threshold
    )
    return summarise(results, labels, confidence_threshold)


def _digit_count(result: NumberResult) -> int:
    """Digits read: the reading's string length ("not a digit" pieces dropped), else pieces."""
    if result.reading.text is not None:
        return len(result.reading.text)
    return len(result.segmentation.digits)


def summarise(results: Sequence[NumberResult], labels: Sequence[str], threshold: float) -> dict:
    """Figures of ``evaluate_numbers_dir`` for readings and their labels."""
    n = len(labels)
    exact = [r.reading.text == label for r, label in zip(results, labels, strict=True)]
    count_right = [_digit_count(r) == len(label) for r, label in zip(results, labels, strict=True)]
    accepted = [r.reading.accepted and r.reading.confidence >= threshold for r in results]
    accepted_right = [e for e, a in zip(exact, accepted, strict=True) if a]
    return {
        "n": n,
        "exact": sum(exact) / n if n else 0.0,
        "digit_count_right": sum(count_right) / n if n else 0.0,
        "flagged": 1.0 - sum(accepted) / n if n else 0.0,
        "accepted_exact": (sum(accepted_right) / len(accepted_right)) if accepted_right else None,
        "confidence_threshold": threshold,
    }
