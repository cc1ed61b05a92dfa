"""Reading telegrams: scan images in, one ``TelegramReading`` per scan out.

Public entry points (the worker and ``escrutinio read`` call these):

- :func:`load_scan` ``(path, max_bytes, max_pixels) -> (H, W) uint8``: checks the file's size
  and the image header's dimensions BEFORE decoding (PNG, JPEG, TIFF), then decodes to grey;
- :func:`read_telegrams` ``(images, template, classifier, scan_names=None,
  expected_mesa_codes=None) -> list[TelegramReading]``: every page through the stages below;
  the digits of every page are classified together, in at most three batched
  ``classifier.predict_proba`` calls however many pages there are (stage 4); a page that
  cannot be read gets a ``TelegramReading`` with ``error`` set and the others go on;
- :class:`TelegramReading`, :class:`CellReading`, :class:`HeaderValue` and
  :meth:`TelegramReading.to_json` (the JSON line of ``escrutinio read --json``).

Stages, per page (each returns a typed result):

1. ``register_scan``: ``pipeline.register.register_page`` (homography, fit score) and the
   registered reading region at ``CELL_DPI`` (``warp_page``);
2. ``cut_fields``: ``pipeline.cells.cut_cells`` (cleaned crops, EMPTY / NO_USAR / WRITTEN);
3. ``segment_fields``: ``pipeline.segment.segment_cell`` on every written crop, told where
   the cell's own ruled lines run in the crop (``CellCrop.cell_box``);
then for all pages together:
4. ``classify_digits``: every candidate digit reframed (``pipeline.reframe.reframe_digit``)
   and classified in batches for the whole chunk (``classify_segmentations``: pieces whole
   first, then the cuts of those not read surely whole); ``choose_splits`` picks the split
   options from those probabilities;
5. ``decode_fields``: ``pipeline.decode.decode_cell`` per cell / header value: every split
   option of every piece weighted by its cut probability (alternatives with another cut are
   kept for the sum rule), confidence calibrated for the classifier's weights
   (``pipeline.decode.calibration_for``);
6. ``apply_rules``: ``apply_header_rule`` (votantes - sobres = diferencia), then per office
   column ``apply_sum_rule`` (lists + other rows = total = sobres);
7. ``assemble_reading``: the ``TelegramReading``.

Conventions shared with the database: POSITIVO rows carry ``agrupacion_id`` and
``lista_numero`` ("" when the list has no number), other vote types carry neither (None);
the total row has ``votos_tipo`` "TOTAL"; NO USAR cells are left out. ``box`` is the cell's
bounding box in the SCAN's pixels.
"""

from __future__ import annotations

import itertools
import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from pipeline.cells import CELL_DPI, CellCrop, CellKind, cut_cells, reading_region
from pipeline.decode import (
    IDENTITY,
    ILLEGIBLE_BELOW,
    Calibration,
    Flag,
    NumberReading,
    apply_header_rule,
    apply_sum_rule,
    calibration_for,
    decode_cell,
    illegible,
    resolve_against_sobres,
)
from pipeline.errors import BadInput, UnreadableScan
from pipeline.forms import Column, FormTemplate
from pipeline.reframe import reframe_digit
from pipeline.register import Registration, register_page, warp_page
from pipeline.segment import (
    CellSegmentation,
    DigitCrop,
    Piece,
    choose_splits,
    cut_unless_sure,
    rejected,
    resplit,
    segment_cell,
    sure_whole,
)

HEADER_FIELDS = ("votantes", "sobres", "diferencia")
# Columns that must add up to one same value other than the sobres as read to correct it.
SOBRES_BY_COLUMNS = 1


class Classifier(Protocol):
    """What reading needs of a digit classifier (``pipeline.model.DigitClassifier``)."""

    num_classes: int
    version: str

    def predict_proba(self, digits: np.ndarray) -> np.ndarray:
        """(N, 28, 28) uint8 white-on-black -> (N, num_classes) float probabilities."""
        ...


# --------------------------------------------------------------------------- results


@dataclass
class HeaderValue:
    """A header count (votantes, sobres, diferencia): value (None when unreadable), calibrated
    confidence 0..1, flags (``pipeline.decode.Flag`` names)."""

    value: int | None
    confidence: float
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "confidence": round(float(self.confidence), 6),
            "flags": self.flags,
        }


