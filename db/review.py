"""Cells a person must look at, and what the person decided (``escrutinio review``).

Export: every READING_UNSURE and MANUAL_SUSPECT cell with both values, the confidence, the
scan path and crop box. Import: a CSV with columns ``cell`` and ``value`` (other columns, such
as the ones the export writes, are ignored; rows with an empty value are skipped), stored in
``reviewed_value``; later reports take a reviewed value as the truth of its cell.

A cell is named by its natural key, ``mesa_code|cargo_id|votos_tipo|agrupacion_id|lista_numero``
(empty fields for NULL), e.g. ``0101406691X|342|POSITIVO|501|135`` or ``0101406691X|342|NULO||``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, text

from db.models import READING_VOTE_TYPES
from pipeline.errors import BadInput

REVIEW_VERDICTS = ("READING_UNSURE", "MANUAL_SUSPECT")
CellKey = tuple[str, int, str, int | None, str | None]


def cell_name(mesa_code: str, cargo_id: int, votos_tipo: str, agrupacion_id, lista_numero) -> str:
    """The cell's name in review files (see the module doc)."""
    parts = [mesa_code, cargo_id, votos_tipo, agrupacion_id, lista_numero]
    return "|".join("" if part is None else str(part) for part in parts)


def parse_cell_name(name: str) -> CellKey:
    """``cell_name``'s inverse; ValueError naming the problem."""
    parts = name.strip().split("|")
    if len(parts) != 5:
        raise ValueError(
            f"cell {name!r}: expected mesa_code|cargo_id|votos_tipo|agrupacion_id|lista_numero"
        )
    mesa_code, cargo, votos_tipo, agrupacion, lista = parts
    if not mesa_code:
        raise ValueError(f"cell {name!r}: empty mesa code")
    if votos_tipo not in READING_VOTE_TYPES or votos_tipo == "TOTAL":
        raise ValueError(f"cell {name!r}: unknown votos_tipo {votos_tipo!r}")
    try:
        cargo_id = int(cargo)
        agrupacion_id = int(agrupacion) if agrupacion else None
    except ValueError:
        raise ValueError(f"cell {name!r}: cargo_id and agrupacion_id must be integers") from None
    if votos_tipo == "POSITIVO":
        if agrupacion_id is None:
            raise ValueError(f"cell {name!r}: a POSITIVO cell needs an agrupacion_id")
        return mesa_code, cargo_id, votos_tipo, agrupacion_id, lista
    if agrupacion_id is not None or lista:
        raise ValueError(f"cell {name!r}: only POSITIVO cells carry agrupacion and lista")
    return mesa_code, cargo_id, votos_tipo, None, None


_TO_REVIEW = """
SELECT cmp.verdict, cmp.mesa_code, cmp.cargo_id, cmp.votos_tipo, cmp.agrupacion_id,
       cmp.lista_numero, cmp.manual_value, cmp.reading_value, cmp.reading_confidence,
       cmp.reading_flags, cmp.manual_column_sum, cmp.reading_column_sum, s.path AS scan_path,
       cell.box, cmp.reviewed_value
FROM v_cell_comparison cmp
LEFT JOIN cell_reading cell ON cell.id = cmp.cell_reading_id
LEFT JOIN scan s ON s.id = cmp.scan_id
WHERE cmp.verdict = ANY(:verdicts) AND (:include_reviewed OR cmp.reviewed_value IS NULL)
ORDER BY cmp.verdict, cmp.reading_confidence NULLS FIRST, cmp.mesa_code, cmp.cargo_id,
         cmp.votos_tipo, cmp.agrupacion_id, cmp.lista_numero
LIMIT :limit
"""


def cells_to_review(
    connection: Connection, limit: int | None = None, include_reviewed: bool = False
) -> list[dict]:
    """The cells needing a person (MANUAL_SUSPECT first, then the least confident), as dicts
    with ``cell`` (the name), the key columns, values, confidence, flags, scan_path, box."""
    rows = connection.execute(
        text(_TO_REVIEW),
        {"verdicts": list(REVIEW_VERDICTS), "limit": limit, "include_reviewed": include_reviewed},
    ).mappings()
    return [
        {
            "cell": cell_name(
                row["mesa_code"],
                row["cargo_id"],
                row["votos_tipo"],
                row["agrupacion_id"],
                row["lista_numero"],
            ),
            **dict(row),
        }  # fmt: skip
        for row in rows
    ]


