"""Detect a form's table grid on a reference scan and build a template from it.

``escrutinio forms detect REFERENCE_SCAN --rows ROWS.csv --columns COLUMNS.csv --out NAME.json``
lets election staff onboard a new form without writing code: the scan gives the geometry
(ruled lines, grey NO USAR cells), the two small CSV files give the meaning.

Detection (:func:`detect_grid`), on a scan of the whole sheet:

1. the page is deskewed (the dominant slope of its long lines, ``pipeline.register``);
2. horizontal and vertical line masks (``pipeline.register.line_masks``) at full resolution;
3. the table's outer box: the two longest vertical lines that start and end together;
4. the table's horizontal lines: rows where the horizontal mask covers at least half of the
   table's right third (row lines of merged label cells still cross the office columns);
   its vertical lines: columns where the vertical mask covers at least 40% of the table's
   height (label column edges stop after the party rows);
5. NO USAR cells: cells whose inside is evenly grey (halftone) rather than paper.

:func:`build_template` pairs the detected lines with the CSV rows and columns: the last
``len(rows) + 1`` horizontal lines bound the rows, the last ``len(columns) + 1`` vertical lines
the office columns; the lines above the first row are the heading (and its split), those left
of the first office column the label columns. The header boxes (counts, barcode, mesa code)
are taken from a base template (``header_from``), as they are not part of the grid.

CSV formats (UTF-8, header row required):

- rows: ``votos_tipo,agrupacion_id,agrupacion_nombre,lista_numero,lista_nombre,label,no_usar``
  (``label``: printed texts separated by ``|``; ``no_usar``: cargo ids separated by ``;``;
  both optional columns; without a ``no_usar`` column the NO USAR cells are detected);
- columns: ``cargo_id,cargo_nombre,title`` (``title`` optional).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.errors import BadInput, FormMismatch
from pipeline.forms import VOTE_TYPES, FormTemplate, parse_template
from pipeline.register import WORK_WIDTH, as_grey, estimate_slope, line_masks

MIN_ROW_COVERAGE = 0.5
MIN_COLUMN_COVERAGE = 0.4
NO_USAR_DARKNESS = 25  # mean grey levels below the paper of a halftone NO USAR cell


@dataclass(frozen=True)
class DetectedGrid:
    """Ruled lines of a table on a reference scan, page-relative (0..1), sorted.

    horizontal: y of the table's horizontal lines (top edge first, bottom edge last);
    vertical: x of its vertical lines (left edge first); page: the deskewed grey page (H, W).
    """

    horizontal: tuple[float, ...]
    vertical: tuple[float, ...]
    page: np.ndarray

    def cell_darkness(self, x0: float, y0: float, x1: float, y1: float) -> float:
        """Mean darkness below the page's paper level inside a cell (inset by 20%)."""
        height, width = self.page.shape
        dx, dy = 0.2 * (x1 - x0), 0.2 * (y1 - y0)
        a, b = int((y0 + dy) * height), int((y1 - dy) * height)
        c, d = int((x0 + dx) * width), int((x1 - dx) * width)
        inside = self.page[a:b, c:d].astype(np.float32)
        paper = float(np.percentile(self.page, 90))
        return float(paper - np.median(inside)) if inside.size else 0.0


def _deskew(grey: np.ndarray) -> np.ndarray:
    """The page rotated so that its long horizontal lines are level."""
    scale = WORK_WIDTH / grey.shape[1]
    work = cv2.resize(
        grey, (WORK_WIDTH, max(1, round(grey.shape[0] * scale))), interpolation=cv2.INTER_AREA
    )
    _, horizontal, _ = line_masks(work)
    slope = estimate_slope(horizontal, True)
    angle = float(np.degrees(np.arctan(slope)))
    height, width = grey.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    return cv2.warpAffine(grey, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=255)


def _peaks(coverage: np.ndarray, threshold: float) -> list[float]:
    """Centres (weighted) of the runs of ``coverage >= threshold``."""
    above = coverage >= threshold
    peaks = []
    index = 0
    size = len(coverage)
    while index < size:
        if not above[index]:
            index += 1
            continue
        end = index
        while end < size and above[end]:
            end += 1
        weights = coverage[index:end]
        peaks.append(float((np.arange(index, end) * weights).sum() / weights.sum()))
        index = end
    return peaks


