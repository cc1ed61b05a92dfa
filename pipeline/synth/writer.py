"""Synthetic telegrams: one filled-in, scanned telegram, and datasets of them on disk.

- :func:`generate_telegram` makes ONE telegram from an explicit ``np.random.Generator``: the
  scan image, what is really written on it, the header, and the exact page transform.
- :func:`write_dataset` writes ``count`` telegrams with a process pool (the files of
  ``escrutinio synth``), deterministically: telegram ``i`` uses the generators
  :func:`telegram_rng` ``(seed, i)``, so the output is byte-identical for a seed whatever the
  number of workers.

Files written into ``OUTDIR`` (CSV in the official column order of FORMS.md, UTF-8):

- ``scans/<mesa_code>.<png|jpeg|tiff>``;
- ``results.csv``: the manual entries (official vote types only; blank cells typed as 0;
  some counts mistyped when ``manual_error_rate > 0``);
- ``truth.csv``: what is really written on every value cell, same columns, plus the column
  totals with ``votos_tipo`` ``TOTAL``; ``votos_cantidad`` is empty for a cell left blank;
- ``truth_header.csv``: ``mesa_id, votantes, sobres, diferencia``;
- ``manual_errors.csv``: ``mesa_id, cargo_id, votos_tipo, agrupacion_id, lista_numero,
  votos_telegrama, votos_cargados, error`` (the kind of mistake);
- ``truth_transforms.json``: per mesa code, the scan file, its size, dpi, scan parameters and
  ``homography``: the ``3x3`` map from page-relative coordinates ``(u, v, 1)`` (those of the
  template) to scan pixel coordinates, i.e. ``p ~ H @ [u, v, 1]``.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import BadInput
from pipeline.forms import FormTemplate, load_template
from pipeline.render import draw_identity, render_form
from pipeline.synth.counts import MesaCounts, generate_counts
from pipeline.synth.degrade import QUALITIES, ScanParams, degrade, sample_scan_params
from pipeline.synth.handwriting import (
    DigitBank,
    WriterStyle,
    draw_squiggle,
    draw_stray_mark,
    load_digit_bank,
    sample_writer,
    write_correction,
    write_number,
)
from pipeline.synth.manual import ManualError, inject_manual_errors

OFFICIAL_COLUMNS = (
    "año",
    "eleccion_tipo",
    "recuento_tipo",
    "padron_tipo",
    "distrito_id",
    "distrito_nombre",
    "seccionprovincial_id",
    "seccionprovincial_nombre",
    "seccion_id",
    "seccion_nombre",
    "circuito_id",
    "circuito_nombre",
    "mesa_id",
    "mesa_tipo",
    "mesa_electores",
    "cargo_id",
    "cargo_nombre",
    "agrupacion_id",
    "agrupacion_nombre",
    "lista_numero",
    "lista_nombre",
    "votos_tipo",
    "votos_cantidad",
)
HEADER_COLUMNS = ("mesa_id", "votantes", "sobres", "diferencia")
ERROR_COLUMNS = (
    "mesa_id",
    "cargo_id",
    "votos_tipo",
    "agrupacion_id",
    "lista_numero",
    "votos_telegrama",
    "votos_cargados",
    "error",
)
FORMATS = {"png": "png", "jpeg": "jpeg", "tiff": "tiff"}
MAX_MESA_NUMBER = 99_999
CORRECTION_PROBABILITY = 0.012
TOTAL_LEFT_BLANK_PROBABILITY = 0.1


@dataclass(frozen=True)
class MesaIdentity:
    """Where a mesa is: its code (district 2 + section 3 + number 5 digits + "X") and ids."""

    mesa_code: str
    distrito_id: int
    seccion_id: int
    seccion_nombre: str
    circuito_id: str  # text with leading zeros, e.g. "00153"
    mesa_number: int


def mesa_identity(template: FormTemplate, mesa_number: int) -> MesaIdentity:
    """The identity of mesa number ``mesa_number`` (1..99999) of the template's district.

    Mesas are numbered consecutively through the sections and circuits (about 44 mesas per
    circuit, as in Buenos Aires city, whose sections are its 15 comunas).
    """
    if not 1 <= mesa_number <= MAX_MESA_NUMBER:
        raise ValueError(f"mesa number must be 1..{MAX_MESA_NUMBER}, got {mesa_number}")
    distrito = template.election.distrito_id
    if distrito == 1:
        seccion = 1 + ((mesa_number - 1) // 700) % 15
        seccion_nombre = f"Comuna {seccion}"
    else:
        seccion = 1 + ((mesa_number - 1) // 500) % 135
        seccion_nombre = f"Seccion {seccion}"
    return MesaIdentity(
        mesa_code=f"{distrito:02d}{seccion:03d}{mesa_number:05d}X",
        distrito_id=distrito,
        seccion_id=seccion,
        seccion_nombre=seccion_nombre,
        circuito_id=f"{1 + (mesa_number - 1) // 44:05d}",
        mesa_number=mesa_number,
    )


def telegram_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    """The generator of telegram ``index`` of a dataset (stream 0: image, 1: manual errors)."""
    return np.random.default_rng([seed, index, stream])


def first_mesa_number(seed: int, count: int) -> int:
    """The first mesa number of a dataset: the dataset's mesas are consecutive from it."""
    if count > MAX_MESA_NUMBER:
        raise BadInput(f"--count must be at most {MAX_MESA_NUMBER} (mesa numbers have 5 digits)")
    rng = np.random.default_rng([seed, 2**31])
    # Districts have thousands of mesas, not 99,999: start low unless the dataset is large.
    highest_start = max(20_000 - count, 1) if count <= 20_000 else MAX_MESA_NUMBER - count + 1
    return 1 + int(rng.integers(0, highest_start))