@dataclass
class CellReading:
    """One table cell's reading.

    digits: the digit string read ("" for an empty cell); digit_confidences: per digit piece
    the probability of its best class; digit_probs: (k, C) calibrated class probabilities of
    the k pieces; box: (x0, y0, x1, y1) of the cell in the scan's pixels.
    """

    cargo_id: int
    votos_tipo: str
    agrupacion_id: int | None
    lista_numero: str | None
    row_key: str
    value: int | None
    confidence: float
    flags: list[str]
    digits: str
    digit_confidences: list[float]
    digit_probs: np.ndarray
    box: tuple[int, int, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cargo_id": self.cargo_id,
            "votos_tipo": self.votos_tipo,
            "agrupacion_id": self.agrupacion_id,
            "lista_numero": self.lista_numero,
            "row_key": self.row_key,
            "value": self.value,
            "confidence": round(float(self.confidence), 6),
            "flags": self.flags,
            "digits": self.digits,
            "digit_confidences": [round(float(c), 6) for c in self.digit_confidences],
            "box": [int(v) for v in self.box],
        }


@dataclass
class TelegramReading:
    """Everything read from one scan. ``error`` is set (and header/cells empty) when the scan
    could not be read; ``fit_score`` is the registration's (0 when it failed)."""

    scan: str
    mesa_id: str | None
    form: str
    fit_score: float
    error: str | None
    header: dict[str, HeaderValue]
    cells: list[CellReading]
    model_version: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``escrutinio read --json`` (see issue 5 item 8)."""
        return {
            "scan": self.scan,
            "mesa_id": self.mesa_id,
            "form": self.form,
            "fit_score": round(float(self.fit_score), 6),
            "error": self.error,
            "model_version": self.model_version,
            "header": {name: value.to_dict() for name, value in self.header.items()},
            "cells": [cell.to_dict() for cell in self.cells],
        }

    def to_json(self) -> str:
        """One line of JSON (``to_dict``), UTF-8 text, no trailing newline."""
        return json.dumps(self.to_dict(), ensure_ascii=False)


# --------------------------------------------------------------------------- loading


def _png_size(head: bytes) -> tuple[int, int] | None:
    if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 24 or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height


_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the first SOF segment of a JPEG stream, None if absent."""
    if data[:2] != b"\xff\xd8":
        return None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in _SOF_MARKERS:
            if position + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        if marker == 0xD9 or length < 2:
            return None
        position += 2 + length
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of the first image (IFD) of a classic TIFF, None if unreadable."""
    if data[:4] == b"II*\x00":
        order = "<"
    elif data[:4] == b"MM\x00*":
        order = ">"
    else:
        return None
    (offset,) = struct.unpack(order + "I", data[4:8])
    if offset + 2 > len(data):
        return None
    (count,) = struct.unpack(order + "H", data[offset : offset + 2])
    width = height = None
    for i in range(count):
        entry = offset + 2 + 12 * i
        if entry + 12 > len(data):
            return None
        tag, kind = struct.unpack(order + "HH", data[entry : entry + 4])
        if tag in (256, 257):
            if kind == 3:  # SHORT
                (value,) = struct.unpack(order + "H", data[entry + 8 : entry + 10])
            else:  # LONG
                (value,) = struct.unpack(order + "I", data[entry + 8 : entry + 12])
            if tag == 256:
                width = value
            else:
                height = value
    if width is None or height is None:
        return None
    return width, height


def image_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the header of a PNG, JPEG or TIFF file's bytes.

    Raises UnreadableScan when the bytes are none of these or the header is corrupt.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        size, kind = _png_size(data[:24]), "PNG"
    elif data[:2] == b"\xff\xd8":
        size, kind = _jpeg_size(data), "JPEG"
    elif data[:4] in (b"II*\x00", b"MM\x00*"):
        size, kind = _tiff_size(data), "TIFF"
    elif data[:4] in (b"II+\x00", b"MM\x00+"):
        raise UnreadableScan("BigTIFF images are not supported (save the scan as a classic TIFF)")
    else:
        raise UnreadableScan("not an image: the file is not PNG, JPEG or TIFF")
    if size is None:
        raise UnreadableScan(f"corrupt {kind} image: its header gives no width and height")
    return kind, size[0], size[1]


def load_scan(path: Path, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Read one scan file as (H, W) uint8 grey, refusing anything unsafe before decoding.

    Checks, in order: the file size (``max_bytes``), the format and the dimensions in the
    image header (``max_pixels`` = width x height), then decodes with OpenCV (whose own pixel
    limit is set in ``pipeline/__init__``). Raises UnreadableScan naming the file and the
    problem (too large, not an image, corrupt or truncated). OSError (missing file,
    permissions) is left to the caller.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise UnreadableScan(f"{path}: file is {size:,} bytes, over the limit of {max_bytes:,}")
    if size == 0:
        raise UnreadableScan(f"{path}: the file is empty")
    data = path.read_bytes()
    try:
        kind, width, height = image_size(data)
    except UnreadableScan as exc:
        raise UnreadableScan(f"{path}: {exc}") from exc
    if width <= 0 or height <= 0:
        raise UnreadableScan(f"{path}: corrupt {kind} image: size {width}x{height}")
    if width * height > max_pixels:
        raise UnreadableScan(
            f"{path}: image is {width}x{height} = {width * height:,} pixels, over the limit "
            f"of {max_pixels:,}"
        )
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None or image.size == 0:
        raise UnreadableScan(f"{path}: corrupt or truncated {kind} image (cannot be decoded)")
    return image


# --------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class RegisteredPage:
    """Stage 1: the registration and the registered reading region (uint8 grey at dpi)."""

    registration: Registration
    region: np.ndarray
    origin: tuple[int, int]
    dpi: float


@dataclass(frozen=True)
class PageFields:
    """Stages 2-3: the page's cleaned fields and the segmentation of the written ones."""

    page: RegisteredPage
    crops: list[CellCrop]
    # by field name, WRITTEN fields only; None where segmentation failed
    segmentations: dict[str, CellSegmentation | None]