def detect_grid(image: np.ndarray) -> DetectedGrid:
    """The table grid of a reference scan (any grey / colour / 1-bit image of the whole sheet).

    Raises FormMismatch when no table (two long vertical edges with rows between) is found.
    """
    page = _deskew(as_grey(image))
    height, width = page.shape
    _, horizontal, vertical = line_masks(page)
    count, _, stats, _ = cv2.connectedComponentsWithStats(vertical, connectivity=8)
    tall = [stats[i] for i in range(1, count) if stats[i][cv2.CC_STAT_HEIGHT] >= 0.15 * height]
    if len(tall) < 2:
        raise FormMismatch("no table found: fewer than two long vertical lines on the scan")
    tallest = max(s[cv2.CC_STAT_HEIGHT] for s in tall)
    edges = [s for s in tall if s[cv2.CC_STAT_HEIGHT] >= 0.9 * tallest]
    left = min(edges, key=lambda s: s[cv2.CC_STAT_LEFT])
    right = max(edges, key=lambda s: s[cv2.CC_STAT_LEFT])
    if right[cv2.CC_STAT_LEFT] - left[cv2.CC_STAT_LEFT] < 0.3 * width:
        raise FormMismatch("no table found: the long vertical lines are too close together")
    x0 = left[cv2.CC_STAT_LEFT]
    x1 = right[cv2.CC_STAT_LEFT] + right[cv2.CC_STAT_WIDTH]
    y0 = min(left[cv2.CC_STAT_TOP], right[cv2.CC_STAT_TOP])
    y1 = max(
        left[cv2.CC_STAT_TOP] + left[cv2.CC_STAT_HEIGHT],
        right[cv2.CC_STAT_TOP] + right[cv2.CC_STAT_HEIGHT],
    )
    pad = max(3, int(0.004 * height))
    right_third = slice(int(x1 - (x1 - x0) / 3), int(x1))
    rows = horizontal[max(0, y0 - pad) : y1 + pad, right_third].mean(axis=1)
    ys = [max(0, y0 - pad) + y for y in _peaks(rows, MIN_ROW_COVERAGE)]
    cols = vertical[y0:y1, max(0, x0 - pad) : x1 + pad].mean(axis=0)
    xs = [max(0, x0 - pad) + x for x in _peaks(cols, MIN_COLUMN_COVERAGE)]
    if len(ys) < 3 or len(xs) < 3:
        raise FormMismatch(f"no table grid found ({len(ys)} horizontal, {len(xs)} vertical lines)")
    # line centres: pixel i is centred on coordinate i; page-relative = px / size
    return DetectedGrid(tuple(y / height for y in ys), tuple(x / width for x in xs), page)


# --------------------------------------------------------------------------- CSV input


def _read_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            reader = csv.DictReader(stream)
            fields = reader.fieldnames or []
            missing = [name for name in required if name not in fields]
            if missing:
                raise BadInput(f"{path}: missing column(s) {', '.join(missing)} in the header row")
            rows = [dict(row) for row in reader]
    except OSError as exc:
        raise BadInput(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"{path}: not a readable UTF-8 CSV ({exc})") from exc
    if not rows:
        raise BadInput(f"{path}: no rows")
    return rows


def read_rows_csv(path: Path) -> list[dict[str, Any]]:
    """The table rows a user names, top to bottom (see the module docstring)."""
    rows = []
    for line, raw in enumerate(_read_csv(path, ("votos_tipo",)), start=2):
        votos_tipo = (raw.get("votos_tipo") or "").strip().upper()
        if votos_tipo not in VOTE_TYPES:
            raise BadInput(
                f"{path}, line {line}: votos_tipo must be one of {VOTE_TYPES}, got {votos_tipo!r}"
            )
        row: dict[str, Any] = {"votos_tipo": votos_tipo}
        if votos_tipo == "POSITIVO":
            try:
                row["agrupacion_id"] = int((raw.get("agrupacion_id") or "").strip())
            except ValueError as exc:
                raise BadInput(f"{path}, line {line}: agrupacion_id must be an integer") from exc
            row["agrupacion_nombre"] = (raw.get("agrupacion_nombre") or "").strip()
            row["lista_numero"] = (raw.get("lista_numero") or "").strip()
            row["lista_nombre"] = (raw.get("lista_nombre") or "").strip()
        label = (raw.get("label") or "").strip()
        row["label"] = [part.strip() for part in label.split("|")] if label else []
        no_usar = (raw.get("no_usar") or "").strip()
        if "no_usar" in raw:
            try:
                row["no_usar"] = [int(v) for v in no_usar.split(";") if v.strip()]
            except ValueError as exc:
                raise BadInput(
                    f"{path}, line {line}: no_usar must be cargo ids separated by ;"
                ) from exc
        rows.append(row)
    return rows


def read_columns_csv(path: Path) -> list[dict[str, Any]]:
    """The office columns a user names, left to right (see the module docstring)."""
    columns = []
    for line, raw in enumerate(_read_csv(path, ("cargo_id", "cargo_nombre")), start=2):
        try:
            cargo_id = int((raw.get("cargo_id") or "").strip())
        except ValueError as exc:
            raise BadInput(f"{path}, line {line}: cargo_id must be an integer") from exc
        name = (raw.get("cargo_nombre") or "").strip()
        columns.append(
            {
                "cargo_id": cargo_id,
                "cargo_nombre": name,
                "title": (raw.get("title") or name).strip(),
            }
        )
    return columns