@dataclass(frozen=True)
class SyntheticTelegram:
    """One generated telegram.

    - ``image``: the scan, ``(H, W, 3)`` BGR or ``(H, W)`` grey/1-bit uint8 (``scan.mode``);
    - ``written``: ``(row key, cargo_id) -> int`` as written on the form, ``None`` where the
      cell was left blank (meaning 0; the TOTAL row may be blank);
    - ``counts``: the true counts and header (``counts.counts`` has no blanks);
    - ``homography``: ``(3, 3)`` float64 from page-relative ``(u, v, 1)`` to scan pixels;
    - ``corrected``: cells written as a struck-through number with the right one beside it.
    """

    identity: MesaIdentity
    counts: MesaCounts
    written: dict[tuple[str, int], int | None]
    corrected: tuple[tuple[str, int], ...]
    image: np.ndarray
    homography: np.ndarray
    scan: ScanParams
    writer: WriterStyle


_BLANK_CACHE: dict[tuple[int, int], tuple[FormTemplate, np.ndarray]] = {}


def blank_page(template: FormTemplate, dpi: int) -> np.ndarray:
    """The printed form at ``dpi`` as BGR ``(H, W, 3)`` uint8, cached per process (a copy)."""
    key = (id(template), dpi)
    cached = _BLANK_CACHE.get(key)
    if cached is None or cached[0] is not template:
        grey = render_form(template, dpi)
        cached = (template, cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
        if len(_BLANK_CACHE) > 16:
            _BLANK_CACHE.clear()
        _BLANK_CACHE[key] = cached
    return cached[1].copy()


def _wrong_value(value: int, rng: np.random.Generator) -> int:
    wrong = value + int(rng.choice([-10, -2, -1, 1, 2, 10]))
    return wrong if wrong >= 0 and wrong != value else value + 1


def generate_telegram(
    template: FormTemplate,
    bank: DigitBank,
    rng: np.random.Generator,
    mesa_number: int,
    quality: str = "typical",
    scan_params: ScanParams | None = None,
) -> SyntheticTelegram:
    """Fill in and scan one telegram of ``template`` for mesa ``mesa_number``.

    Everything random is drawn from ``rng`` (counts, writer, scan), so the same generator
    state gives the same telegram. ``scan_params`` replaces the ``quality`` preset's random
    scan (e.g. a known rotation to test registration; see
    :class:`~pipeline.synth.degrade.ScanParams`, built with ``dataclasses.replace`` on a
    preset draw).
    """
    identity = mesa_identity(template, mesa_number)
    counts = generate_counts(template, rng)
    scan = sample_scan_params(quality, rng) if scan_params is None else scan_params
    page = blank_page(template, scan.dpi)
    height, width = page.shape[:2]
    draw_identity(
        page,
        template,
        scan.dpi,
        identity.mesa_code,
        {
            "seccion": str(identity.seccion_id),
            "circuito": str(int(identity.circuito_id)),
            "mesa": str(identity.mesa_number),
        },
    )
    style = sample_writer(rng)

    header_values = {
        "votantes": counts.votantes,
        "sobres": counts.sobres,
        "diferencia": counts.diferencia,
    }
    for name, value in header_values.items():
        if template.header_digit_boxes == 1:
            box = template.header[name].to_pixels(width, height)
            write_number(page, box, str(value), style, scan.dpi, bank, rng, 0.03)
            continue
        boxes = template.header_digit_cells(name)
        text = str(value)
        if rng.random() < 0.5:
            text = text.zfill(len(boxes))
        for box, digit in zip(boxes[len(boxes) - len(text) :], text, strict=True):
            write_number(page, box.to_pixels(width, height), digit, style, scan.dpi, bank, rng, 0)

    total_blank = rng.random() < TOTAL_LEFT_BLANK_PROBABILITY
    written: dict[tuple[str, int], int | None] = {}
    corrected: list[tuple[str, int]] = []
    for cell in template.value_cells():
        key = (cell.row.key, cell.column.cargo_id)
        value = counts.counts[key]
        is_total = cell.row.votos_tipo == "TOTAL"
        blank = total_blank if is_total else (value == 0 and rng.random() < style.empty_zero)
        if blank:
            written[key] = None
            continue
        written[key] = value
        box = cell.box.to_pixels(width, height)
        if not is_total and rng.random() < CORRECTION_PROBABILITY:
            wrong = _wrong_value(value, rng)
            write_correction(page, box, str(wrong), str(value), style, scan.dpi, bank, rng)
            corrected.append(key)
        else:
            write_number(page, box, str(value), style, scan.dpi, bank, rng)

    for _ in range(int(rng.poisson(0.8))):
        centre = (int(rng.uniform(0.03, 0.97) * width), int(rng.uniform(0.03, 0.97) * height))
        draw_stray_mark(page, centre, style, scan.dpi, rng)
    below = template.table.y1 + 0.03
    for _ in range(int(rng.integers(2, 6))):
        if below >= 0.9:
            break
        y = rng.uniform(below, 0.93)
        x = rng.uniform(0.06, 0.7)
        box = (
            int(x * width),
            int(y * height),
            int((x + rng.uniform(0.1, 0.22)) * width),
            int((y + rng.uniform(0.015, 0.03)) * height),
        )
        ink = sample_writer(rng)
        draw_squiggle(page, box, ink, scan.dpi, rng)

    image, matrix = degrade(page, scan, rng)
    homography = matrix @ np.diag([float(width), float(height), 1.0])
    return SyntheticTelegram(
        identity=identity,
        counts=counts,
        written=written,
        corrected=tuple(corrected),
        image=image,
        homography=homography,
        scan=scan,
        writer=style,
    )


# ---- CSV rows ------------------------------------------------------------------------------


def official_rows(
    template: FormTemplate,
    identity: MesaIdentity,
    electores: int,
    values: dict[tuple[str, int], int | None],
    include_total: bool,
) -> list[list[str]]:
    """Rows of the official results CSV for one mesa: per office (column order), the rows of
    the form top to bottom, NO USAR cells left out. ``None`` values are written empty."""
    e = template.election
    out = []
    for column in template.columns:
        for row in template.rows:
            if row.votos_tipo == "TOTAL" and not include_total:
                continue
            key = (row.key, column.cargo_id)
            if key not in values:
                continue
            value = values[key]
            out.append(
                [
                    str(e.year),
                    e.eleccion_tipo,
                    e.recuento_tipo,
                    e.padron_tipo,
                    str(e.distrito_id),
                    e.distrito_nombre,
                    e.seccionprovincial_id,
                    e.seccionprovincial_nombre,
                    str(identity.seccion_id),
                    identity.seccion_nombre,
                    identity.circuito_id,
                    "",
                    identity.mesa_code,
                    "NATIVOS",
                    str(electores),
                    str(column.cargo_id),
                    column.cargo_nombre,
                    "" if row.agrupacion_id is None else str(row.agrupacion_id),
                    row.agrupacion_nombre,
                    row.lista_numero,
                    row.lista_nombre,
                    row.votos_tipo,
                    "" if value is None else str(value),
                ]
            )
    return out


# ---- datasets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthConfig:
    """What ``escrutinio synth`` makes (see the module docstring for the files)."""

    outdir: Path
    count: int
    form: str = "arg-2019-paso-caba"
    seed: int = 0
    digits: str | None = None
    quality: str = "typical"
    manual_error_rate: float = 0.0
    fmt: str = "png"
    workers: int = 2

    def validate(self) -> None:
        """Raise :class:`BadInput` naming the first bad argument."""
        if self.count < 1:
            raise BadInput(f"--count must be at least 1, got {self.count}")
        if self.seed < 0:
            raise BadInput(f"--seed must be a non-negative integer, got {self.seed}")
        if self.quality not in QUALITIES:
            raise BadInput(f"--quality must be one of {', '.join(QUALITIES)}, got {self.quality!r}")
        if not 0.0 <= self.manual_error_rate <= 1.0:
            raise BadInput(f"--manual-error-rate must be 0..1, got {self.manual_error_rate}")
        if self.fmt not in FORMATS:
            raise BadInput(f"--format must be one of {', '.join(FORMATS)}, got {self.fmt!r}")
        if self.workers < 1:
            raise BadInput(f"--workers must be at least 1, got {self.workers}")


@dataclass(frozen=True)
class SynthSummary:
    count: int
    seconds: float
    manual_errors: int
    outdir: Path

    @property
    def rate(self) -> float:
        """Telegrams per second."""
        return self.count / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class _TelegramRecord:
    index: int
    mesa_code: str
    truth: list[list[str]]
    results: list[list[str]]
    header: list[str]
    errors: list[list[str]]
    transform: dict


_STATE: dict = {}


def _init_worker(config: SynthConfig) -> None:
    cv2.setNumThreads(1)
    _STATE["config"] = config
    _STATE["template"] = load_template(config.form)
    _STATE["bank"] = load_digit_bank(config.digits)
    _STATE["first"] = first_mesa_number(config.seed, config.count)


def _encode(image: np.ndarray, fmt: str, bilevel: bool = False) -> bytes:
    """The scan as file bytes; a 1-bit scan (0/255) is stored as a 1-bit PNG."""
    if fmt == "png" and bilevel:
        ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_BILEVEL, 1])
    elif fmt == "png":
        ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    elif fmt == "jpeg":
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    else:
        ok, data = cv2.imencode(".tiff", image)
    if not ok:
        raise RuntimeError(f"could not encode a {fmt} image")
    return data.tobytes()


