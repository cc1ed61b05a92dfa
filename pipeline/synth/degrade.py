"""Scan degradations: what a school's scanner (or a phone) does to a filled-in telegram.

:func:`sample_scan_params` draws one scan's parameters from a quality preset
(``clean``, ``typical``, ``hard``); :func:`degrade` applies them to a colour page and returns
the scan together with the exact homography from page pixels to scan pixels, so the
geometry of every synthetic scan is known (registration is tested against it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

QUALITIES = ("clean", "typical", "hard")
COLOUR_MODES = ("colour", "grey", "bw")


@dataclass(frozen=True)
class ScanParams:
    """One scan's degradations (all realistic defaults come from the presets).

    - ``dpi``: resolution the page is rendered and scanned at (150-300);
    - ``mode``: ``colour`` (BGR), ``grey``, or ``bw`` (1-bit, like the 2023 TIFF scans,
      stored as 0/255 uint8);
    - geometry: ``rotation_deg`` about the page centre, ``shift`` (dx, dy) as fractions of
      the page size, ``scale`` about the centre, ``corners`` 8 values (dx, dy of the four
      corners TL, TR, BR, BL, fractions of the page size) for perspective (phone photos);
    - photometry: ``blur_sigma`` (px), ``noise_sigma`` (grey levels), ``light`` (depth of
      uneven lighting, 0..1), ``fold`` (a crease across the sheet), ``stamp`` (a rubber
      stamp), ``threshold`` (for ``bw``), ``jpeg_quality`` (compression artefacts, or None),
      ``background`` (grey level around the sheet), ``white_point`` (the scanner's levels:
      grey levels above it come out pure white, the rest is stretched to 0..255).
    """

    dpi: int
    mode: str
    rotation_deg: float
    shift: tuple[float, float]
    scale: float
    corners: tuple[float, ...]
    blur_sigma: float
    noise_sigma: float
    light: float
    fold: bool
    stamp: bool
    threshold: int
    jpeg_quality: int | None
    background: int
    white_point: int = 255

    def to_dict(self) -> dict:
        return asdict(self)


def sample_scan_params(quality: str, rng: np.random.Generator) -> ScanParams:
    """Random scan parameters of a ``clean``, ``typical`` or ``hard`` preset."""
    if quality not in QUALITIES:
        raise ValueError(f"quality must be one of {QUALITIES}, got {quality!r}")
    if quality == "clean":
        return ScanParams(
            dpi=200,
            mode=str(rng.choice(["colour", "grey"])),
            rotation_deg=float(rng.uniform(-0.3, 0.3)),
            shift=(float(rng.uniform(-0.003, 0.003)), float(rng.uniform(-0.003, 0.003))),
            scale=float(rng.uniform(0.995, 1.005)),
            corners=(0.0,) * 8,
            blur_sigma=0.4,
            noise_sigma=1.5,
            light=0.0,
            fold=False,
            stamp=False,
            threshold=160,
            jpeg_quality=None,
            background=255,
            white_point=int(rng.integers(225, 240)),
        )
    if quality == "typical":
        # Most telegram scans are grey or 1-bit (2023: 1-bit TIFF); colour (2019) is rarer.
        mode = str(rng.choice(["colour", "grey", "bw"], p=[0.2, 0.35, 0.45]))
        return ScanParams(
            dpi=int(rng.choice([150, 200, 300], p=[0.3, 0.6, 0.1])),
            mode=mode,
            rotation_deg=float(rng.uniform(-1.5, 1.5)),
            shift=(float(rng.uniform(-0.012, 0.012)), float(rng.uniform(-0.012, 0.012))),
            scale=float(rng.uniform(0.97, 1.03)),
            corners=tuple(float(v) for v in rng.uniform(-0.003, 0.003, size=8)),
            blur_sigma=float(rng.uniform(0.4, 0.9)),
            noise_sigma=float(rng.uniform(2.0, 5.0)),
            light=float(rng.uniform(0.0, 0.15)),
            fold=bool(rng.random() < 0.3),
            stamp=bool(rng.random() < 0.3),
            threshold=int(rng.integers(140, 180)),
            jpeg_quality=int(rng.integers(60, 90)) if rng.random() < 0.5 else None,
            background=int(rng.integers(235, 256)),
            white_point=int(rng.integers(210, 240)),
        )
    mode = str(rng.choice(["colour", "grey", "bw"], p=[0.35, 0.3, 0.35]))
    return ScanParams(
        dpi=int(rng.choice([150, 150, 200, 300])),
        mode=mode,
        rotation_deg=float(rng.uniform(-3.0, 3.0)),
        shift=(float(rng.uniform(-0.02, 0.02)), float(rng.uniform(-0.02, 0.02))),
        scale=float(rng.uniform(0.92, 1.02)),
        corners=tuple(float(v) for v in rng.uniform(-0.02, 0.02, size=8)),
        blur_sigma=float(rng.uniform(0.8, 1.6)),
        noise_sigma=float(rng.uniform(5.0, 12.0)),
        light=float(rng.uniform(0.15, 0.35)),
        fold=bool(rng.random() < 0.7),
        stamp=bool(rng.random() < 0.6),
        threshold=int(rng.integers(120, 190)),
        jpeg_quality=int(rng.integers(30, 60)),
        background=int(rng.integers(60, 240)),
        white_point=int(rng.integers(235, 256)),
    )


def scan_homography(params: ScanParams, width: int, height: int) -> np.ndarray:
    """``(3, 3)`` float64 homography from page pixels to scan pixels (same ``W x H`` frame)."""
    centre = np.array([width / 2, height / 2])
    src = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    theta = np.deg2rad(params.rotation_deg)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    dst = (src - centre) @ (rotation.T * params.scale) + centre
    dst += np.array([params.shift[0] * width, params.shift[1] * height])
    dst += np.array(params.corners, dtype=np.float64).reshape(4, 2) * [width, height]
    return cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32)).astype(
        np.float64
    )


def draw_stamp(page: np.ndarray, rng: np.random.Generator, dpi: float) -> None:
    """A round rubber stamp (violet or blue ink, partly faded) somewhere on ``page`` in place."""
    height, width = page.shape[:2]
    radius = int(rng.uniform(10, 17) / 25.4 * dpi)
    size = 2 * radius + 8
    alpha = np.zeros((size, size), np.float32)
    c = (size // 2, size // 2)
    ring = max(1, int(0.6 / 25.4 * dpi))
    cv2.circle(alpha, c, radius, 1.0, ring, cv2.LINE_AA)
    cv2.circle(alpha, c, int(radius * 0.72), 1.0, ring, cv2.LINE_AA)
    for k in range(int(rng.integers(14, 24))):  # letters around the ring, as short dashes
        angle = 2 * np.pi * k / 24 + rng.uniform(-0.05, 0.05)
        r = radius * 0.86
        p = (int(c[0] + r * np.cos(angle)), int(c[1] + r * np.sin(angle)))
        q = (int(c[0] + r * 1.06 * np.cos(angle)), int(c[1] + r * 1.06 * np.sin(angle)))
        cv2.line(alpha, p, q, 1.0, ring, cv2.LINE_AA)
    cv2.line(alpha, (c[0] - radius // 2, c[1]), (c[0] + radius // 2, c[1]), 1.0, ring)
    alpha *= rng.uniform(0.35, 0.8, size=(1, 1)).astype(np.float32)
    fade = cv2.resize(rng.uniform(0.3, 1.0, size=(6, 6)).astype(np.float32), (size, size))
    alpha *= fade
    ink = np.array([(140, 60, 120), (160, 90, 60)][int(rng.integers(2))], np.float32)
    x = int(rng.uniform(0.05, 0.8) * width)
    y = int(rng.uniform(0.1, 0.9) * height)
    x1, y1 = min(x + size, width), min(y + size, height)
    a = alpha[: y1 - y, : x1 - x, None]
    region = page[y:y1, x:x1].astype(np.float32)
    page[y:y1, x:x1] = (region * (1 - a) + np.minimum(region, ink) * a).astype(np.uint8)


def _lighting_map(
    params: ScanParams, width: int, height: int, rng: np.random.Generator
) -> np.ndarray:
    """``(H, W)`` uint8 brightness factor x255 (uneven light and fold shading)."""
    small_h, small_w = 64, max(8, int(64 * width / height))
    yy, xx = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
    yy /= small_h
    xx /= small_w
    angle = rng.uniform(0, 2 * np.pi)
    gradient = np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5) + 0.5
    cx, cy = rng.uniform(0.2, 0.8, size=2)
    radial = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    factor = 1.0 - params.light * (0.6 * gradient + 0.6 * radial)
    fold_y = None
    if params.fold:
        fold_y = float(rng.uniform(0.3, 0.7))
        factor -= 0.06 * np.exp(-(((yy - fold_y) / 0.02) ** 2))
    small = (np.clip(factor, 0.3, 1.0) * 255).astype(np.uint8)
    out = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    if fold_y is not None:  # the crease itself: a thin darker line, slightly tilted
        y0 = int(fold_y * height)
        tilt = int(rng.uniform(-0.01, 0.01) * height)
        cv2.line(out, (0, y0), (width, y0 + tilt), 195, max(1, height // 1400))
    return out


NOISE_TILE = 1024
_NOISE: list[np.ndarray] = []


def _noise_tile() -> np.ndarray:
    """A fixed ``(1024, 1024)`` float32 standard-normal tile (same in every process)."""
    if not _NOISE:
        _NOISE.append(
            np.random.default_rng(20190811).standard_normal((NOISE_TILE, NOISE_TILE), np.float32)
        )
    return _NOISE[0]


def degrade(
    page: np.ndarray, params: ScanParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Scan the filled-in colour ``page`` ``(H, W, 3)`` uint8 (BGR) with ``params``.

    Returns ``(scan, homography)``: ``scan`` is ``(H, W, 3)`` uint8 for ``colour`` and
    ``(H, W)`` uint8 otherwise (0/255 for ``bw``); ``homography`` is the ``(3, 3)`` map
    from page pixels to scan pixels. ``page`` is modified in place by the stamp.
    """
    height, width = page.shape[:2]
    if params.stamp:
        draw_stamp(page, rng, params.dpi)
    matrix = scan_homography(params, width, height)
    image = page if params.mode == "colour" else cv2.cvtColor(page, cv2.COLOR_BGR2GRAY)
    border = (params.background,) * 3 if image.ndim == 3 else params.background
    image = cv2.warpPerspective(
        image,
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border,
    )
    if params.light > 0 or params.fold:
        light = _lighting_map(params, width, height, rng)
        if image.ndim == 3:
            light = cv2.merge([light, light, light])
        image = cv2.multiply(image, light, scale=1 / 255)
    if params.blur_sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), params.blur_sigma)
    if params.noise_sigma > 0:
        # Grain of 2x2 pixels: a window, at a random offset, of a fixed noise tile (drawing
        # millions of normal numbers per telegram would cost more than the rest of the scan).
        half_h, half_w = (height + 1) // 2, (width + 1) // 2
        tile = _noise_tile()
        rows = (np.arange(half_h) + int(rng.integers(NOISE_TILE))) % NOISE_TILE
        cols = (np.arange(half_w) + int(rng.integers(NOISE_TILE))) % NOISE_TILE
        noise = tile[rows[:, None], cols[None, :]] * np.float32(params.noise_sigma)
        positive = cv2.resize(
            np.clip(noise, 0, 255).astype(np.uint8),
            (width, height),
            interpolation=cv2.INTER_NEAREST,
        )
        negative = cv2.resize(
            np.clip(-noise, 0, 255).astype(np.uint8),
            (width, height),
            interpolation=cv2.INTER_NEAREST,
        )
        if image.ndim == 3:
            positive = cv2.merge([positive] * 3)
            negative = cv2.merge([negative] * 3)
        image = cv2.subtract(cv2.add(image, positive), negative)
    if params.white_point < 255:
        # The scanner's levels: paper grain above the white point becomes pure white (which
        # is also what keeps lossless scans small).
        ramp = np.arange(256, dtype=np.float32) * (255.0 / params.white_point)
        image = cv2.LUT(image, np.clip(ramp, 0, 255).astype(np.uint8))
    if params.mode == "bw":
        _, image = cv2.threshold(image, params.threshold, 255, cv2.THRESH_BINARY)
    elif params.jpeg_quality is not None:
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, params.jpeg_quality])
        if ok:
            image = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    return image, matrix