# --------------------------------------------------------------------------- template


def build_template(
    grid: DetectedGrid,
    rows: list[dict[str, Any]],
    columns: list[dict[str, Any]],
    name: str,
    header_from: FormTemplate,
) -> tuple[dict[str, Any], FormTemplate]:
    """The template JSON (dict) for the detected grid and the named rows and columns, and the
    parsed template (validated by ``pipeline.forms.parse_template``)."""
    ys, xs = list(grid.horizontal), list(grid.vertical)
    if len(ys) < len(rows) + 2:
        raise BadInput(
            f"the scan's table has {len(ys)} horizontal lines: too few for {len(rows)} rows "
            "and a heading"
        )
    if len(xs) < len(columns) + 2:
        raise BadInput(
            f"the scan's table has {len(xs)} vertical lines: too few for {len(columns)} office "
            "columns and a label column"
        )
    row_lines = ys[-(len(rows) + 1) :]
    heading = ys[: -(len(rows) + 1)]
    table_y0, heading_y1 = ys[0], row_lines[0]
    heading_split = heading[-1] if len(heading) >= 2 else None
    column_lines = xs[-(len(columns) + 1) :]
    label_lines = xs[: -(len(columns) + 1)] + [column_lines[0]]
    r = lambda v: round(float(v), 5)  # noqa: E731
    out_columns = []
    for column, (a, b) in zip(
        columns, zip(column_lines[:-1], column_lines[1:], strict=True), strict=True
    ):
        out_columns.append({**column, "x0": r(a), "x1": r(b)})
    detect_no_usar = any("no_usar" not in row for row in rows)
    out_rows = []
    for row, (a, b) in zip(rows, zip(row_lines[:-1], row_lines[1:], strict=True), strict=True):
        entry = {**row, "y0": r(a), "y1": r(b)}
        if detect_no_usar and row["votos_tipo"] != "TOTAL":
            entry["no_usar"] = [
                c["cargo_id"]
                for c in out_columns
                if grid.cell_darkness(c["x0"], a, c["x1"], b) >= NO_USAR_DARKNESS
            ]
        entry.setdefault("no_usar", [])
        out_rows.append(entry)
    base = header_from
    header: dict[str, Any] = {"digit_boxes": base.header_digit_boxes}
    for key, box in base.header.items():
        header[key] = [box.x0, box.y0, box.x1, box.y1]
    e = base.election
    data: dict[str, Any] = {
        "name": name,
        "description": "Detected from a reference scan by escrutinio forms detect; "
        f"header boxes, election and count bound from {base.name}.",
        "source": "escrutinio forms detect",
        "election": {
            "year": e.year,
            "eleccion_tipo": e.eleccion_tipo,
            "recuento_tipo": e.recuento_tipo,
            "padron_tipo": e.padron_tipo,
            "distrito_id": e.distrito_id,
            "distrito_nombre": e.distrito_nombre,
        },
        "page": {"width_mm": base.page_width_mm, "height_mm": base.page_height_mm},
        "line_width_mm": base.line_width_mm,
        "table": {
            "box": [r(xs[0]), r(table_y0), r(xs[-1]), r(ys[-1])],
            "heading_y1": r(heading_y1),
        },
        "label_columns": [
            {"title": "", "x0": r(a), "x1": r(b)}
            for a, b in zip(label_lines[:-1], label_lines[1:], strict=True)
        ],
        "columns": out_columns,
        "rows": out_rows,
        "header": header,
    }
    if heading_split is not None:
        data["table"]["heading_split"] = r(heading_split)
    if base.max_count is not None:
        data["max_count"] = base.max_count
    return data, parse_template(json.loads(json.dumps(data)))


def compare_templates(found: FormTemplate, reference: FormTemplate) -> dict[str, float]:
    """Largest differences (page-relative) between two templates' grids: table box, row lines,
    column lines; also the count of cells whose NO USAR mark differs."""

    def lines(t: FormTemplate) -> tuple[list[float], list[float]]:
        return [r.y0 for r in t.rows] + [t.rows[-1].y1], [c.x0 for c in t.columns] + [
            t.columns[-1].x1
        ]

    fy, fx = lines(found)
    ry, rx = lines(reference)
    if len(fy) != len(ry) or len(fx) != len(rx):
        raise BadInput("the templates have different numbers of rows or columns")
    tb, rb = found.table, reference.table
    return {
        "table_box": max(
            abs(tb.x0 - rb.x0), abs(tb.y0 - rb.y0), abs(tb.x1 - rb.x1), abs(tb.y1 - rb.y1)
        ),
        "row_lines": max(abs(a - b) for a, b in zip(fy, ry, strict=True)),
        "column_lines": max(abs(a - b) for a, b in zip(fx, rx, strict=True)),
        "no_usar_differences": float(len(found.no_usar ^ reference.no_usar)),
    }
