"""One synthetic telegram: its ground truth, and the exact page transform it reports."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from pipeline.forms import load_template
from pipeline.synth.degrade import QUALITIES, sample_scan_params
from pipeline.synth.handwriting import FIXTURE_MNIST, load_digit_bank
from pipeline.synth.writer import generate_telegram, mesa_identity, telegram_rng


@pytest.fixture(scope="module")
def bank():
    return load_digit_bank(FIXTURE_MNIST)


def _peak_centre(profile: np.ndarray, window: np.ndarray) -> float:
    """Sub-pixel centre of the darkest line in ``window``: centroid of +-2 px around the max."""
    top = int(window[np.argmax(profile[window])])
    around = np.arange(top - 2, top + 3)
    weights = profile[around] - profile[window].min()
    return float((around * weights).sum() / weights.sum())


@pytest.mark.parametrize("quality", QUALITIES)
def test_the_reported_homography_maps_the_template_onto_the_scan(bank, quality: str) -> None:
    template = load_template("arg-2019-paso-caba")
    telegram = generate_telegram(template, bank, telegram_rng(3, 1), 6691, quality)
    scan = telegram.image if telegram.image.ndim == 2 else telegram.image.min(axis=2)
    width, height = template.page_size_px(telegram.scan.dpi)
    assert scan.shape == (height, width)
    # Undo the reported transform: the scan, rectified into page pixels.
    page_to_scan = telegram.homography @ np.linalg.inv(np.diag([width, height, 1.0]))
    rectified = cv2.warpPerspective(
        scan, page_to_scan, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    )
    darkness = 255.0 - rectified.astype(np.float64)
    x0 = int(template.columns[0].x0 * width) + 5
    x1 = int(template.table.x1 * width) - 5
    profile = darkness[:, x0:x1].mean(axis=1)
    for y in template.horizontal_lines():
        centre = y * height
        window = np.arange(int(centre) - 6, int(centre) + 7)
        peak = _peak_centre(profile, window)
        assert abs(peak - centre) <= 1.5, (quality, y, peak, centre)
    # Negative control: halfway between two ruled lines the rectified scan is lighter.
    for row in template.rows:
        middle = profile[int((row.y0 + row.y1) / 2 * height)]
        assert middle < profile[int(round(row.y0 * height))], (quality, row.key)
    y0 = int(template.rows[0].y0 * height) + 5
    y1 = int(template.table.y1 * height) - 5
    profile = darkness[y0:y1].mean(axis=0)
    for x in template.vertical_lines():
        centre = x * width
        window = np.arange(int(centre) - 6, int(centre) + 7)
        peak = _peak_centre(profile, window)
        assert abs(peak - centre) <= 1.5, (quality, x, peak, centre)


def test_same_generator_state_gives_the_same_telegram(bank) -> None:
    template = load_template("arg-2023-general")
    a = generate_telegram(template, bank, telegram_rng(5, 0), 12, "typical")
    b = generate_telegram(template, bank, telegram_rng(5, 0), 12, "typical")
    c = generate_telegram(template, bank, telegram_rng(5, 1), 12, "typical")
    assert np.array_equal(a.image, b.image) and a.written == b.written
    assert not (a.image.shape == c.image.shape and np.array_equal(a.image, c.image))


def test_what_is_written_is_the_counts_with_only_zeros_or_totals_left_blank(bank) -> None:
    template = load_template("arg-2019-paso-caba")
    for index in range(3):
        telegram = generate_telegram(template, bank, telegram_rng(9, index), 100, "clean")
        assert set(telegram.written) == set(telegram.counts.counts)
        for key, value in telegram.written.items():
            if value is None:
                assert telegram.counts.counts[key] == 0 or key[0] == "TOTAL"
            else:
                assert value == telegram.counts.counts[key]


def test_mesa_codes_carry_district_section_and_number() -> None:
    template = load_template("arg-2019-paso-caba")
    identity = mesa_identity(template, 6691)
    assert identity.mesa_code == f"01{identity.seccion_id:03d}06691X"
    assert identity.circuito_id == "00153" and len(identity.mesa_code) == 11
    with pytest.raises(ValueError):
        mesa_identity(template, 100_000)


def test_presets_stay_within_their_stated_ranges() -> None:
    rng = np.random.default_rng(0)
    for quality in QUALITIES:
        for _ in range(50):
            p = sample_scan_params(quality, rng)
            assert 150 <= p.dpi <= 300 and abs(p.rotation_deg) <= 3.0
            assert p.mode in ("colour", "grey", "bw")
    with pytest.raises(ValueError, match="quality"):
        sample_scan_params("awful", rng)


def test_explicit_scan_parameters_give_the_homography_they_describe(bank) -> None:
    template = load_template("arg-2023-general")
    preset = sample_scan_params("clean", np.random.default_rng(0))
    params = replace(preset, rotation_deg=2.0, shift=(0.01, -0.02), scale=1.0, dpi=100)
    telegram = generate_telegram(template, bank, telegram_rng(0, 0), 5, scan_params=params)
    width, height = template.page_size_px(100)
    assert telegram.image.shape[:2] == (height, width)
    centre = telegram.homography @ np.array([0.5, 0.5, 1.0])
    assert centre[:2] / centre[2] == pytest.approx([0.51 * width, 0.48 * height], abs=0.01)
    corner = telegram.homography @ np.array([1.0, 0.5, 1.0])
    dx, dy = corner[:2] / corner[2] - centre[:2] / centre[2]
    assert np.degrees(np.arctan2(dy, dx)) == pytest.approx(2.0, abs=1e-6)