def register_scan(
    image: np.ndarray, template: FormTemplate, dpi: float = CELL_DPI
) -> RegisteredPage:
    """Register a scan to the template and warp the reading region at ``dpi``."""
    registration = register_page(image, template)
    region = reading_region(template)
    page_w, page_h = template.page_size_px(dpi)
    x0, y0, _, _ = region.to_pixels(page_w, page_h)
    warped = warp_page(image, registration, template, dpi, region)
    return RegisteredPage(registration, warped, (x0, y0), dpi)


def cut_fields(page: RegisteredPage, template: FormTemplate) -> list[CellCrop]:
    """Every header field and table cell of the page, cleaned and classified."""
    return cut_cells(page.region, template, page.dpi, page.origin)


def segment_fields(crops: Sequence[CellCrop]) -> dict[str, CellSegmentation | None]:
    """Digit pieces of every WRITTEN field (segment_cell), by field name. The crop has a margin
    around the cell: ``lines=crop.cell_box`` says where the cell's ruled lines run, so their
    remnants are stripped there and not at the crop's edges. A field whose segmentation fails
    maps to None (read as ILLEGIBLE: one odd cell must not lose the page)."""
    out: dict[str, CellSegmentation | None] = {}
    for crop in crops:
        if crop.kind == CellKind.WRITTEN:
            try:
                out[crop.spot.name] = segment_cell(
                    crop.image, lines=crop.cell_box, whole_first=True
                )
            except Exception:  # noqa: BLE001 - any failure on one cell is that cell's problem
                out[crop.spot.name] = None
    return out


class _BatchedDigits:
    """Every candidate digit crop of a chunk reframed and classified once.

    ``add`` collects crops (keyed by identity; the crops are kept alive here so an identity is
    never reused), ``classify_all`` makes one ``predict_proba`` call for the crops added since
    the last (``classify_segmentations`` makes up to three), ``probs_of`` gives a crop's class
    probabilities (what ``choose_splits`` and decoding use).
    """

    def __init__(self) -> None:
        self._index: dict[int, int] = {}
        self._crops: list[DigitCrop] = []
        self._frames: list[np.ndarray] = []
        self.probs = np.zeros((0, 10), np.float32)

    def add(self, crop: DigitCrop) -> None:
        if id(crop) in self._index:
            return
        self._index[id(crop)] = len(self._frames)
        self._crops.append(crop)
        try:
            frame = reframe_digit(crop.image)
        except BadInput:  # too faint to frame: an all-background frame reads as no digit
            frame = np.zeros((28, 28), np.uint8)
        self._frames.append(frame)

    def classify_all(self, classifier: Classifier) -> None:
        """Classify the crops added since the last call (one ``predict_proba`` call; none
        when there are no new crops after the first call)."""
        done = len(self.probs)
        if done and done == len(self._frames):
            return
        pending = self._frames[done:]
        frames = np.stack(pending) if pending else np.zeros((0, 28, 28), np.uint8)
        probs = np.asarray(classifier.predict_proba(frames), np.float32)
        self.probs = np.concatenate([self.probs, probs]) if done else probs

    def probs_of(self, crop: DigitCrop) -> np.ndarray:
        return self.probs[self._index[id(crop)]]

    def frame_of(self, crop: DigitCrop) -> np.ndarray:
        """The (28, 28) uint8 frame the classifier saw for ``crop``."""
        return self._frames[self._index[id(crop)]]


