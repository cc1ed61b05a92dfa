"""Registration finds the form on a scan (known synthetic transforms) and refuses what is not it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.errors import FormMismatch, UnreadableScan
from pipeline.forms import Box, load_template
from pipeline.register import register_page, warp_page
from pipeline.synth.degrade import ScanParams, degrade
from pipeline.synth.writer import blank_page
from tests.conftest import SAMPLE_TELEGRAM
from tests.pipeline.reading_fixtures import corner_error, telegram, template


def _corners(*boxes: Box) -> np.ndarray:
    return np.array(
        [[(b.x0, b.y0), (b.x1, b.y0), (b.x1, b.y1), (b.x0, b.y1)] for b in boxes]
    ).reshape(-1, 2)


def _read_regions(form) -> np.ndarray:
    """Corners of what is read: the table and the three header value boxes."""
    return _corners(form.table, *(form.header[n] for n in ("votantes", "sobres", "diferencia")))


def _scan(form, dpi: int, mode: str, rotation: float, shift, scale: float, corners, seed: int = 0):
    params = ScanParams(
        dpi=dpi,
        mode=mode,
        rotation_deg=rotation,
        shift=shift,
        scale=scale,
        corners=corners,
        blur_sigma=0.7,
        noise_sigma=3.0,
        light=0.1,
        fold=False,
        stamp=False,
        threshold=160,
        jpeg_quality=None,
        background=235,
    )
    page = blank_page(form, dpi)
    height, width = page.shape[:2]
    image, matrix = degrade(page, params, np.random.default_rng(seed))
    return image, matrix @ np.diag([float(width), float(height), 1.0])


TRANSFORMS = [
    # dpi, mode, rotation (deg), shift (page share), scale, perspective corners (page share)
    (200, "grey", 0.0, (0.0, 0.0), 1.0, (0.0,) * 8),
    (200, "bw", 3.0, (0.02, -0.015), 0.97, (0.0,) * 8),
    (
        200,
        "colour",
        -2.7,
        (-0.01, 0.02),
        1.03,
        (0.004, -0.003, -0.002, 0.005, 0.003, 0.002, -0.004, 0.0),
    ),
    (150, "bw", -1.2, (0.015, 0.01), 0.95, (0.0, 0.004, 0.003, 0.0, -0.002, 0.0, 0.0, -0.004)),
    (300, "grey", 1.8, (-0.02, -0.01), 1.02, (0.002,) * 8),
]


@pytest.mark.parametrize("dpi, mode, rotation, shift, scale, corners", TRANSFORMS)
def test_recovers_a_known_transform_within_two_pixels_at_200_dpi(
    dpi, mode, rotation, shift, scale, corners
) -> None:
    form = template()
    image, truth = _scan(form, dpi, mode, rotation, shift, scale, corners)
    registration = register_page(image, form)
    error_at_200_dpi = corner_error(registration.homography, truth, _read_regions(form)) * 200 / dpi
    assert error_at_200_dpi < 2.0
    assert registration.fit_score >= 0.9


@pytest.mark.parametrize("index", [0, 1, 2])
def test_registers_filled_in_synthetic_telegrams(index: int) -> None:
    sample = telegram(11, index, "typical")
    registration = register_page(sample.image, template())
    error = corner_error(registration.homography, sample.homography, _read_regions(template()))
    assert error * 200 / sample.scan.dpi < 2.0
    assert registration.fit_score >= 0.9


def test_registered_page_has_its_ruled_lines_where_the_template_puts_them() -> None:
    form = template()
    image, _ = _scan(form, 200, "grey", 2.0, (0.01, 0.01), 0.98, (0.0,) * 8)
    dpi = 150
    page = warp_page(image, register_page(image, form), form, dpi)
    width, height = form.page_size_px(dpi)
    assert page.shape == (height, width)
    darkness = 255.0 - page.astype(np.float64)
    x0, x1 = int(form.columns[0].x0 * width) + 4, int(form.table.x1 * width) - 4
    profile = darkness[:, x0:x1].mean(axis=1)
    for y in form.horizontal_lines():
        window = np.arange(round(y * height) - 5, round(y * height) + 6)
        peak = window[np.argmax(profile[window])]
        assert abs(peak - y * height) <= 1.0


def test_a_scan_of_another_form_is_refused() -> None:
    sample = telegram(11, 0, "typical")
    with pytest.raises(FormMismatch, match="arg-2019-paso-caba"):
        register_page(sample.image, load_template("arg-2019-paso-caba"))


@pytest.mark.skipif(not SAMPLE_TELEGRAM.with_suffix(".jpeg").exists(), reason="../shared absent")
def test_the_real_2019_sample_registers_to_its_form_and_not_to_the_2023_one() -> None:
    scan = cv2.imread(str(SAMPLE_TELEGRAM.with_suffix(".jpeg")))
    registration = register_page(scan, load_template("arg-2019-paso-caba"))
    assert registration.fit_score >= 0.9
    with pytest.raises(FormMismatch):
        register_page(scan, template())


def test_an_upside_down_page_is_refused_as_such() -> None:
    sample = telegram(11, 1, "typical")
    with pytest.raises(FormMismatch, match="upside down"):
        register_page(cv2.rotate(sample.image, cv2.ROTATE_180), template())


def test_a_page_cut_off_above_the_table_end_is_refused() -> None:
    sample = telegram(11, 2, "typical")
    height = sample.image.shape[0]
    with pytest.raises(FormMismatch):
        register_page(sample.image[: int(0.45 * height)], template())


@pytest.mark.parametrize("kind", ["white", "noisy grey with uneven light"])
def test_a_blank_page_is_unreadable(kind: str) -> None:
    rng = np.random.default_rng(0)
    if kind == "white":
        page = np.full((2800, 1700), 255, np.uint8)
    else:
        light = np.linspace(200, 240, 1700)[None, :] + np.linspace(0, 10, 2800)[:, None]
        page = np.clip(light + rng.normal(0, 4, (2800, 1700)), 0, 255).astype(np.uint8)
    with pytest.raises(UnreadableScan, match="blank"):
        register_page(page, template())


def test_a_page_without_the_table_is_not_this_form() -> None:
    page = np.full((2800, 1700), 250, np.uint8)
    cv2.putText(page, "NOT A TELEGRAM", (100, 1400), cv2.FONT_HERSHEY_SIMPLEX, 5, 0, 12)
    with pytest.raises(FormMismatch):
        register_page(page, template())


def test_template_boxes_map_to_their_scan_pixel_boxes_clipped_to_the_scan() -> None:
    """``boxes_to_scan``: the integer bounding box of each box's image under the homography
    (here 1000 px per page unit, shifted by (20, 30), a 400 x 600 scan), clipped."""
    from pipeline.register import Registration

    homography = np.array([[1000.0, 0.0, 20.0], [0.0, 1000.0, 30.0], [0.0, 0.0, 1.0]])
    registration = Registration(homography, 1.0, 0.0, (400, 600))
    inside, across = Box(0.1, 0.1, 0.2205, 0.3), Box(0.5, 0.2, 0.7, 0.5)
    assert registration.boxes_to_scan([inside, across]) == [
        (120, 130, 241, 330),
        (520, 230, 600, 400),
    ]
    assert registration.box_to_scan(across) == (520, 230, 600, 400)
    assert registration.boxes_to_scan([]) == []
