"""Telegram form templates: the printed layout of one election's telegram, as data.

A template says where everything is on the page, in **page-relative units**: ``x`` runs from
0 (left edge of the sheet) to 1 (right edge), ``y`` from 0 (top) to 1 (bottom). A point
``(u, v)`` is pixel coordinate ``(u * W, v * H)`` on a page image of ``W x H`` pixels, in
OpenCV's convention (pixel ``i`` is centred on coordinate ``i``). Ruled lines are given by
their centre lines; a cell's :class:`Box` runs from one ruled line's centre to the next.

Templates are JSON files shipped in ``pipeline/forms/`` (``<name>.json``); the schema is
described in :func:`parse_template`, which validates every field and raises
:class:`~pipeline.errors.InvalidTemplate` naming the offending one.

Public interface (other modules build on it):

- :class:`FormTemplate` with ``columns`` (one per office), ``rows`` (one per list or vote
  type), ``no_usar`` (the grey cells), ``header`` boxes and :meth:`FormTemplate.value_cells`;
- :func:`load_template` ``(name_or_path) -> FormTemplate``, :func:`list_templates`;
- :func:`with_parties` to derive a template with another party list (e.g. another district).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.errors import InvalidTemplate

FORMS_DIR = Path(__file__).with_name("forms")

#: The vote types of the official CSV, plus ``TOTAL`` (the form's column-total row).
VOTE_TYPES = ("POSITIVO", "EN BLANCO", "NULO", "RECURRIDO", "IMPUGNADO", "COMANDO", "TOTAL")
#: The vote types that appear in the official results CSV (``TOTAL`` does not).
OFFICIAL_VOTE_TYPES = VOTE_TYPES[:-1]
#: Header value boxes every template must define.
HEADER_VALUE_FIELDS = ("votantes", "sobres", "diferencia")
ELECTION_TYPES = ("PASO", "GENERAL", "BALOTAJE")


@dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle in page-relative units (0..1), ``x0 < x1``, ``y0 < y1``."""

    x0: float
    y0: float
    x1: float
    y1: float

    def to_pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` in integer pixels of a ``width x height`` page image.

        Rounded to the nearest pixel; slice an image with ``img[y0:y1, x0:x1]``.
        """
        return (
            round(self.x0 * width),
            round(self.y0 * height),
            round(self.x1 * width),
            round(self.y1 * height),
        )

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)

    def split_columns(self, n: int) -> tuple[Box, ...]:
        """The box cut into ``n`` equal boxes side by side (the 2023 digit-per-box header)."""
        step = self.width / n
        return tuple(
            Box(self.x0 + i * step, self.y0, self.x0 + (i + 1) * step, self.y1) for i in range(n)
        )


@dataclass(frozen=True)
class Election:
    """The election a form belongs to: the leading columns of the official results CSV."""

    year: int
    eleccion_tipo: str  # PASO | GENERAL | BALOTAJE
    recuento_tipo: str  # PROVISORIO for telegram counts
    padron_tipo: str  # NORMAL
    distrito_id: int
    distrito_nombre: str
    seccionprovincial_id: str = ""
    seccionprovincial_nombre: str = ""


@dataclass(frozen=True)
class Column:
    """One office (cargo) column of the table; ``x0``/``x1`` are its ruled lines (0..1)."""

    cargo_id: int
    cargo_nombre: str
    x0: float
    x1: float
    title: str = ""  # the printed column heading ("PRESIDENTE Y VICEPRESIDENTE DE LA NACION")


@dataclass(frozen=True)
class LabelColumn:
    """A printed, never-handwritten column left of the offices ("Lista N°", party, list)."""

    title: str
    x0: float
    x1: float


@dataclass(frozen=True)
class Row:
    """One table row: a party list (``POSITIVO``) or another vote type, or ``TOTAL``.

    ``key`` is stable and unique within a template: ``"<agrupacion_id>:<lista_numero>"``
    for lists (``"135:A"``), the vote type for the others (``"NULO"``, ``"EN BLANCO"``,
    ``"TOTAL"``). ``y0``/``y1`` are the row's ruled lines (0..1). ``label`` holds the printed
    texts of the label columns, left to right (one string for non-list rows).
    """

    key: str
    votos_tipo: str
    agrupacion_id: int | None
    agrupacion_nombre: str
    lista_numero: str
    lista_nombre: str
    y0: float
    y1: float
    label: tuple[str, ...] = ()
    share: float | None = None  # expected share of the votes (synthetic data), lists only


@dataclass(frozen=True)
class CellSpec:
    """A handwritten value cell: one row x one office column, and its box on the page."""

    row: Row
    column: Column
    box: Box


@dataclass(frozen=True)
class Text:
    """Printed text: ``(x, y)`` is the anchor point (0..1), ``size`` the cap height in mm.

    ``anchor`` is ``left``, ``centre`` or ``right`` (horizontal); ``y`` is the baseline.
    """

    text: str
    x: float
    y: float
    size: float = 2.5
    bold: bool = False
    anchor: str = "left"


@dataclass(frozen=True)
class Rule:
    """A printed straight line from ``(x0, y0)`` to ``(x1, y1)`` (0..1), ``width`` in mm."""

    x0: float
    y0: float
    x1: float
    y1: float
    width: float = 0.3


@dataclass(frozen=True)
class FormTemplate:
    """The printed layout of one telegram form (see the module docstring for units).

    - ``table``: the outer box of the results table; ``heading``: its heading band (column
      titles), from ``table.y0`` to the first row's ``y0``. ``heading_split`` (optional) is a
      ruled line across the office columns inside the heading, with ``heading_note`` (e.g.
      "TOTAL EN N°") printed under it in every office column.
    - ``label_columns``: printed columns left of the offices; ``columns``: office columns,
      left to right; ``rows``: top to bottom, the last one usually ``TOTAL``.
    - ``no_usar``: ``(row key, cargo_id)`` of the grey "NO USAR" cells (nothing written).
    - ``header``: boxes by name. Always ``votantes``, ``sobres``, ``diferencia`` (the
      handwritten counts; in the 2023 form each is ``header_digit_boxes`` equal boxes, one
      digit each, see :meth:`header_digit_cells`), ``barcode`` and ``mesa_code`` (the
      barcode strip and its printed text); optionally ``seccion``, ``circuito``, ``mesa``
      (typed identity values).
    - ``frames``, ``rules``, ``texts``: the rest of the printed page (boxes, lines such as
      signature lines, headings), for :func:`pipeline.render.render_form`.
    - ``max_count``: the largest count any handwritten field can hold (a mesa's votes cannot
      exceed its registered electors), or None for no bound: readings above it are
      impossible (``pipeline.decode``).
    """

    name: str
    description: str
    election: Election
    page_width_mm: float
    page_height_mm: float
    table: Box
    heading: Box
    label_columns: tuple[LabelColumn, ...]
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    no_usar: frozenset[tuple[str, int]]
    header: Mapping[str, Box]
    header_digit_boxes: int = 1
    heading_split: float | None = None
    heading_note: str = ""
    frames: tuple[Box, ...] = ()
    rules: tuple[Rule, ...] = ()
    texts: tuple[Text, ...] = ()
    line_width_mm: float = 0.3
    source: str = ""
    max_count: int | None = None
    _row_index: Mapping[str, Row] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_row_index", {row.key: row for row in self.rows})

    # ---- lookups -------------------------------------------------------------------------
    def row(self, key: str) -> Row:
        """The row with this key; ``KeyError`` if there is none."""
        return self._row_index[key]

    def column(self, cargo_id: int) -> Column:
        """The office column of ``cargo_id``; ``KeyError`` if there is none."""
        for column in self.columns:
            if column.cargo_id == cargo_id:
                return column
        raise KeyError(cargo_id)

    def is_no_usar(self, row: Row | str, column: Column | int) -> bool:
        key = row if isinstance(row, str) else row.key
        cargo_id = column if isinstance(column, int) else column.cargo_id
        return (key, cargo_id) in self.no_usar

    @property
    def party_rows(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if row.votos_tipo == "POSITIVO")

    @property
    def aspect(self) -> float:
        """Height / width of the sheet."""
        return self.page_height_mm / self.page_width_mm

    def page_size_px(self, dpi: float) -> tuple[int, int]:
        """``(width, height)`` in pixels of the whole sheet scanned at ``dpi``."""
        return (
            round(self.page_width_mm / 25.4 * dpi),
            round(self.page_height_mm / 25.4 * dpi),
        )

    # ---- cells ---------------------------------------------------------------------------
    def cell_box(self, row: Row, column: Column) -> Box:
        return Box(column.x0, row.y0, column.x1, row.y1)

    def value_cells(self, include_total: bool = True) -> list[CellSpec]:
        """Every handwritten cell of the table in reading order (row by row, left to right).

        NO USAR cells are excluded. With ``include_total=False`` the ``TOTAL`` row is left out
        (what remains is exactly the rows of the official results CSV).
        """
        cells = []
        for row in self.rows:
            if row.votos_tipo == "TOTAL" and not include_total:
                continue
            for column in self.columns:
                if (row.key, column.cargo_id) not in self.no_usar:
                    cells.append(CellSpec(row, column, self.cell_box(row, column)))
        return cells

    def header_digit_cells(self, name: str) -> tuple[Box, ...]:
        """The header value box ``name`` split into its ``header_digit_boxes`` digit boxes."""
        return self.header[name].split_columns(self.header_digit_boxes)

    # ---- ruled lines (what registration and the renderer rely on) ------------------------
    def horizontal_lines(self) -> list[float]:
        """Sorted y (0..1) of the table's full-width horizontal ruled lines."""
        ys = {self.table.y0, self.table.y1, self.heading.y1}
        ys.update(row.y0 for row in self.rows)
        ys.update(row.y1 for row in self.rows)
        return sorted(ys)

    def vertical_lines(self) -> list[float]:
        """Sorted x (0..1) of the table's vertical ruled lines."""
        xs = {self.table.x0, self.table.x1}
        xs.update(c.x0 for c in self.label_columns)
        xs.update(c.x1 for c in self.label_columns)
        xs.update(c.x0 for c in self.columns)
        xs.update(c.x1 for c in self.columns)
        return sorted(xs)


# ---------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------


def list_templates() -> list[str]:
    """Names of the templates shipped in ``pipeline/forms/``, sorted."""
    return sorted(path.stem for path in FORMS_DIR.glob("*.json"))


def load_template(name_or_path: str | Path) -> FormTemplate:
    """Load a shipped template by name (``"arg-2023-general"``) or any JSON file by path.

    Raises :class:`InvalidTemplate` for an unknown name, unreadable/invalid JSON, or a schema
    violation (the message names the file and the field).
    """
    text_value = str(name_or_path)
    path = Path(text_value)
    if not (path.suffix == ".json" or path.exists()):
        path = FORMS_DIR / f"{text_value}.json"
        if not path.exists():
            known = ", ".join(list_templates())
            raise InvalidTemplate(f"unknown form template {text_value!r} (known: {known})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InvalidTemplate(f"{path}: no such template file") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidTemplate(f"{path}: not a readable JSON template: {exc}") from exc
    try:
        return parse_template(data)
    except InvalidTemplate as exc:
        raise InvalidTemplate(f"{path}: {exc}") from exc


def _fail(where: str, problem: str) -> InvalidTemplate:
    return InvalidTemplate(f"field {where!r}: {problem}")


def _get(obj: Mapping[str, Any], key: str, where: str, default: Any = ...) -> Any:
    if not isinstance(obj, Mapping):
        raise _fail(where, "must be an object")
    if key not in obj:
        if default is ...:
            raise _fail(f"{where}.{key}" if where else key, "is missing")
        return default
    return obj[key]


def _str(obj: Mapping[str, Any], key: str, where: str, default: Any = ...) -> str:
    value = _get(obj, key, where, default)
    if not isinstance(value, str):
        raise _fail(_join(where, key), f"must be a string, got {value!r}")
    return value


def _int(obj: Mapping[str, Any], key: str, where: str, default: Any = ...) -> int:
    value = _get(obj, key, where, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(_join(where, key), f"must be an integer, got {value!r}")
    return value


def _num(obj: Mapping[str, Any], key: str, where: str, default: Any = ...) -> float:
    value = _get(obj, key, where, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(_join(where, key), f"must be a number, got {value!r}")
    return float(value)


def _unit(obj: Mapping[str, Any], key: str, where: str, default: Any = ...) -> float:
    value = _num(obj, key, where, default)
    if not 0.0 <= value <= 1.0:
        raise _fail(_join(where, key), f"must be page-relative (0..1), got {value}")
    return value


def _join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _list(obj: Mapping[str, Any], key: str, where: str, default: Any = ...) -> list[Any]:
    value = _get(obj, key, where, default)
    if not isinstance(value, list):
        raise _fail(_join(where, key), "must be a list")
    return value


def _box(value: Any, where: str) -> Box:
    if (
        not isinstance(value, list)
        or len(value) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise _fail(where, f"must be a box [x0, y0, x1, y1] of numbers, got {value!r}")
    x0, y0, x1, y1 = (float(v) for v in value)
    if not all(0.0 <= v <= 1.0 for v in (x0, y0, x1, y1)):
        raise _fail(where, f"box must be page-relative (0..1), got {value!r}")
    if not (x0 < x1 and y0 < y1):
        raise _fail(where, f"box must have x0 < x1 and y0 < y1, got {value!r}")
    return Box(x0, y0, x1, y1)


def row_key(votos_tipo: str, agrupacion_id: int | None, lista_numero: str) -> str:
    """The stable key of a row: ``"135:A"`` for a list, the vote type otherwise."""
    if votos_tipo == "POSITIVO":
        return f"{agrupacion_id}:{lista_numero}"
    return votos_tipo


def parse_template(data: Any) -> FormTemplate:
    """Validate a template's JSON data and build the :class:`FormTemplate`.

    Schema (all coordinates page-relative, 0..1; boxes are ``[x0, y0, x1, y1]``)::

        {"name": str, "description": str, "source": str (optional),
         "election": {"year": int, "eleccion_tipo": "PASO|GENERAL|BALOTAJE",
                      "recuento_tipo": str, "padron_tipo": str, "distrito_id": int,
                      "distrito_nombre": str, "seccionprovincial_id": str (opt),
                      "seccionprovincial_nombre": str (opt)},
         "page": {"width_mm": number, "height_mm": number},
         "line_width_mm": number (optional, default 0.3),
         "max_count": int (optional; the largest possible count, e.g. the most electors a
                      mesa may have; no bound when absent or null),
         "table": {"box": box, "heading_y1": number, "heading_split": number (opt),
                   "heading_note": str (opt)},
         "label_columns": [{"title": str, "x0": n, "x1": n}, ...],
         "columns": [{"cargo_id": int, "cargo_nombre": str, "title": str, "x0": n, "x1": n}],
         "rows": [{"votos_tipo": str, "agrupacion_id": int (POSITIVO only),
                   "agrupacion_nombre": str, "lista_numero": str, "lista_nombre": str,
                   "y0": n, "y1": n, "label": [str, ...], "no_usar": [cargo_id, ...],
                   "share": number 0..1 (optional; typical vote share, for synthetic counts)}],
         "header": {"digit_boxes": int, "votantes": box, "sobres": box,
                    "diferencia": box, "barcode": box, "mesa_code": box, ...other boxes},
         "frames": [box, ...], "rules": [{"x0","y0","x1","y1","width"}],
         "texts": [{"text", "x", "y", "size", "bold", "anchor"}]}

    Checks: types and ranges, columns and rows ordered and non-overlapping inside the table,
    unique cargo ids and row keys, vote types known, NO USAR cargo ids existing, exactly one
    ``TOTAL`` row at most and it comes last.
    """
    if not isinstance(data, Mapping):
        raise _fail("", "a template must be a JSON object")
    name = _str(data, "name", "")
    if not name:
        raise _fail("name", "must not be empty")
    description = _str(data, "description", "", "")
    source = _str(data, "source", "", "")

    e = _get(data, "election", "")
    election = Election(
        year=_int(e, "year", "election"),
        eleccion_tipo=_str(e, "eleccion_tipo", "election"),
        recuento_tipo=_str(e, "recuento_tipo", "election", "PROVISORIO"),
        padron_tipo=_str(e, "padron_tipo", "election", "NORMAL"),
        distrito_id=_int(e, "distrito_id", "election"),
        distrito_nombre=_str(e, "distrito_nombre", "election"),
        seccionprovincial_id=_str(e, "seccionprovincial_id", "election", ""),
        seccionprovincial_nombre=_str(e, "seccionprovincial_nombre", "election", ""),
    )
    if election.eleccion_tipo not in ELECTION_TYPES:
        raise _fail("election.eleccion_tipo", f"must be one of {ELECTION_TYPES}")
    if not 1 <= election.distrito_id <= 99:
        raise _fail("election.distrito_id", "must be 1..99 (two digits of the mesa code)")

    page = _get(data, "page", "")
    width_mm = _num(page, "width_mm", "page")
    height_mm = _num(page, "height_mm", "page")
    if not (50 <= width_mm <= 1000 and 50 <= height_mm <= 1000):
        raise _fail("page", "width_mm and height_mm must be 50..1000 mm")
    line_width_mm = _num(data, "line_width_mm", "", 0.3)
    max_count = _int(data, "max_count", "") if data.get("max_count") is not None else None
    if max_count is not None and max_count < 1:
        raise _fail("max_count", f"must be a whole number of at least 1, got {max_count!r}")

    t = _get(data, "table", "")
    table = _box(_get(t, "box", "table"), "table.box")
    heading_y1 = _unit(t, "heading_y1", "table")
    if not table.y0 < heading_y1 < table.y1:
        raise _fail("table.heading_y1", "must lie inside the table box")
    heading = Box(table.x0, table.y0, table.x1, heading_y1)
    heading_split = _get(t, "heading_split", "table", None)
    if heading_split is not None:
        heading_split = _unit(t, "heading_split", "table")
        if not table.y0 < heading_split < heading_y1:
            raise _fail("table.heading_split", "must lie inside the heading band")
    heading_note = _str(t, "heading_note", "table", "")

    label_columns = []
    for i, c in enumerate(_list(data, "label_columns", "", [])):
        where = _join("label_columns", i)
        label_columns.append(
            LabelColumn(_str(c, "title", where, ""), _unit(c, "x0", where), _unit(c, "x1", where))
        )

    columns = []
    for i, c in enumerate(_list(data, "columns", "")):
        where = _join("columns", i)
        columns.append(
            Column(
                cargo_id=_int(c, "cargo_id", where),
                cargo_nombre=_str(c, "cargo_nombre", where),
                x0=_unit(c, "x0", where),
                x1=_unit(c, "x1", where),
                title=_str(c, "title", where, ""),
            )
        )
    if not columns:
        raise _fail("columns", "must list at least one office column")
    _check_ordered([(c.x0, c.x1) for c in label_columns], "label_columns", table.x0, table.x1)
    first_office_x = label_columns[-1].x1 if label_columns else table.x0
    _check_ordered([(c.x0, c.x1) for c in columns], "columns", first_office_x, table.x1)
    cargo_ids = [c.cargo_id for c in columns]
    if len(set(cargo_ids)) != len(cargo_ids):
        raise _fail("columns", f"cargo_id values must be unique, got {cargo_ids}")

    rows = []
    no_usar: set[tuple[str, int]] = set()
    for i, r in enumerate(_list(data, "rows", "")):
        where = _join("rows", i)
        votos_tipo = _str(r, "votos_tipo", where)
        if votos_tipo not in VOTE_TYPES:
            raise _fail(f"{where}.votos_tipo", f"must be one of {VOTE_TYPES}, got {votos_tipo!r}")
        positive = votos_tipo == "POSITIVO"
        agrupacion_id = _int(r, "agrupacion_id", where) if positive else None
        if not positive and r.get("agrupacion_id") not in (None, ""):
            raise _fail(f"{where}.agrupacion_id", f"only POSITIVO rows name a party ({votos_tipo})")
        lista_numero = _str(r, "lista_numero", where, "")
        row = Row(
            key=row_key(votos_tipo, agrupacion_id, lista_numero),
            votos_tipo=votos_tipo,
            agrupacion_id=agrupacion_id,
            agrupacion_nombre=_str(r, "agrupacion_nombre", where, ""),
            lista_numero=lista_numero,
            lista_nombre=_str(r, "lista_nombre", where, ""),
            y0=_unit(r, "y0", where),
            y1=_unit(r, "y1", where),
            label=tuple(_str_list(_list(r, "label", where, []), f"{where}.label")),
            share=_unit(r, "share", where) if r.get("share") is not None else None,
        )
        if positive and not row.agrupacion_nombre:
            raise _fail(f"{where}.agrupacion_nombre", "a POSITIVO row must name its party")
        rows.append(row)
        for j, cargo in enumerate(_list(r, "no_usar", where, [])):
            if isinstance(cargo, bool) or cargo not in cargo_ids:
                raise _fail(f"{where}.no_usar[{j}]", f"{cargo!r} is not a cargo_id of the columns")
            no_usar.add((row.key, cargo))
    if not rows:
        raise _fail("rows", "must list at least one row")
    _check_ordered([(r.y0, r.y1) for r in rows], "rows", heading_y1, table.y1)
    keys = [r.key for r in rows]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise _fail("rows", f"duplicate rows (same vote type / party and list): {duplicates}")
    totals = [i for i, r in enumerate(rows) if r.votos_tipo == "TOTAL"]
    if totals and totals != [len(rows) - 1]:
        raise _fail("rows", "at most one TOTAL row, and it must be the last")

    h = _get(data, "header", "")
    digit_boxes = _int(h, "digit_boxes", "header", 1)
    if not 1 <= digit_boxes <= 5:
        raise _fail("header.digit_boxes", "must be 1 (free-form) to 5")
    header: dict[str, Box] = {}
    for key, value in h.items():
        if key == "digit_boxes":
            continue
        header[key] = _box(value, f"header.{key}")
    for key in (*HEADER_VALUE_FIELDS, "barcode", "mesa_code"):
        if key not in header:
            raise _fail(f"header.{key}", "is missing")

    frames = tuple(_box(b, _join("frames", i)) for i, b in enumerate(_list(data, "frames", "", [])))
    rules = []
    for i, r in enumerate(_list(data, "rules", "", [])):
        where = _join("rules", i)
        rules.append(
            Rule(
                _unit(r, "x0", where),
                _unit(r, "y0", where),
                _unit(r, "x1", where),
                _unit(r, "y1", where),
                _num(r, "width", where, line_width_mm),
            )
        )
    texts = []
    for i, tx in enumerate(_list(data, "texts", "", [])):
        where = _join("texts", i)
        anchor = _str(tx, "anchor", where, "left")
        if anchor not in ("left", "centre", "right"):
            raise _fail(f"{where}.anchor", "must be left, centre or right")
        bold = _get(tx, "bold", where, False)
        if not isinstance(bold, bool):
            raise _fail(f"{where}.bold", "must be true or false")
        texts.append(
            Text(
                _str(tx, "text", where),
                _unit(tx, "x", where),
                _unit(tx, "y", where),
                _num(tx, "size", where, 2.5),
                bold,
                anchor,
            )
        )

    return FormTemplate(
        name=name,
        description=description,
        election=election,
        page_width_mm=width_mm,
        page_height_mm=height_mm,
        table=table,
        heading=heading,
        label_columns=tuple(label_columns),
        columns=tuple(columns),
        rows=tuple(rows),
        no_usar=frozenset(no_usar),
        header=header,
        header_digit_boxes=digit_boxes,
        heading_split=heading_split,
        heading_note=heading_note,
        frames=frames,
        rules=tuple(rules),
        texts=tuple(texts),
        line_width_mm=line_width_mm,
        source=source,
        max_count=max_count,
    )


def _str_list(values: list[Any], where: str) -> list[str]:
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise _fail(f"{where}[{i}]", f"must be a string, got {v!r}")
    return values


def _check_ordered(spans: Sequence[tuple[float, float]], where: str, lo: float, hi: float) -> None:
    """Spans must be non-empty, left to right (top to bottom), and inside ``[lo, hi]``."""
    tolerance = 1e-6
    previous_end = lo - tolerance
    for i, (a, b) in enumerate(spans):
        if not a < b:
            raise _fail(_join(where, i), f"start {a} must be before end {b}")
        if a < previous_end - tolerance:
            raise _fail(_join(where, i), f"overlaps the previous one (starts at {a})")
        if a < lo - tolerance or b > hi + tolerance:
            raise _fail(_join(where, i), f"lies outside the table ({lo}..{hi})")
        previous_end = b


# ---------------------------------------------------------------------------------------
# Deriving a template with another party list
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartySpec:
    """A party list to put on a form: its identity, printed labels and the offices it skips."""

    agrupacion_id: int
    agrupacion_nombre: str
    lista_numero: str = ""
    lista_nombre: str = ""
    label: tuple[str, ...] = ()
    no_usar: tuple[int, ...] = ()  # cargo ids it does not run for (grey cells)
    share: float | None = None  # typical share of the votes, for synthetic counts


def with_parties(
    template: FormTemplate,
    parties: Iterable[PartySpec],
    distrito_id: int | None = None,
    distrito_nombre: str | None = None,
) -> FormTemplate:
    """A copy of ``template`` with its party rows replaced by ``parties`` (e.g. a district's).

    Party rows take the height of the template's first party row and are stacked from the
    first party row's top; the other vote-type rows keep their heights and follow. The table
    bottom, and every printed item below it, move by the change in height. Raises
    :class:`InvalidTemplate` if the table no longer fits on the page or a party is invalid.
    """
    parties = list(parties)
    if not parties:
        raise InvalidTemplate("with_parties: at least one party is required")
    old_parties = template.party_rows
    if not old_parties:
        raise InvalidTemplate(f"{template.name}: has no party rows to replace")
    cargo_ids = {c.cargo_id for c in template.columns}
    party_height = old_parties[0].y1 - old_parties[0].y0
    y = old_parties[0].y0
    start_index = template.rows.index(old_parties[0])
    rows: list[Row] = list(template.rows[:start_index])
    no_usar = {(k, c) for (k, c) in template.no_usar if template.row(k).votos_tipo != "POSITIVO"}
    for party in parties:
        key = row_key("POSITIVO", party.agrupacion_id, party.lista_numero)
        unknown = set(party.no_usar) - cargo_ids
        if unknown:
            raise InvalidTemplate(f"party {key}: no_usar names unknown cargo ids {sorted(unknown)}")
        label = party.label or (
            party.lista_numero or str(party.agrupacion_id),
            party.agrupacion_nombre,
        )
        rows.append(
            Row(
                key=key,
                votos_tipo="POSITIVO",
                agrupacion_id=party.agrupacion_id,
                agrupacion_nombre=party.agrupacion_nombre,
                lista_numero=party.lista_numero,
                lista_nombre=party.lista_nombre,
                y0=y,
                y1=y + party_height,
                label=tuple(label),
                share=party.share,
            )
        )
        no_usar.update((key, c) for c in party.no_usar)
        y += party_height
    rest = [r for r in template.rows[start_index:] if r.votos_tipo != "POSITIVO"]
    delta = y - rest[0].y0 if rest else y - old_parties[-1].y1
    rows.extend(replace(r, y0=r.y0 + delta, y1=r.y1 + delta) for r in rest)
    keys = [r.key for r in rows]
    if len(set(keys)) != len(keys):
        raise InvalidTemplate("with_parties: two parties have the same agrupacion and lista")

    old_bottom = template.table.y1
    table = replace(template.table, y1=old_bottom + delta)
    if table.y1 > 0.99 or any(
        (t.y + delta > 0.995) for t in template.texts if t.y > old_bottom - 1e-9
    ):
        raise InvalidTemplate(
            f"with_parties: {len(parties)} party rows do not fit on the {template.name} page"
        )

    def shift(v: float) -> float:
        return v + delta if v > old_bottom - 1e-9 else v

    frames = tuple(replace(b, y0=shift(b.y0), y1=shift(b.y1)) for b in template.frames)
    rules = tuple(replace(r, y0=shift(r.y0), y1=shift(r.y1)) for r in template.rules)
    texts = tuple(replace(t, y=shift(t.y)) for t in template.texts)
    election = replace(
        template.election,
        distrito_id=template.election.distrito_id if distrito_id is None else distrito_id,
        distrito_nombre=(
            template.election.distrito_nombre if distrito_nombre is None else distrito_nombre
        ),
    )
    return replace(
        template,
        election=election,
        table=table,
        rows=tuple(rows),
        no_usar=frozenset(no_usar),
        frames=frames,
        rules=rules,
        texts=texts,
    )