def classify_segmentations(
    segmentations: Sequence[CellSegmentation], classifier: Classifier
) -> tuple[list[CellSegmentation], _BatchedDigits]:
    """Stage 4 for any number of cells at once, in up to three batched classifications:
    every candidate digit there is (each piece whole, and the cuts of the pieces too wide
    for one digit); then the cuts of the pieces not read surely whole (``pipeline.segment.
    cut_unless_sure``); then new cuts for the pieces whose best reading holds a part the
    classifier calls "not a digit" (``rejected``, ``resplit``: touching digits the
    geometric guess did not cut), unless the piece is read surely whole, which keeps its
    whole option alone (``sure_whole``, checked first). ``choose_splits`` then picks each
    ambiguous piece's split. Returns the segmentations (in order) with the chosen split as
    option 0, and the batch (for the probabilities)."""
    batch = _BatchedDigits()

    def add_all(segmentation: CellSegmentation) -> None:
        for piece in segmentation.pieces:
            for option in piece.options:
                for crop in option:
                    batch.add(crop)

    def revised(
        segmentations: Sequence[CellSegmentation],
        step: Callable[[Piece, Callable[[DigitCrop], np.ndarray]], Piece],
    ) -> list[CellSegmentation]:
        """Every piece through ``step``; the crops of the new options classified together."""
        out = []
        for segmentation in segmentations:
            pieces = tuple(step(piece, batch.probs_of) for piece in segmentation.pieces)
            if any(new is not old for new, old in zip(pieces, segmentation.pieces, strict=True)):
                segmentation = replace(segmentation, pieces=pieces)
                add_all(segmentation)
            out.append(segmentation)
        batch.classify_all(classifier)
        return out

    for segmentation in segmentations:
        add_all(segmentation)
    batch.classify_all(classifier)
    settled = revised(revised(segmentations, cut_unless_sure), _sure_or_resplit)
    return choose_splits(settled, probs_of=batch.probs_of), batch


def _sure_or_resplit(piece: Piece, probs_of: Callable[[DigitCrop], np.ndarray]) -> Piece:
    """A piece read surely whole as one digit keeps its whole option alone (``sure_whole``);
    any other piece whose best reading holds a "not a digit" part is cut again
    (``rejected``, ``resplit``)."""
    sure = sure_whole(piece, probs_of)
    if sure is not piece:
        return sure
    return resplit(piece) if rejected(piece, probs_of) else piece


def classify_digits(
    pages: Sequence[PageFields], classifier: Classifier
) -> tuple[list[dict[str, CellSegmentation | None]], _BatchedDigits]:
    """``classify_segmentations`` for all written fields of all pages together. Returns,
    per page, the chosen segmentations by field name (None where the field has no ink), and
    the batch."""
    keys = [
        (number, name)
        for number, page in enumerate(pages)
        for name, segmentation in page.segmentations.items()
        if segmentation is not None
    ]
    picked, batch = classify_segmentations(
        [pages[number].segmentations[name] for number, name in keys], classifier
    )
    chosen: list[dict[str, CellSegmentation | None]] = [
        dict.fromkeys(page.segmentations) for page in pages
    ]
    for (number, name), segmentation in zip(keys, picked, strict=True):
        chosen[number][name] = segmentation
    return chosen, batch


@dataclass(frozen=True)
class PageDetails:
    """A read page's intermediate results (for debug views and benchmarks): the registered
    region, the cleaned fields, the chosen segmentations, the batch holding the digit
    probabilities, and each field's reading before the sum rules (by field name)."""

    page: RegisteredPage
    crops: list[CellCrop]
    segmentations: dict[str, CellSegmentation | None]
    batch: _BatchedDigits
    before_rules: dict[str, NumberReading]

    def digit_probs(self, crop: DigitCrop) -> np.ndarray:
        return self.batch.probs_of(crop)


def _empty_probs(num_classes: int) -> np.ndarray:
    return np.zeros((0, num_classes), np.float64)


# An EMPTY field (nothing written, not segmented): decodes to 0 with flag EMPTY.
_NOTHING_WRITTEN = CellSegmentation(pieces=(), struck_through=False, ink_fraction=0.0)


# How often an EMPTY cell holding a faint mark (``CellCrop.faint_mark``) is really blank: 7
# of 13 on 300 hard synthetic telegrams (seed 1).
FAINT_MARK_EMPTY = 0.5


