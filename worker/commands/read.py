"""``escrutinio read SCAN... --form NAME [--json] [--debug DIR] [--model NAME]``.

Reads telegram scans from the command line in one batched pass (``pipeline.read``). With
``--json`` it prints one JSON object per scan, one per line, in the order given; otherwise a
short report per scan. A scan that cannot be read gets its ``error`` and the others go on;
the exit status is 1 when any scan failed, 0 otherwise (2 for bad arguments).

The mesa of a scan is taken from its file name when it contains a mesa code (ten digits and
"X", e.g. ``0101406691X.png`` or ``2019-paso-caba-0101406691X.jpeg``).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import BadInput
from pipeline.forms import load_template

MESA_CODE = re.compile(r"(\d{10}X)")


def register(subparsers: argparse._SubParsersAction) -> None:
    read = subparsers.add_parser("read", help="read telegram scans (one batched pass)")
    read.add_argument("scans", nargs="+", type=Path, metavar="SCAN")
    read.add_argument("--form", required=True, help="form template name or JSON file")
    read.add_argument("--json", action="store_true", help="one JSON object per scan and line")
    read.add_argument(
        "--debug", type=Path, metavar="DIR", help="write the warped page and every cell as PNGs"
    )
    read.add_argument("--model", default=None, help="model name or .keras path (default: settings)")
    read.set_defaults(func=run_read)


def mesa_code_of(path: Path) -> str | None:
    """The mesa code in a scan's file name, or None."""
    match = MESA_CODE.search(path.name)
    return match.group(1) if match else None


def run_read(args: argparse.Namespace) -> int:
    from pipeline.model import get_classifier
    from pipeline.read import TelegramReading, describe_error, load_scan, read_telegrams
    from worker.settings import get_settings

    settings = get_settings()
    template = load_template(args.form)
    model = args.model or str(settings.model_path or settings.model)
    if args.debug is not None:
        try:
            args.debug.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(f"--debug {args.debug}: cannot create the directory ({exc})") from exc
    classifier = get_classifier(model, device=settings.device)

    images: list[np.ndarray] = []
    positions: list[int] = []
    failed: dict[int, str] = {}
    for index, path in enumerate(args.scans):
        try:
            images.append(load_scan(path, settings.max_scan_bytes, settings.max_scan_pixels))
            positions.append(index)
        except BadInput as exc:
            failed[index] = describe_error(exc)
        except OSError as exc:
            failed[index] = f"OSError: {path}: cannot read the file ({exc.strerror or exc})"
    details: list = []
    readings = read_telegrams(
        images,
        template,
        classifier,
        scan_names=[str(args.scans[i]) for i in positions],
        expected_mesa_codes=[mesa_code_of(args.scans[i]) for i in positions],
        details=details,
    )
    by_position = dict(zip(positions, readings, strict=True))
    ordered: list[TelegramReading] = []
    for index, path in enumerate(args.scans):
        if index in by_position:
            ordered.append(by_position[index])
        else:
            ordered.append(
                TelegramReading(
                    str(path),
                    mesa_code_of(path),
                    template.name,
                    0.0,
                    failed[index],
                    {},
                    [],
                    classifier.version,
                )  # fmt: skip
            )
    for reading in ordered:
        print(reading.to_json() if args.json else report(reading), flush=True)
    if args.debug is not None:
        for index, detail in zip(positions, details, strict=True):
            if detail is not None:
                write_debug(args.debug, args.scans[index], by_position[index], detail)
    return 1 if any(reading.error for reading in ordered) else 0


def report(reading) -> str:
    """A short human-readable report of one reading."""
    lines = [f"{reading.scan}: form {reading.form}, mesa {reading.mesa_id or '?'}"]
    if reading.error:
        lines.append(f"  error: {reading.error}")
        return "\n".join(lines)
    lines.append(f"  fit score {reading.fit_score:.3f}, model {reading.model_version}")
    for name, value in reading.header.items():
        flags = f"  [{', '.join(value.flags)}]" if value.flags else ""
        lines.append(f"  {name:<11} {_text(value.value):>5}  ({value.confidence:.3f}){flags}")
    review = [c for c in reading.cells if _needs_review(c.flags) or c.value is None]
    lines.append(
        f"  {len(reading.cells)} cells, {len(reading.cells) - len(review)} accepted, "
        f"{len(review)} to review"
    )
    for cell in reading.cells:
        flags = f"  [{', '.join(cell.flags)}]" if cell.flags else ""
        lines.append(
            f"  {cell.cargo_id:>4} {cell.row_key:<14} {_text(cell.value):>5}  "
            f"({cell.confidence:.3f}){flags}"
        )
    return "\n".join(lines)


def _text(value: int | None) -> str:
    return "?" if value is None else str(value)


def _needs_review(flags: list[str]) -> bool:
    from pipeline.decode import REVIEW_FLAGS

    return bool(set(flags) & {str(flag) for flag in REVIEW_FLAGS})


def write_debug(directory: Path, scan: Path, reading, detail) -> None:
    """DIR/<scan stem>/page.png and DIR/<scan stem>/cells/<field>.png."""
    from pipeline.debug import cell_reading_of, draw_cell, draw_page

    out = directory / scan.stem
    cells_dir = out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    _write(out / "page.png", draw_page(detail, reading))
    for crop in detail.crops:
        if crop.kind.value == "NO_USAR" or crop.image.size == 0:
            continue
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", crop.spot.name)
        image = draw_cell(
            crop, detail.segmentations.get(crop.spot.name), detail, cell_reading_of(reading, crop)
        )
        _write(cells_dir / f"{name}.png", image)


def _write(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise BadInput(f"{path}: cannot write the debug image")
