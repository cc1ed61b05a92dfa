"""Reading telegrams end to end: safe loading, one batched inference, the JSON conventions,
and the accuracy targets on synthetic telegrams."""

from __future__ import annotations

import csv
import json
import struct
import zlib

import cv2
import numpy as np
import pytest

from pipeline.decode import REVIEW_FLAGS, NumberReading
from pipeline.errors import UnreadableScan
from pipeline.forms import load_template
from pipeline.read import image_size, load_scan, one_digit_of_box, read_telegrams
from pipeline.segment import segment_cell
from tests.conftest import SAMPLE_TELEGRAM
from tests.pipeline.mnist_cells import compose, digit
from tests.pipeline.reading_fixtures import classifier, telegram, template, written_value

REVIEW = {str(flag) for flag in REVIEW_FLAGS}


# --------------------------------------------------------------------------- load_scan


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    )


@pytest.mark.parametrize("ext", [".png", ".jpeg", ".tiff"])
def test_header_dimensions_are_read_without_decoding(tmp_path, ext):
    image = np.random.default_rng(0).integers(0, 255, (37, 53), np.uint8)
    path = tmp_path / f"scan{ext}"
    assert cv2.imwrite(str(path), image)
    kind, width, height = image_size(path.read_bytes())
    assert (width, height) == (53, 37)
    assert kind in {"PNG", "JPEG", "TIFF"}
    loaded = load_scan(path, max_bytes=10**6, max_pixels=53 * 37)
    assert loaded.shape == (37, 53) and loaded.dtype == np.uint8


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    # a valid header announcing 100000 x 100000 pixels, and no image data at all
    path.write_bytes(_png_header(100_000, 100_000))
    with pytest.raises(UnreadableScan, match="100000x100000.*over the limit"):
        load_scan(path, max_bytes=10**6, max_pixels=60_000_000)


def test_a_file_over_the_byte_limit_is_refused(tmp_path):
    path = tmp_path / "big.png"
    assert cv2.imwrite(str(path), np.zeros((200, 200), np.uint8) + 128)
    with pytest.raises(UnreadableScan, match="over the limit"):
        load_scan(path, max_bytes=50, max_pixels=10**6)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"mesa,votos\n1,2\n", "not an image"),
        (b"", "empty"),
        (_png_header(400, 300) + b"\x00\x00\x00\x10IDATgarbage", "corrupt or truncated"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "corrupt JPEG"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, content, problem):
    path = tmp_path / "scan.png"
    path.write_bytes(content)
    with pytest.raises(UnreadableScan, match=problem) as caught:
        load_scan(path, max_bytes=10**6, max_pixels=10**7)
    assert str(path) in str(caught.value)


# --------------------------------------------------------------------------- read_telegrams


class CountingClassifier:
    """The real shipped classifier, counting its predict_proba calls and digits."""

    def __init__(self, inner):
        self.inner = inner
        self.num_classes = inner.num_classes
        self.version = inner.version
        self.calls: list[int] = []

    def predict_proba(self, digits):
        self.calls.append(len(digits))
        return self.inner.predict_proba(digits)


@pytest.fixture(scope="module")
def chunk():
    """Four typical synthetic telegrams, a blank page and an upside-down telegram, read in one
    call; returns (telegrams, readings, classifier)."""
    telegrams = [telegram(21, i, "typical") for i in range(4)]
    images = [t.image for t in telegrams]
    images.append(np.full((2800, 1700), 250, np.uint8))
    images.append(cv2.rotate(telegrams[0].image, cv2.ROTATE_180))
    counting = CountingClassifier(classifier())
    readings = read_telegrams(
        images,
        template(),
        counting,
        scan_names=[f"scan{i}" for i in range(len(images))],
        expected_mesa_codes=[t.identity.mesa_code for t in telegrams] + [None, None],
    )
    return telegrams, readings, counting