@dataclass(frozen=True)
class ReviewImport:
    rows: int
    stored: int
    skipped_empty: int


def read_review_file(path: Path) -> list[tuple[int, CellKey, int]]:
    """(line, cell key, value) of every row with a value; BadInput naming file and line."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise BadInput(f"{path}: cannot open: {exc.strerror}") from None
    rows: list[tuple[int, CellKey, int]] = []
    seen: dict[CellKey, tuple[int, int]] = {}
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("cell", "value") if c not in (reader.fieldnames or [])]
        if missing:
            raise BadInput(f"{path}:1: missing column(s): {', '.join(missing)}")
        try:
            for row in reader:
                line = reader.line_num
                value_text = (row["value"] or "").strip()
                if not value_text:
                    continue
                try:
                    key = parse_cell_name(row["cell"] or "")
                except ValueError as exc:
                    raise BadInput(f"{path}:{line}: {exc}") from None
                try:
                    value = int(value_text)
                except ValueError:
                    raise BadInput(
                        f"{path}:{line}: value {value_text!r} is not an integer"
                    ) from None
                if value < 0:
                    raise BadInput(f"{path}:{line}: value {value} is negative")
                if key in seen and seen[key][1] != value:
                    raise BadInput(
                        f"{path}:{line}: cell {row['cell']} already given value "
                        f"{seen[key][1]} on line {seen[key][0]}"
                    )
                seen[key] = (line, value)
                rows.append((line, key, value))
        except csv.Error as exc:
            raise BadInput(f"{path}:{reader.line_num}: malformed CSV: {exc}") from None
    return rows


def import_reviews(connection: Connection, path: Path, reviewer: str = "") -> ReviewImport:
    """Store the values of ``path`` as reviewed values, all or nothing (caller's transaction).

    Every named cell must be a reconciled cell (``cell_verdict``); otherwise BadInput names
    the first line that is not.
    """
    rows = read_review_file(path)
    with path.open(encoding="utf-8-sig") as handle:
        data_rows = max(0, sum(1 for _ in csv.reader(handle)) - 1)
    if not rows:
        return ReviewImport(rows=data_rows, stored=0, skipped_empty=data_rows)
    connection.execute(
        text(
            """CREATE TEMP TABLE review_staging (
                   line int, mesa_code text, cargo_id int, votos_tipo text, agrupacion_id int,
                   lista_numero text, value int) ON COMMIT DROP"""
        )
    )
    connection.execute(
        text(
            """INSERT INTO review_staging VALUES (:line, :mesa_code, :cargo_id, :votos_tipo,
                                                  :agrupacion_id, :lista_numero, :value)"""
        ),
        [
            {
                "line": line,
                "mesa_code": key[0],
                "cargo_id": key[1],
                "votos_tipo": key[2],
                "agrupacion_id": key[3],
                "lista_numero": key[4],
                "value": value,
            }  # fmt: skip
            for line, key, value in rows
        ],
    )
    unknown = connection.execute(
        text(
            """SELECT line FROM review_staging s WHERE NOT EXISTS (
                   SELECT 1 FROM cell_verdict v
                   WHERE v.mesa_code = s.mesa_code AND v.cargo_id = s.cargo_id
                     AND v.votos_tipo = s.votos_tipo
                     AND v.agrupacion_id IS NOT DISTINCT FROM s.agrupacion_id
                     AND v.lista_numero IS NOT DISTINCT FROM s.lista_numero)
               ORDER BY line LIMIT 1"""
        )
    ).scalar()
    if unknown is not None:
        raise BadInput(f"{path}:{unknown}: no such reconciled cell")
    stored = connection.execute(
        text(
            """INSERT INTO reviewed_value (mesa_code, cargo_id, votos_tipo, agrupacion_id,
                                           lista_numero, value, reviewer, source)
               SELECT DISTINCT mesa_code, cargo_id, votos_tipo, agrupacion_id, lista_numero,
                      value, :reviewer, :source
               FROM review_staging
               ON CONFLICT ON CONSTRAINT uq_reviewed_value_cell DO UPDATE
               SET value = EXCLUDED.value, reviewer = EXCLUDED.reviewer,
                   source = EXCLUDED.source, reviewed_at = now()"""
        ),
        {"reviewer": reviewer, "source": str(path)},
    ).rowcount
    connection.execute(text("DROP TABLE review_staging"))
    return ReviewImport(rows=data_rows, stored=stored, skipped_empty=data_rows - len(rows))