def _faintly_marked(reading: NumberReading) -> NumberReading:
    """The EMPTY reading of a cell with a faint mark, at FAINT_MARK_EMPTY confidence, so it is
    reviewed (LOW_CONFIDENCE) and a suspect when its column does not add up."""
    return replace(
        reading,
        confidence=FAINT_MARK_EMPTY,
        alternatives=(("", FAINT_MARK_EMPTY),),
        flags=reading.flags | {Flag.LOW_CONFIDENCE},
    )


def one_digit_of_box(box: CellSegmentation) -> tuple[Piece, ...]:
    """The piece of a header digit box that is its digit: the tallest. The form asks for one
    digit per box, so a second piece is a speck or a stray mark (on grainy scans it read as
    an extra digit: "2168" for 268)."""
    if len(box.pieces) <= 1:
        return box.pieces
    return (max(box.pieces, key=lambda piece: piece.box[3] - piece.box[1]),)


# Two groups of pieces this far apart (in heights of the tallest piece) are two numbers: a
# number crossed out and its correction beside it, or a number and a stray mark.
GROUPS_APART = 1.0


def _groups_apart(segmentation: CellSegmentation) -> tuple[CellSegmentation, ...]:
    """The cell's pieces split at their widest gap into two groups, when that gap is at least
    GROUPS_APART of the tallest piece's height; else (). A gap runs from the right edge of
    all the pieces left of it (a wide piece may reach past a narrow one inside it)."""
    pieces = sorted(segmentation.pieces, key=lambda piece: piece.box[0])
    if len(pieces) < 2:
        return ()
    reach = itertools.accumulate((piece.box[2] for piece in pieces), max)
    gaps = [right.box[0] - edge for edge, right in zip(reach, pieces[1:], strict=False)]
    widest = int(np.argmax(gaps))
    tallest = max(piece.box[3] - piece.box[1] for piece in pieces)
    if gaps[widest] < GROUPS_APART * tallest:
        return ()
    return tuple(
        replace(segmentation, pieces=tuple(group), struck_through=False)
        for group in (pieces[: widest + 1], pieces[widest + 1 :])
    )


def one_of_two_numbers(
    reading: NumberReading,
    segmentation: CellSegmentation,
    decode: Callable[[CellSegmentation], NumberReading],
) -> NumberReading:
    """An ILLEGIBLE reading (too many digits, above the bound, or too unsure) of a cell
    holding two groups of pieces far apart (``_groups_apart``) read as one of them: each
    group is read alone (``decode``), and the cell's alternatives, in place of the whole's,
    are both groups' readings at half their probability, even odds on which group is the
    number (the correction written right of a number whose strike the segmentation missed,
    or a count left of a stray mark); the sum rule says which (``NumberReading.either_or``:
    not the rules that weigh a misreading). The best of them is the value, flagged
    LOW_CONFIDENCE; below ILLEGIBLE_BELOW the reading stays ILLEGIBLE. Any other reading is
    returned as it is.
    On seed 7 (100 telegrams) 1 / 3 / 11 more cells (MNIST / USPS / hard) read right before
    the sum rule, none wrong that was right."""
    if reading.value is not None or Flag.ILLEGIBLE not in reading.flags:
        return reading
    groups = _groups_apart(segmentation)
    if not groups:
        return reading
    readings = [decode(group) for group in groups]
    merged: dict[str, float] = {}
    for group_reading in readings:
        for text, probability in group_reading.alternatives:
            merged[text] = merged.get(text, 0.0) + 0.5 * probability
    alternatives = tuple(sorted(merged.items(), key=lambda item: -item[1]))
    if not alternatives or alternatives[0][1] < ILLEGIBLE_BELOW:
        return reading
    text, confidence = alternatives[0]
    return replace(
        reading,
        value=int(text) if text else 0,
        text=text,
        confidence=confidence,
        alternatives=alternatives,
        flags=(reading.flags - {Flag.ILLEGIBLE, Flag.EMPTY})
        | {Flag.LOW_CONFIDENCE}
        | ({Flag.EMPTY} if text == "" else set()),
        either_or=True,
    )