def test_batched_inference_for_the_whole_chunk(chunk):
    """Every piece of the chunk, whole, in one call; at most two more, much smaller together,
    for the cuts of the pieces not read surely whole and for those cut again."""
    _, _, counting = chunk
    assert 1 <= len(counting.calls) <= 3
    assert counting.calls[0] > 4 * 40  # every digit of the four readable telegrams
    assert sum(counting.calls[1:]) < counting.calls[0] / 4  # most pieces are read whole


def test_bad_pages_get_their_error_and_the_others_are_read(chunk):
    telegrams, readings, _ = chunk
    assert [r.scan for r in readings] == [f"scan{i}" for i in range(6)]
    assert all(r.error is None for r in readings[:4])
    assert readings[4].error.startswith("UnreadableScan") and "blank" in readings[4].error
    assert readings[5].error.startswith("FormMismatch") and "upside down" in readings[5].error
    assert readings[4].cells == [] and readings[4].header == {}
    assert [r.mesa_id for r in readings[:4]] == [t.identity.mesa_code for t in telegrams]


def test_cells_follow_the_database_conventions(chunk):
    _, readings, _ = chunk
    form = template()
    reading = readings[0]
    assert {(c.row_key, c.cargo_id) for c in reading.cells} == {
        (c.row.key, c.column.cargo_id) for c in form.value_cells()
    }
    for cell in reading.cells:
        row = form.row(cell.row_key)
        if row.votos_tipo == "POSITIVO":
            assert (cell.agrupacion_id, cell.lista_numero) == (row.agrupacion_id, row.lista_numero)
        else:
            assert cell.agrupacion_id is None and cell.lista_numero is None
        assert cell.votos_tipo == row.votos_tipo
        x0, y0, x1, y1 = cell.box
        assert 0 <= x0 < x1 <= reading_width(chunk) and 0 <= y0 < y1
        assert len(cell.digit_confidences) == len(cell.digit_probs)
    assert any(c.votos_tipo == "TOTAL" for c in reading.cells)


def reading_width(chunk) -> int:
    return chunk[0][0].image.shape[1]


def test_json_has_the_keys_of_the_official_csv(chunk):
    _, readings, _ = chunk
    data = json.loads(readings[0].to_json())
    assert {"scan", "mesa_id", "form", "fit_score", "error", "header", "cells"} <= set(data)
    assert set(data["header"]) == {"votantes", "sobres", "diferencia"}
    assert set(data["header"]["sobres"]) == {"value", "confidence", "flags"}
    cell_keys = {"cargo_id", "votos_tipo", "agrupacion_id", "lista_numero", "value"}
    cell_keys |= {"confidence", "flags", "box"}
    assert all(cell_keys <= set(cell) for cell in data["cells"])
    failed = json.loads(readings[4].to_json())
    assert failed["error"] and failed["cells"] == []


def _scores(telegrams, readings):
    """(exact share, accepted share, accepted correct share) over every value cell."""
    exact = accepted = accepted_right = total = 0
    for sample, reading in zip(telegrams, readings, strict=True):
        for cell in reading.cells:
            truth = written_value(sample, cell.row_key, cell.cargo_id)
            right = cell.value == truth or (truth is None and "EMPTY" in cell.flags)
            flagged = cell.value is None or bool(set(cell.flags) & REVIEW)
            total += 1
            exact += right
            accepted += not flagged
            accepted_right += right and not flagged
    return exact / total, accepted / total, accepted_right / max(1, accepted)


def test_accepted_cells_and_header_values_are_right(chunk):
    """What is accepted without a flag must be right (issue 5: >= 0.998 of accepted cells);
    a header value is right or flagged for review."""
    telegrams, readings, _ = chunk
    _, accepted, accepted_right = _scores(telegrams, readings[:4])
    assert accepted > 0.3  # a real share of the cells is accepted, not everything flagged
    assert accepted_right >= 0.998
    for sample, reading in zip(telegrams, readings, strict=False):
        truth = {
            "votantes": sample.counts.votantes,
            "sobres": sample.counts.sobres,
            "diferencia": sample.counts.diferencia,
        }
        for name, value in reading.header.items():
            assert value.value == truth[name] or set(value.flags) & REVIEW, (name, value)