def _make_one(index: int) -> _TelegramRecord:
    config: SynthConfig = _STATE["config"]
    template: FormTemplate = _STATE["template"]
    telegram = generate_telegram(
        template,
        _STATE["bank"],
        telegram_rng(config.seed, index),
        _STATE["first"] + index,
        config.quality,
    )
    identity = telegram.identity
    filename = f"{identity.mesa_code}.{FORMATS[config.fmt]}"
    scan_bytes = _encode(telegram.image, config.fmt, bilevel=telegram.scan.mode == "bw")
    (config.outdir / "scans" / filename).write_bytes(scan_bytes)

    official = {
        key: value
        for key, value in telegram.counts.counts.items()
        if template.row(key[0]).votos_tipo != "TOTAL"
    }
    columns = {
        column.cargo_id: [
            row.key for row in template.rows if (row.key, column.cargo_id) in official
        ]
        for column in template.columns
    }
    typed, errors = inject_manual_errors(
        official, columns, config.manual_error_rate, telegram_rng(config.seed, index, 1)
    )
    electores = telegram.counts.electores
    truth = official_rows(template, identity, electores, telegram.written, include_total=True)
    results = official_rows(template, identity, electores, dict(typed), include_total=False)
    error_rows = [_error_row(template, identity.mesa_code, e) for e in errors]
    height, width = telegram.image.shape[:2]
    transform = {
        "file": f"scans/{filename}",
        "width": width,
        "height": height,
        "dpi": telegram.scan.dpi,
        "quality": config.quality,
        "homography": [[float(v) for v in row] for row in telegram.homography],
        "scan": telegram.scan.to_dict(),
        "corrected_cells": [[k, c] for k, c in telegram.corrected],
    }
    c = telegram.counts
    header = [identity.mesa_code, str(c.votantes), str(c.sobres), str(c.diferencia)]
    return _TelegramRecord(index, identity.mesa_code, truth, results, header, error_rows, transform)