def decode_fields(
    crops: Sequence[CellCrop],
    segmentations: dict[str, CellSegmentation | None],
    batch: _BatchedDigits,
    num_classes: int,
    calibration: Calibration = IDENTITY,
    max_value: int | None = None,
) -> dict[str, NumberReading]:
    """Stage 5: a NumberReading per field (``decode_cell``; a cell's ILLEGIBLE reading of two
    groups of pieces far apart, as ``one_of_two_numbers`` reads it); the pieces of a header
    value's digit boxes are joined, left to right, into one number. calibration: of the classifier's
    weights (``calibration_for``); max_value: the largest possible count (the template's
    ``max_count``), readings above it are impossible."""
    readings: dict[str, NumberReading] = {}
    header_boxes: dict[str, list[CellSegmentation]] = {}
    failed: set[str] = set()

    def decode(cells: CellSegmentation) -> NumberReading:
        return decode_cell(cells, batch.probs_of, calibration=calibration, max_value=max_value)

    for crop in crops:
        name = crop.spot.name
        if crop.kind == CellKind.NO_USAR:
            continue
        parts = name.split(":")
        field_name = f"header:{parts[1]}" if parts[0] == "header" else name
        if name in segmentations and segmentations[name] is None:
            failed.add(field_name)  # segmentation failed on this field: unreadable
        segmentation = segmentations.get(name) or _NOTHING_WRITTEN
        if parts[0] == "header" and len(parts) == 3:  # one digit box of a header value
            header_boxes.setdefault(parts[1], []).append(segmentation)
            continue
        reading = one_of_two_numbers(decode(segmentation), segmentation, decode)
        if crop.faint_mark:
            reading = _faintly_marked(reading)
        readings[name] = reading
    for field_name, boxes in header_boxes.items():
        joined = CellSegmentation(
            pieces=tuple(piece for box in boxes for piece in one_digit_of_box(box)),
            struck_through=any(box.struck_through for box in boxes),
            ink_fraction=max(box.ink_fraction for box in boxes),
        )
        readings[f"header:{field_name}"] = decode_cell(
            joined, batch.probs_of, calibration=calibration, max_value=max_value
        )
    for field_name in failed:
        readings[field_name] = illegible(_empty_probs(num_classes))
    return readings


def _is_blank(reading: NumberReading) -> bool:
    return Flag.EMPTY in reading.flags and reading.value in (0, None)


def apply_rules(
    readings: dict[str, NumberReading], template: FormTemplate
) -> dict[str, NumberReading]:
    """Stage 6: the header rule, then the sum rule of every office column (a copy).

    A blank TOTAL cell is not a written 0: the column is checked against sobres alone and the
    cell stays blank. Columns whose total and sobres are both unreadable are left as read.
    sobres is one reading shared by every column, so the columns judge it together: when
    SOBRES_BY_COLUMNS or more of them add up to one same other value and none to sobres as
    read, sobres takes that value (CORRECTED_BY_SUM; a "1" read "7": 161 read 761), and the
    header rule and the columns are checked again with it. When not one column adds up to
    sobres otherwise, sobres gets SUM_MISMATCH, and so does votantes if the header rule holds
    (as read or once corrected: votantes and sobres then agree, and were likely misread
    alike: "208" read "20" in both). When a column confirms sobres as read, the columns left
    with a misread total and a misread row get a second look against it
    (``decode.resolve_against_sobres``).
    """
    out = dict(readings)
    header = [readings.get(f"header:{name}") for name in HEADER_FIELDS]
    header_holds = _header_rule(out, header)
    verdict = _column_rules(out, readings, template, out.get("header:sobres"))
    agreed = {reading.value for reading in verdict.corrections}
    if not verdict.confirmed and len(verdict.corrections) >= SOBRES_BY_COLUMNS and len(agreed) == 1:
        corrected = min(verdict.corrections, key=lambda reading: reading.confidence)
        # Several columns agree on this value: it alone is sobres now, its own rivals (which
        # each column's correction kept, ``decode._recentred``) dropped.
        corrected = replace(
            corrected,
            alternatives=((str(corrected.value), corrected.confidence),),
            flags=corrected.flags - {Flag.HEADER_MISMATCH},
        )
        header[1] = corrected
        _header_rule(out, header)
        _column_rules(out, readings, template, out["header:sobres"])
    elif verdict.checked and not verdict.confirmed:
        doubted = ["sobres", "votantes"] if header_holds else ["sobres"]
        for name in doubted:
            reading = out[f"header:{name}"]
            out[f"header:{name}"] = replace(reading, flags=reading.flags | {Flag.SUM_MISMATCH})
    if verdict.confirmed:
        _recheck_against_sobres(out, readings, template, out["header:sobres"])
    return out


def _recheck_against_sobres(
    out: dict[str, NumberReading],
    readings: dict[str, NumberReading],
    template: FormTemplate,
    sobres: NumberReading,
) -> None:
    """The columns whose rows and total both disagree with ``sobres`` (confirmed by another
    column) after their sum rule, given ``decode.resolve_against_sobres``' second look: the
    cells it resolves written into ``out``, the others left as they are."""
    for column in template.columns:
        names, total_name = _column_cells(template, column)
        if total_name is None or Flag.SUM_MISMATCH not in out[total_name].flags:
            continue
        rows = [readings[name] for name in names]
        result = resolve_against_sobres(rows, readings[total_name], sobres)
        if result is not None:
            for name, reading in zip([*names, total_name], result.readings, strict=True):
                out[name] = reading


