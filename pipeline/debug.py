"""Debug views of a reading, as images a person can look at (``escrutinio read --debug``).

- :func:`draw_page`: the registered reading region with every field's box, coloured by what
  happened to it (green accepted, orange flagged for review, grey empty/NO USAR, blue
  corrected by the sum rule), and the value read;
- :func:`draw_cell`: one cleaned cell crop, enlarged, with the cell's box, each digit's box and
  its best class with probability, the dropped specks, and the reading below.

Both return BGR uint8 images; nothing is written here.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.cells import CellCrop, CellKind
from pipeline.decode import REVIEW_FLAGS
from pipeline.read import CellReading, PageDetails, TelegramReading
from pipeline.segment import CellSegmentation

GREEN = (40, 160, 40)
ORANGE = (0, 140, 255)
BLUE = (200, 90, 0)
GREY = (150, 150, 150)
RED = (0, 0, 220)


def _colour(flags: list[str], value: int | None) -> tuple[int, int, int]:
    if value is None or set(flags) & {str(f) for f in REVIEW_FLAGS}:
        return ORANGE
    if "CORRECTED_BY_SUM" in flags:
        return BLUE
    if "EMPTY" in flags:
        return GREY
    return GREEN


def _field_values(reading: TelegramReading) -> dict[str, tuple[int | None, list[str]]]:
    values: dict[str, tuple[int | None, list[str]]] = {}
    for name, header in reading.header.items():
        values[f"header:{name}"] = (header.value, header.flags)
    for cell in reading.cells:
        values[f"{cell.row_key}|{cell.cargo_id}"] = (cell.value, cell.flags)
    return values


def _field_of(crop: CellCrop) -> str:
    parts = crop.spot.name.split(":")
    return ":".join(parts[:2]) if parts[0] == "header" else crop.spot.name


def draw_page(details: PageDetails, reading: TelegramReading) -> np.ndarray:
    """(h, w, 3) uint8: the registered region with the fields' boxes and values."""
    page = cv2.cvtColor(details.page.region, cv2.COLOR_GRAY2BGR)
    values = _field_values(reading)
    ox, oy = details.page.origin
    for crop in details.crops:
        x0, y0 = crop.crop_box[0] - ox, crop.crop_box[1] - oy
        cx0, cy0, cx1, cy1 = crop.cell_box
        top_left = (x0 + cx0 + 2, y0 + cy0 + 2)
        bottom_right = (x0 + cx1 - 2, y0 + cy1 - 2)
        if crop.kind == CellKind.NO_USAR:
            cv2.rectangle(page, top_left, bottom_right, GREY, 1)
            continue
        value, flags = values.get(_field_of(crop), (None, ["ILLEGIBLE"]))
        colour = _colour(flags, value)
        cv2.rectangle(page, top_left, bottom_right, colour, 2)
        if crop.spot.name.count(":") == 2 and not crop.spot.name.endswith(":0"):
            continue  # a header value's later digit boxes: the value is shown once
        text = "?" if value is None else str(value)
        cv2.putText(
            page, text, (top_left[0] + 2, bottom_right[1] - 3), cv2.FONT_HERSHEY_SIMPLEX,
            0.5, colour, 1, cv2.LINE_AA,
        )  # fmt: skip
    return page


def draw_cell(
    crop: CellCrop,
    segmentation: CellSegmentation | None,
    details: PageDetails,
    cell: CellReading | None,
    scale: int = 4,
) -> np.ndarray:
    """(h, w, 3) uint8: the cleaned crop enlarged ``scale`` times with its segmentation
    (digit boxes and their best class / probability, dropped specks in grey) and a caption."""
    image = cv2.cvtColor(crop.image, cv2.COLOR_GRAY2BGR)
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    x0, y0, x1, y1 = (v * scale for v in crop.cell_box)
    cv2.rectangle(image, (x0, y0), (x1, y1), GREY, 1)
    if segmentation is not None:
        for box in segmentation.dropped:
            cv2.rectangle(
                image, (box[0] * scale, box[1] * scale), (box[2] * scale, box[3] * scale), GREY, 1
            )
        for digit in segmentation.digits:
            bx0, by0, bx1, by1 = (v * scale for v in digit.box)
            cv2.rectangle(image, (bx0, by0), (bx1, by1), RED, 1)
            probs = details.digit_probs(digit)
            best = int(np.argmax(probs))
            label = "x" if best == 10 else str(best)
            cv2.putText(
                image, f"{label} {probs[best]:.2f}", (bx0, max(10, by0 - 3)),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, RED, 1, cv2.LINE_AA,
            )  # fmt: skip
    caption = f"{crop.spot.name}  {crop.kind.value}"
    if cell is not None:
        caption += f"  value={cell.value} conf={cell.confidence:.3f} {','.join(cell.flags)}"
    band = np.full((22, image.shape[1], 3), 255, np.uint8)
    cv2.putText(band, caption, (3, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([image, band])


def cell_reading_of(reading: TelegramReading, crop: CellCrop) -> CellReading | None:
    """The CellReading of a table cell crop (None for header fields and NO USAR cells)."""
    for cell in reading.cells:
        if f"{cell.row_key}|{cell.cargo_id}" == crop.spot.name:
            return cell
    return None