@pytest.mark.xfail(
    strict=True,
    reason="issue 5 targets not reached yet (bench/bench_pipeline.py): on these four telegrams "
    "0.943 of cells exact and 0.61 accepted with the interim default model; see the report",
)
def test_typical_synthetic_telegrams_meet_the_reading_targets(chunk):
    telegrams, readings, _ = chunk
    exact, accepted, accepted_right = _scores(telegrams, readings[:4])
    # issue 5 targets (MNIST digits, typical quality), after the sum rule
    assert exact >= 0.995
    assert accepted >= 0.97
    assert accepted_right >= 0.998


@pytest.mark.skipif(not SAMPLE_TELEGRAM.with_suffix(".jpeg").exists(), reason="../shared absent")
def test_real_sample_every_cell_is_read_exactly_or_flagged():
    form = load_template("arg-2019-paso-caba")
    image = load_scan(SAMPLE_TELEGRAM.with_suffix(".jpeg"), 10**7, 10**7)
    reading = read_telegrams([image], form, classifier())[0]
    assert reading.error is None
    truth = {}
    with SAMPLE_TELEGRAM.with_suffix(".results.csv").open(encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            positive = row["votos_tipo"] == "POSITIVO"
            key = (
                row["votos_tipo"],
                int(row["agrupacion_id"]) if positive else None,
                row["lista_numero"] if positive else None,
                int(row["cargo_id"]),
            )
            truth[key] = int(row["votos_cantidad"])
    for cell in reading.cells:
        if cell.votos_tipo == "TOTAL":
            expected = 257  # every column sums to the 257 envelopes
        else:
            expected = truth.pop(
                (cell.votos_tipo, cell.agrupacion_id, cell.lista_numero, cell.cargo_id)
            )
        flagged = cell.value is None or bool(set(cell.flags) & REVIEW)
        assert cell.value == expected or flagged, (cell.row_key, cell.cargo_id, cell.value)
    assert truth == {}  # the same cells as the transcription (NO USAR left out)
    for name, expected in {"votantes": 257, "sobres": 257, "diferencia": 0}.items():
        header = reading.header[name]
        assert header.value == expected or set(header.flags) & REVIEW or header.value is None


def test_a_header_digit_box_gives_one_digit_its_tallest_piece():
    """The 2023 form asks for one digit per header box: a mark beside the digit (a speck the
    size of a short stroke) is not a second digit."""
    box, _ = compose([digit(2)], gaps=[], height=44)
    box = np.pad(box, ((0, 0), (0, 20)), constant_values=255)
    cv2.line(box, (box.shape[1] - 10, 18), (box.shape[1] - 10, 28), 0, 3)  # the mark
    segmentation = segment_cell(box)
    assert len(segmentation.pieces) == 2
    (kept,) = one_digit_of_box(segmentation)
    assert kept == segmentation.pieces[0]  # the 2, taller than the mark


def _sure(value: int):
    """A NumberReading of ``value`` read with certainty (one-hot digit probabilities)."""
    from pipeline.decode import decode_number

    return decode_number(np.eye(11)[[int(ch) for ch in str(value)]])


def _columns_adding_up_to(form, value: int) -> dict:
    """Readings of every table cell, read surely: each column's first row and its total
    ``value``, the other rows 0."""
    readings = {}
    for spec in form.value_cells():
        first_row = spec.row is form.rows[0]
        total_row = spec.row.votos_tipo == "TOTAL"
        readings[f"{spec.row.key}|{spec.column.cargo_id}"] = _sure(
            value if first_row or total_row else 0
        )
    return readings


@pytest.mark.parametrize("sobres_read, doubted", [(20, True), (208, False)])
def test_a_sobres_no_column_adds_up_to_goes_to_review_with_votantes(sobres_read, doubted):
    """Every column adds up to 208 and its total says 208; a sobres (and votantes) read "20",
    consistent with each other (20 - 20 = 0), is confirmed by no column: both are flagged,
    the value kept. Read 208, the columns confirm it and nothing is flagged."""
    from pipeline.decode import Flag
    from pipeline.read import apply_rules

    form = template()
    readings = _columns_adding_up_to(form, 208)
    readings["header:votantes"] = _sure(sobres_read)
    readings["header:sobres"] = _sure(sobres_read)
    readings["header:diferencia"] = _sure(0)
    out = apply_rules(readings, form)
    for name in ("votantes", "sobres"):
        assert out[f"header:{name}"].value == sobres_read
        assert (Flag.SUM_MISMATCH in out[f"header:{name}"].flags) is doubted
    assert Flag.SUM_MISMATCH not in out["header:diferencia"].flags


def test_no_cell_reads_above_the_forms_bound():
    """The template's max_count reaches decoding: with a bound of 9, no cell or header value
    of a typical telegram reads above it, while read unbounded it has counts above 9."""
    from dataclasses import replace

    page = telegram(21, 0, "typical").image
    form = template()
    (free,) = read_telegrams([page], form, classifier())
    (bounded,) = read_telegrams([page], replace(form, max_count=9), classifier())
    assert any(cell.value is not None and cell.value > 9 for cell in free.cells)
    values = [c.value for c in bounded.cells] + [v.value for v in bounded.header.values()]
    assert all(value is None or value <= 9 for value in values)


def test_an_empty_cell_with_a_faint_mark_is_read_empty_but_not_surely():
    """A "1" too light for a stroke leaves its cell EMPTY with a faint mark: the reading is
    the blank's (value 0, EMPTY) at confidence 0.5, flagged LOW_CONFIDENCE; the blank cells
    beside it stay sure blanks."""
    from pipeline.synth.writer import blank_page

    form = template()
    dpi = 200
    page = cv2.cvtColor(blank_page(form, dpi), cv2.COLOR_BGR2GRAY)
    width, height = form.page_size_px(dpi)
    box = form.cell_box(form.row("133:133"), form.column(1))
    x0, y0, x1, y1 = box.x0 * width, box.y0 * height, box.x1 * width, box.y1 * height
    centre = round((x0 + x1) / 2)
    top, bottom = round(y0 + 0.15 * (y1 - y0)), round(y1 - 0.15 * (y1 - y0))
    cv2.line(page, (centre, top), (centre, bottom), 235, 4)
    (reading,) = read_telegrams([page], form, classifier())
    assert reading.error is None
    cells = {(c.row_key, c.cargo_id): c for c in reading.cells}
    faint = cells[("133:133", 1)]
    assert faint.value == 0 and faint.confidence == 0.5
    assert {"EMPTY", "LOW_CONFIDENCE"} <= set(faint.flags)
    for key in (("134:134", 1), ("133:133", 8)):
        assert cells[key].value == 0 and cells[key].confidence == 1.0
        assert "LOW_CONFIDENCE" not in cells[key].flags


def test_a_sobres_the_columns_add_up_to_otherwise_is_corrected_and_rechecked():
    """Every column adds up to 161 and its total says so. votantes reads 161 and sobres 761,
    each first digit a 1 or a 7 at 0.6 / 0.4 the other way round, so the header rule alone
    cannot tell which is misread. The columns outvote sobres: it becomes 161
    (CORRECTED_BY_SUM), and the header rule, checked again, holds (161 - 161 = 0)."""
    from pipeline.decode import Flag, decode_number
    from pipeline.read import apply_rules

    def first_digit_one_or_seven(one: float) -> NumberReading:
        first = np.zeros(11)
        first[[1, 7]] = one, 1 - one
        return decode_number(np.stack([first, np.eye(11)[6], np.eye(11)[1]]))

    form = template()
    readings = _columns_adding_up_to(form, 161)
    readings["header:votantes"] = first_digit_one_or_seven(0.6)
    readings["header:sobres"] = first_digit_one_or_seven(0.4)
    assert (readings["header:votantes"].value, readings["header:sobres"].value) == (161, 761)
    readings["header:diferencia"] = _sure(0)
    out = apply_rules(readings, form)
    assert out["header:sobres"].value == 161
    assert Flag.CORRECTED_BY_SUM in out["header:sobres"].flags
    for name in ("votantes", "sobres", "diferencia"):
        assert not out[f"header:{name}"].flags & {Flag.HEADER_MISMATCH, Flag.SUM_MISMATCH}
    assert all(Flag.SUM_MISMATCH not in out[name].flags for name in readings if "|" in name)


def test_rows_adding_up_to_sobres_confirm_it_though_every_total_is_misread():
    """Every column adds up to 208 but each total reads "8" surely (the "20" lost): the totals
    alone are flagged, the rows stay accepted, and sobres, which the rows add up to, is
    confirmed (not sent to review with votantes)."""
    from pipeline.decode import Flag
    from pipeline.read import apply_rules

    form = template()
    readings = _columns_adding_up_to(form, 208)
    for name in readings:
        if name.startswith("TOTAL|"):
            readings[name] = _sure(8)
    readings["header:votantes"] = _sure(208)
    readings["header:sobres"] = _sure(208)
    readings["header:diferencia"] = _sure(0)
    out = apply_rules(readings, form)
    for name in readings:
        if "|" in name:
            assert (Flag.SUM_MISMATCH in out[name].flags) is name.startswith("TOTAL|"), name
    for name in ("votantes", "sobres", "diferencia"):
        assert not out[f"header:{name}"].flags, name


def _misread_total_and_row(form, readings: dict, cargo: int) -> tuple[str, str]:
    """In ``readings`` of a column adding up to 239, its first row read "238" (its 9 the
    second choice at 0.3) and its total "29" (its 3 lost, 0.49): two misreadings. Returns
    the two cells' names."""
    from pipeline.decode import decode_number

    first = f"{form.rows[0].key}|{cargo}"
    total = next(f"{row.key}|{cargo}" for row in form.rows if row.votos_tipo == "TOTAL")
    misread_row = np.eye(11)[[2, 3, 8]]
    misread_row[2, [8, 9]] = 0.7, 0.3
    readings[first] = decode_number(misread_row)
    readings[total] = decode_number(np.eye(11)[[2, 9]] * 0.7 + 0.3 / 11)
    assert (readings[first].value, readings[total].value) == (238, 29)
    return first, total


def test_a_column_with_a_misread_total_and_row_is_resolved_by_the_sobres_others_confirm():
    """Every column adds up to 239 and its total says so, but in one column the total reads
    "29" (its 3 lost) and the first row "238", its 9 the second choice at 0.3. Its rule
    alone cannot repair two misreadings; the other columns confirm sobres 239, and against
    it the column is resolved: the total misread, the row 239 (both CORRECTED_BY_SUM, none
    left for review)."""
    from pipeline.decode import Flag
    from pipeline.read import apply_rules

    form = template()
    readings = _columns_adding_up_to(form, 239)
    cargo = form.columns[0].cargo_id
    first, total = _misread_total_and_row(form, readings, cargo)
    for name in ("votantes", "sobres"):
        readings[f"header:{name}"] = _sure(239)
    readings["header:diferencia"] = _sure(0)
    out = apply_rules(readings, form)
    assert (out[first].value, out[total].value) == (239, 239)
    assert Flag.CORRECTED_BY_SUM in out[first].flags and Flag.CORRECTED_BY_SUM in out[total].flags
    column = [name for name in out if name.endswith(f"|{cargo}")]
    assert all(out[name].accepted for name in column)


def test_columns_get_no_second_look_against_a_sobres_no_column_confirms():
    """Every column with the same two misreadings (a row "238", the total "29"): not one
    adds up to sobres 239, so nothing confirms it, and none is resolved against it; each
    stays for review with sobres."""
    from pipeline.decode import Flag
    from pipeline.read import apply_rules

    form = template()
    readings = _columns_adding_up_to(form, 239)
    misread = [_misread_total_and_row(form, readings, column.cargo_id) for column in form.columns]
    for name in ("votantes", "sobres"):
        readings[f"header:{name}"] = _sure(239)
    readings["header:diferencia"] = _sure(0)
    out = apply_rules(readings, form)
    for first, total in misread:
        assert (out[first].value, out[total].value) == (238, 29)
        assert Flag.SUM_MISMATCH in out[total].flags
    assert Flag.SUM_MISMATCH in out["header:sobres"].flags


def _read_cell(cell: np.ndarray, max_value: int):
    """A cell image (dark ink on white) segmented, classified and decoded as ``decode_fields``
    does: (the reading of all its pieces, the reading ``one_of_two_numbers`` makes of it,
    the readings of its two groups apart, or () when there are none)."""
    from pipeline.decode import decode_cell
    from pipeline.read import _groups_apart, classify_segmentations, one_of_two_numbers

    (segmentation,), batch = classify_segmentations([segment_cell(cell)], classifier())

    def decode(cells):
        return decode_cell(cells, batch.probs_of, max_value=max_value)

    whole = decode(segmentation)
    groups = tuple(decode(group) for group in _groups_apart(segmentation))
    return whole, one_of_two_numbers(whole, segmentation, decode), groups


def _two_numbers(gap: int) -> np.ndarray:
    """A cell with "64" and "51" written ``gap`` px apart (the digits 2 px apart)."""
    digits = [digit(6), digit(4), digit(5), digit(1)]
    cell, _ = compose(digits, gaps=[2, gap, 2])
    return cell


def test_two_numbers_far_apart_read_as_one_of_them_for_the_sum_rule_to_choose():
    """A number crossed out with its correction beside it, the strike missed: "6451" is
    above the form's bound (350). Its two groups are a digit's height apart or more, so the
    cell reads as one of them, both kept as alternatives at half their probability, flagged
    LOW_CONFIDENCE (never accepted as read), no longer ILLEGIBLE."""
    from pipeline.decode import Flag

    whole, reading, groups = _read_cell(_two_numbers(gap=60), max_value=350)
    assert whole.value is None and Flag.ILLEGIBLE in whole.flags
    assert len(groups) == 2
    best = {group.text for group in groups}
    assert reading.text in best and reading.value == int(reading.text)
    assert {text for text, _ in reading.alternatives[:2]} == best
    assert reading.confidence <= 0.5
    assert Flag.LOW_CONFIDENCE in reading.flags and Flag.ILLEGIBLE not in reading.flags
    assert reading.either_or and not whole.either_or


def test_digits_written_close_stay_one_illegible_number():
    """The same four digits 2-6 px apart are one number, and "6451" stays ILLEGIBLE."""
    from pipeline.decode import Flag

    whole, reading, groups = _read_cell(_two_numbers(gap=6), max_value=350)
    assert groups == ()
    assert reading is whole and reading.value is None and Flag.ILLEGIBLE in reading.flags


def test_a_possible_number_with_a_wide_gap_is_read_as_it_is():
    """Only an ILLEGIBLE reading is split: "64" and "5" far apart read "645" under a bound of
    999 as before."""
    cell, _ = compose([digit(6), digit(4), digit(5)], gaps=[2, 60])
    whole, reading, groups = _read_cell(cell, max_value=999)
    assert len(groups) == 2 and whole.value is not None
    assert reading is whole


def test_a_gap_is_measured_from_the_farthest_ink_left_of_it():
    """A wide piece (a long flag, a struck number) reaching past a narrow piece inside its
    span leaves no gap after the narrow one: "groups apart" are apart from all the ink."""
    from pipeline.read import _groups_apart
    from pipeline.segment import CellSegmentation, Piece

    def piece(x0: int, x1: int) -> Piece:
        return Piece(options=(), log_priors=(), box=(x0, 10, x1, 50))

    wide_over_narrow = CellSegmentation(
        pieces=(piece(0, 100), piece(10, 20), piece(120, 150)),
        struck_through=False,
        ink_fraction=0.1,
    )
    assert _groups_apart(wide_over_narrow) == ()  # 20 px from the wide piece: one number
    apart = CellSegmentation(
        pieces=(piece(0, 30), piece(10, 20), piece(90, 120)),
        struck_through=False,
        ink_fraction=0.1,
    )
    left, right = _groups_apart(apart)
    assert [p.box[0] for p in left.pieces] == [0, 10] and [p.box[0] for p in right.pieces] == [90]