def _column_cells(template: FormTemplate, column: Column) -> tuple[list[str], str | None]:
    """The reading names ("row key|cargo id") of an office column's rows other than TOTAL,
    in the template's order, and of its TOTAL (None when the form has none or it is NO USAR
    in this column)."""
    names = [
        f"{row.key}|{column.cargo_id}"
        for row in template.rows
        if row.votos_tipo != "TOTAL" and not template.is_no_usar(row, column)
    ]
    total_row = next((row for row in template.rows if row.votos_tipo == "TOTAL"), None)
    if total_row is None or template.is_no_usar(total_row, column):
        return names, None
    return names, f"{total_row.key}|{column.cargo_id}"


def _header_rule(out: dict[str, NumberReading], header: list[NumberReading | None]) -> bool:
    """votantes - sobres = diferencia on ``header`` (readings in HEADER_FIELDS order), written
    into ``out``; True when it holds (as read or corrected). Not checked (False) when a
    header value is missing; then ``header``'s readings are written as they are."""
    if any(reading is None for reading in header):
        for name, reading in zip(HEADER_FIELDS, header, strict=True):
            if reading is not None:
                out[f"header:{name}"] = reading
        return False
    result = apply_header_rule(*header)
    for name, reading in zip(HEADER_FIELDS, result.readings, strict=True):
        out[f"header:{name}"] = reading
    return Flag.HEADER_MISMATCH not in result.flags


@dataclass(frozen=True)
class _SobresVerdict:
    """What the columns said of sobres: checked by any column, confirmed by one adding up to
    it, and its value in the columns that add up to another (their corrected sobres)."""

    checked: bool
    confirmed: bool
    corrections: tuple[NumberReading, ...]


def _column_rules(
    out: dict[str, NumberReading],
    readings: dict[str, NumberReading],
    template: FormTemplate,
    sobres: NumberReading | None,
) -> _SobresVerdict:
    """The sum rule of every office column of ``readings`` (lists + other rows = total =
    ``sobres``), the checked cells written into ``out``."""
    if sobres is not None and (sobres.value is None or _is_blank(sobres)):
        sobres = None
    checked = confirmed = False
    corrections: list[NumberReading] = []
    for column in template.columns:
        names, total_name = _column_cells(template, column)
        rows = [readings[name] for name in names]
        total = None if total_name is None else readings[total_name]
        if total is not None and _is_blank(total):
            total = None
        if total is None and sobres is None:
            continue
        if total is None:
            result = apply_sum_rule(rows, sobres)
        else:
            result = apply_sum_rule(rows, total, sobres)
        for name, reading in zip(names, result.rows, strict=True):
            out[name] = reading
        if total is not None and total_name is not None:
            out[total_name] = result.total
        if sobres is not None:
            checked = True
            as_checked = result.readings[-1]  # sobres is the column's last variable
            # rows that add up to sobres check it though the total alone disagrees; a column
            # that adds up to its total only (sobres the odd one) offers no corrected value
            total_alone = result.lone_suspect == len(names)
            if Flag.SUM_MISMATCH not in result.flags or (
                total_alone and Flag.SUM_MISMATCH not in as_checked.flags
            ):
                if as_checked.value == sobres.value:
                    confirmed = True
                else:
                    corrections.append(as_checked)
    return _SobresVerdict(checked, confirmed, tuple(corrections))


def _flags(reading: NumberReading) -> list[str]:
    return sorted(str(flag) for flag in reading.flags)


def assemble_reading(
    scan: str,
    mesa_id: str | None,
    template: FormTemplate,
    page: RegisteredPage,
    readings: dict[str, NumberReading],
    model_version: str,
) -> TelegramReading:
    """Stage 7: the TelegramReading of one page."""
    header = {}
    for name in HEADER_FIELDS:
        reading = readings[f"header:{name}"]
        header[name] = HeaderValue(reading.value, float(reading.confidence), _flags(reading))
    cells = []
    specs = template.value_cells()
    boxes = page.registration.boxes_to_scan([spec.box for spec in specs])
    for spec, box in zip(specs, boxes, strict=True):
        row, column = spec.row, spec.column
        reading = readings[f"{row.key}|{column.cargo_id}"]
        positive = row.votos_tipo == "POSITIVO"
        value = reading.value
        if row.votos_tipo == "TOTAL" and _is_blank(reading):
            value = None  # a total left blank is not a written 0
        probs = np.asarray(reading.digit_probs, np.float64)
        cells.append(
            CellReading(
                cargo_id=column.cargo_id,
                votos_tipo=row.votos_tipo,
                agrupacion_id=row.agrupacion_id if positive else None,
                lista_numero=row.lista_numero if positive else None,
                row_key=row.key,
                value=value,
                confidence=float(reading.confidence),
                flags=_flags(reading),
                digits=reading.text if reading.text is not None else "",
                digit_confidences=[float(p) for p in probs.max(axis=1)] if len(probs) else [],
                digit_probs=probs,
                box=box,
            )
        )
    return TelegramReading(
        scan=scan,
        mesa_id=mesa_id,
        form=template.name,
        fit_score=page.registration.fit_score,
        error=None,
        header=header,
        cells=cells,
        model_version=model_version,
    )