def _error_row(template: FormTemplate, mesa_code: str, error: ManualError) -> list[str]:
    row = template.row(error.row_key)
    return [
        mesa_code,
        str(error.cargo_id),
        row.votos_tipo,
        "" if row.agrupacion_id is None else str(row.agrupacion_id),
        row.lista_numero,
        str(error.on_telegram),
        str(error.typed),
        error.kind,
    ]


def _records(config: SynthConfig) -> Iterator[_TelegramRecord]:
    if config.workers == 1 or config.count < 4:
        _init_worker(config)
        for index in range(config.count):
            yield _make_one(index)
        return
    context = multiprocessing.get_context("spawn")
    chunksize = max(1, min(16, config.count // (config.workers * 8)))
    with context.Pool(config.workers, initializer=_init_worker, initargs=(config,)) as pool:
        yield from pool.imap(_make_one, range(config.count), chunksize=chunksize)


def _csv_text(header: tuple[str, ...], rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_dataset(config: SynthConfig, progress: bool = True) -> SynthSummary:
    """Generate ``config.count`` telegrams into ``config.outdir`` (see the module docstring).

    Raises :class:`BadInput` for bad arguments, an unknown form, an unreadable digit bank or
    an output directory that already holds a dataset.
    """
    from tqdm import tqdm

    config.validate()
    load_template(config.form)  # fail early, in this process, on an unknown form
    load_digit_bank(config.digits)
    first_mesa_number(config.seed, config.count)
    outdir = config.outdir
    if outdir.exists() and not outdir.is_dir():
        raise BadInput(f"{outdir}: exists and is not a directory")
    if (outdir / "scans").exists() and any((outdir / "scans").iterdir()):
        raise BadInput(f"{outdir}: already holds scans; choose an empty output directory")
    (outdir / "scans").mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    truth, results, headers, errors = [], [], [], []
    transforms: dict[str, dict] = {}
    bar = tqdm(total=config.count, unit="telegram", disable=not progress, desc="synth")
    for record in _records(config):
        truth.extend(record.truth)
        results.extend(record.results)
        headers.append(record.header)
        errors.extend(record.errors)
        transforms[record.mesa_code] = record.transform
        bar.update(1)
    bar.close()
    files = {
        "results.csv": _csv_text(OFFICIAL_COLUMNS, results),
        "truth.csv": _csv_text(OFFICIAL_COLUMNS, truth),
        "truth_header.csv": _csv_text(HEADER_COLUMNS, headers),
        "manual_errors.csv": _csv_text(ERROR_COLUMNS, errors),
        "truth_transforms.json": json.dumps(
            {"form": config.form, "seed": config.seed, "telegrams": transforms}, indent=1
        )
        + "\n",
    }
    for name, text in files.items():
        (outdir / name).write_text(text, encoding="utf-8")
    return SynthSummary(config.count, time.perf_counter() - started, len(errors), outdir)


def read_truth(directory: Path) -> tuple[dict[tuple, int | None], dict[str, dict[str, int]]]:
    """What is really written on the telegrams of a ``write_dataset`` directory.

    Returns (cells, header): cells keyed by the official natural key (mesa_id, cargo_id,
    votos_tipo, agrupacion_id, lista_numero) -> the written count, or None for a cell left
    blank (which the typed results record as 0); header by mesa_id -> votantes, sobres,
    diferencia.
    """
    cells: dict[tuple, int | None] = {}
    with (directory / "truth.csv").open(newline="", encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            positive = row["votos_tipo"] == "POSITIVO"
            key = (
                row["mesa_id"],
                int(row["cargo_id"]),
                row["votos_tipo"],
                int(row["agrupacion_id"]) if positive else None,
                row["lista_numero"] if positive else None,
            )
            count = row["votos_cantidad"].strip()
            cells[key] = int(count) if count else None
    header: dict[str, dict[str, int]] = {}
    with (directory / "truth_header.csv").open(newline="", encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            header[row["mesa_id"]] = {k: int(row[k]) for k in ("votantes", "sobres", "diferencia")}
    return cells, header
