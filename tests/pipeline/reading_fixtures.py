"""Shared inputs of the reading tests: synthetic telegrams with their truth, the classifier.

Generated once per process (``functools.cache``) from fixed seeds, with the bundled MNIST
fixture as the digit bank so the tests do not depend on ../shared.
"""

from __future__ import annotations

import os
from functools import cache

import numpy as np

from pipeline.forms import FormTemplate, load_template
from pipeline.synth.handwriting import FIXTURE_MNIST, load_digit_bank
from pipeline.synth.writer import SyntheticTelegram, generate_telegram, telegram_rng

FORM = "arg-2023-general"
#: The shipped model the reading tests use (ESCRUTINIO_MODEL overrides, like the CLI's).
MODEL = os.environ.get("ESCRUTINIO_MODEL", "default")


@cache
def template() -> FormTemplate:
    return load_template(FORM)


@cache
def telegram(seed: int, index: int, quality: str = "typical") -> SyntheticTelegram:
    """Synthetic telegram ``index`` of dataset ``seed`` (mesa number 100 + index)."""
    bank = load_digit_bank(FIXTURE_MNIST)
    return generate_telegram(template(), bank, telegram_rng(seed, index), 100 + index, quality)


def classifier():
    """The shipped digit model, loaded once per process, with TF limited to 1 thread each."""
    from pipeline.model import get_classifier

    return get_classifier(MODEL, device="cpu", intra_op_threads=1, inter_op_threads=1)


def written_value(telegram: SyntheticTelegram, row_key: str, cargo_id: int) -> int | None:
    """What is written in a cell (None: left blank)."""
    return telegram.written[(row_key, cargo_id)]


def corner_error(found: np.ndarray, truth: np.ndarray, points: np.ndarray) -> float:
    """Largest distance (pixels) between two homographies' images of page-relative points."""
    from pipeline.register import apply_homography

    return float(
        np.linalg.norm(
            apply_homography(found, points) - apply_homography(truth, points), axis=1
        ).max()
    )