def _error_reading(
    scan: str, mesa_id: str | None, template: FormTemplate, error: str, version: str
):
    return TelegramReading(scan, mesa_id, template.name, 0.0, error, {}, [], version)


def describe_error(exc: BaseException) -> str:
    """'<ErrorType>: message' for a reading's ``error``."""
    return f"{type(exc).__name__}: {exc}"


def prepare_page(image: np.ndarray, template: FormTemplate) -> PageFields:
    """Stages 1-3 for one page (may raise BadInput for a page that cannot be read)."""
    page = register_scan(image, template)
    crops = cut_fields(page, template)
    return PageFields(page, crops, segment_fields(crops))


def read_telegrams(
    images: Sequence[np.ndarray],
    template: FormTemplate,
    classifier: Classifier,
    scan_names: Sequence[str] | None = None,
    expected_mesa_codes: Sequence[str | None] | None = None,
    details: list[PageDetails | None] | None = None,
) -> list[TelegramReading]:
    """Read a chunk of telegram scans of one form; one reading per image, in order.

    images: scans as (H, W) grey, (H, W, 3) BGR or 1-bit arrays (``load_scan`` output).
    scan_names: what to report as each reading's ``scan`` (default "0", "1", ...).
    expected_mesa_codes: the mesa each scan is registered as (becomes ``mesa_id``).
    A page that fails (bad scan, wrong form, upside down, ...) gets ``error`` set; the rest
    of the chunk is read. At most three ``classifier.predict_proba`` calls for the whole
    chunk (``classify_segmentations``).
    details: when a list is given, one ``PageDetails`` (or None for a failed page) per image
    is appended to it: the intermediate results, for debug views.
    """
    count = len(images)
    names = list(scan_names) if scan_names is not None else [str(i) for i in range(count)]
    mesas = list(expected_mesa_codes) if expected_mesa_codes is not None else [None] * count
    if len(names) != count or len(mesas) != count:
        raise BadInput(
            f"read_telegrams: {count} images but {len(names)} scan names and "
            f"{len(mesas)} expected mesa codes"
        )
    version = str(getattr(classifier, "version", "unknown"))
    prepared: list[PageFields | None] = []
    errors: dict[int, str] = {}
    for index, image in enumerate(images):
        try:
            prepared.append(prepare_page(image, template))
        except BadInput as exc:
            errors[index] = describe_error(exc)
            prepared.append(None)
        except Exception as exc:  # one broken page must not take the chunk down
            errors[index] = f"internal error while reading the page: {describe_error(exc)}"
            prepared.append(None)
    good = [page for page in prepared if page is not None]
    chosen, batch = classify_digits(good, classifier)
    num_classes = int(getattr(classifier, "num_classes", batch.probs.shape[1] or 10))
    results: list[TelegramReading] = []
    good_index = 0
    for index, page in enumerate(prepared):
        if page is None:
            if details is not None:
                details.append(None)
            results.append(
                _error_reading(names[index], mesas[index], template, errors[index], version)
            )
            continue
        segmentations = chosen[good_index]
        good_index += 1
        detail = PageDetails(page.page, page.crops, segmentations, batch, {})
        if details is not None:
            details.append(detail)
        try:
            readings = decode_fields(
                page.crops,
                segmentations,
                batch,
                num_classes,
                calibration_for(classifier),
                max_value=template.max_count,
            )
            detail.before_rules.update(readings)
            readings = apply_rules(readings, template)
            results.append(
                assemble_reading(names[index], mesas[index], template, page.page, readings, version)
            )
        except BadInput as exc:
            results.append(
                _error_reading(names[index], mesas[index], template, describe_error(exc), version)
            )
        except Exception as exc:
            message = f"internal error while decoding the page: {describe_error(exc)}"
            results.append(_error_reading(names[index], mesas[index], template, message, version))
    return results
