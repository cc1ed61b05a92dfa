"""Import the official results CSV (``ResultadosElectorales_<year>.csv``) into the mirror.

The file is validated row by row in Python (so an error names file, line and column),
streamed with COPY into a temporary staging table, and merged into the mirror with
set-based ``INSERT ... ON CONFLICT`` statements, all in ONE transaction: a bad file is
rejected whole, and importing the same file twice changes nothing. With
``skip_bad_rows`` the invalid lines are written to a rejects file instead.

Conventions of the mirror's natural keys: POSITIVO rows carry agrupacion_id and a
lista_numero ("" when the party runs one unnamed list); other vote types carry neither.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from sqlalchemy import Connection, text

from db.models import COUNT_TYPES, ELECTION_TYPES, VOTE_TYPES
from pipeline.errors import BadInput

COLUMNS = (
    "año", "eleccion_tipo", "recuento_tipo", "padron_tipo", "distrito_id", "distrito_nombre",
    "seccionprovincial_id", "seccionprovincial_nombre", "seccion_id", "seccion_nombre",
    "circuito_id", "circuito_nombre", "mesa_id", "mesa_tipo", "mesa_electores", "cargo_id",
    "cargo_nombre", "agrupacion_id", "agrupacion_nombre", "lista_numero", "lista_nombre",
    "votos_tipo", "votos_cantidad",
)  # fmt: skip
#: Columns that must hold an integer (empty allowed only where noted in ``_OPTIONAL_INTS``).
_INTS = ("año", "distrito_id", "seccionprovincial_id", "seccion_id", "mesa_electores",
         "cargo_id", "agrupacion_id", "votos_cantidad")  # fmt: skip
_OPTIONAL_INTS = {"seccionprovincial_id", "mesa_electores", "agrupacion_id"}


class ImportFailure(BadInput):
    """The file cannot be imported; nothing was written."""


@dataclass
class ImportStats:
    rows_read: int = 0
    rows_rejected: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejects_file: Path | None = None
    files: list[str] = field(default_factory=list)


def _validate(row: dict[str, str]) -> tuple[str, ...]:
    """One CSV row -> the staging tuple, or ValueError('column: problem')."""
    for name in _INTS:
        value = row[name].strip()
        if value == "":
            if name in _OPTIONAL_INTS:
                continue
            raise ValueError(f"column {name}: empty, expected an integer")
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"column {name}: {value!r} is not an integer") from None
        if not 0 <= number < 2**31:
            raise ValueError(f"column {name}: {number} is out of range")
    if row["eleccion_tipo"] not in ELECTION_TYPES:
        raise ValueError(f"column eleccion_tipo: unknown value {row['eleccion_tipo']!r}")
    if row["recuento_tipo"] not in COUNT_TYPES:
        raise ValueError(f"column recuento_tipo: unknown value {row['recuento_tipo']!r}")
    votos_tipo = row["votos_tipo"]
    if votos_tipo not in VOTE_TYPES:
        raise ValueError(
            f"column votos_tipo: unknown value {votos_tipo!r} "
            f"(expected one of {', '.join(VOTE_TYPES)})"
        )
    if not row["mesa_id"].strip():
        raise ValueError("column mesa_id: empty")
    if not row["circuito_id"].strip():
        raise ValueError("column circuito_id: empty")
    positive = votos_tipo == "POSITIVO"
    if positive and not row["agrupacion_id"].strip():
        raise ValueError("column agrupacion_id: empty on a POSITIVO row")
    return (
        row["año"], row["eleccion_tipo"], row["recuento_tipo"], row["distrito_id"],
        row["distrito_nombre"], row["seccionprovincial_id"] or None,
        row["seccionprovincial_nombre"], row["seccion_id"], row["seccion_nombre"],
        row["circuito_id"].strip(), row["circuito_nombre"], row["mesa_id"].strip(),
        row["mesa_tipo"], row["mesa_electores"] or None, row["cargo_id"], row["cargo_nombre"],
        row["agrupacion_id"] if positive else None, row["agrupacion_nombre"] if positive else "",
        row["lista_numero"].strip() if positive else None, row["lista_nombre"] if positive else "",
        votos_tipo, row["votos_cantidad"],
    )  # fmt: skip


_STAGING = """
CREATE TEMP TABLE import_staging (
    file_no int, line bigint, anio int, eleccion_tipo text, recuento_tipo text, distrito_id int,
    distrito_nombre text, seccionprovincial_id int, seccionprovincial_nombre text,
    seccion_id int, seccion_nombre text, circuito_id text, circuito_nombre text,
    mesa_code text, mesa_tipo text, mesa_electores int, cargo_id int, cargo_nombre text,
    agrupacion_id int, agrupacion_nombre text, lista_numero text, lista_nombre text,
    votos_tipo text, votos_cantidad int
) ON COMMIT DROP
"""

# Empty text fields stay "" (not NULL) so names and lista_numero compare as published.
_COPY = """
COPY import_staging FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (
    distrito_nombre, seccionprovincial_nombre, seccion_nombre, circuito_nombre, mesa_tipo,
    cargo_nombre, agrupacion_nombre, lista_numero, lista_nombre))
"""

_MERGE = [
    """INSERT INTO election (year, eleccion_tipo, recuento_tipo)
       SELECT DISTINCT anio, eleccion_tipo, recuento_tipo FROM import_staging
       ON CONFLICT DO NOTHING""",
    """INSERT INTO district (distrito_id, nombre)
       SELECT DISTINCT ON (distrito_id) distrito_id, distrito_nombre FROM import_staging
       ORDER BY distrito_id
       ON CONFLICT (distrito_id) DO UPDATE SET nombre = EXCLUDED.nombre
       WHERE district.nombre IS DISTINCT FROM EXCLUDED.nombre""",
    """INSERT INTO provincial_section (distrito_id, seccionprovincial_id, nombre)
       SELECT DISTINCT ON (distrito_id, seccionprovincial_id)
              distrito_id, seccionprovincial_id, seccionprovincial_nombre
       FROM import_staging WHERE seccionprovincial_id IS NOT NULL
       ORDER BY distrito_id, seccionprovincial_id
       ON CONFLICT (distrito_id, seccionprovincial_id) DO UPDATE SET nombre = EXCLUDED.nombre
       WHERE provincial_section.nombre IS DISTINCT FROM EXCLUDED.nombre""",
    """INSERT INTO section (distrito_id, seccion_id, nombre)
       SELECT DISTINCT ON (distrito_id, seccion_id) distrito_id, seccion_id, seccion_nombre
       FROM import_staging ORDER BY distrito_id, seccion_id
       ON CONFLICT (distrito_id, seccion_id) DO UPDATE SET nombre = EXCLUDED.nombre
       WHERE section.nombre IS DISTINCT FROM EXCLUDED.nombre""",
    """INSERT INTO circuit (section_id, circuito_id, nombre)
       SELECT DISTINCT ON (sec.id, s.circuito_id) sec.id, s.circuito_id, s.circuito_nombre
       FROM import_staging s
       JOIN section sec ON sec.distrito_id = s.distrito_id AND sec.seccion_id = s.seccion_id
       ORDER BY sec.id, s.circuito_id
       ON CONFLICT (section_id, circuito_id) DO UPDATE SET nombre = EXCLUDED.nombre
       WHERE circuit.nombre IS DISTINCT FROM EXCLUDED.nombre""",
    """INSERT INTO mesa (election_id, mesa_code, circuit_id, provincial_section_id,
                         mesa_tipo, electores)
       SELECT DISTINCT ON (e.id, s.mesa_code)
              e.id, s.mesa_code, c.id, ps.id, s.mesa_tipo, s.mesa_electores
       FROM import_staging s
       JOIN election e ON (e.year, e.eleccion_tipo, e.recuento_tipo)
                        = (s.anio, s.eleccion_tipo, s.recuento_tipo)
       JOIN section sec ON sec.distrito_id = s.distrito_id AND sec.seccion_id = s.seccion_id
       JOIN circuit c ON c.section_id = sec.id AND c.circuito_id = s.circuito_id
       LEFT JOIN provincial_section ps ON ps.distrito_id = s.distrito_id
                                      AND ps.seccionprovincial_id = s.seccionprovincial_id
       ORDER BY e.id, s.mesa_code
       ON CONFLICT (election_id, mesa_code) DO UPDATE
       SET circuit_id = EXCLUDED.circuit_id, provincial_section_id = EXCLUDED.provincial_section_id,
           mesa_tipo = EXCLUDED.mesa_tipo, electores = EXCLUDED.electores
       WHERE (mesa.circuit_id, mesa.provincial_section_id, mesa.mesa_tipo, mesa.electores)
             IS DISTINCT FROM (EXCLUDED.circuit_id, EXCLUDED.provincial_section_id,
                               EXCLUDED.mesa_tipo, EXCLUDED.electores)""",
    """INSERT INTO office (election_id, cargo_id, nombre)
       SELECT DISTINCT ON (e.id, s.cargo_id) e.id, s.cargo_id, s.cargo_nombre
       FROM import_staging s
       JOIN election e ON (e.year, e.eleccion_tipo, e.recuento_tipo)
                        = (s.anio, s.eleccion_tipo, s.recuento_tipo)
       ORDER BY e.id, s.cargo_id
       ON CONFLICT (election_id, cargo_id) DO UPDATE SET nombre = EXCLUDED.nombre
       WHERE office.nombre IS DISTINCT FROM EXCLUDED.nombre""",
    """INSERT INTO party (election_id, agrupacion_id, nombre)
       SELECT DISTINCT ON (e.id, s.agrupacion_id) e.id, s.agrupacion_id, s.agrupacion_nombre
       FROM import_staging s
       JOIN election e ON (e.year, e.eleccion_tipo, e.recuento_tipo)
                        = (s.anio, s.eleccion_tipo, s.recuento_tipo)
       WHERE s.agrupacion_id IS NOT NULL
       ORDER BY e.id, s.agrupacion_id
       ON CONFLICT (election_id, agrupacion_id) DO UPDATE SET nombre = EXCLUDED.nombre
       WHERE party.nombre IS DISTINCT FROM EXCLUDED.nombre""",
    """INSERT INTO party_list (party_id, lista_numero, nombre)
       SELECT DISTINCT ON (p.id, s.lista_numero) p.id, s.lista_numero, s.lista_nombre
       FROM import_staging s
       JOIN election e ON (e.year, e.eleccion_tipo, e.recuento_tipo)
                        = (s.anio, s.eleccion_tipo, s.recuento_tipo)
       JOIN party p ON p.election_id = e.id AND p.agrupacion_id = s.agrupacion_id
       WHERE s.agrupacion_id IS NOT NULL
       ORDER BY p.id, s.lista_numero
       ON CONFLICT (party_id, lista_numero) DO UPDATE SET nombre = EXCLUDED.nombre
       WHERE party_list.nombre IS DISTINCT FROM EXCLUDED.nombre""",
]

_MERGE_ENTRIES = """
WITH entries AS (
    SELECT DISTINCT ON (m.id, o.id, s.votos_tipo, pl.id)
           m.id AS mesa_id, o.id AS office_id, s.votos_tipo, pl.id AS list_id, s.votos_cantidad
    FROM import_staging s
    JOIN election e ON (e.year, e.eleccion_tipo, e.recuento_tipo)
                     = (s.anio, s.eleccion_tipo, s.recuento_tipo)
    JOIN mesa m ON m.election_id = e.id AND m.mesa_code = s.mesa_code
    JOIN office o ON o.election_id = e.id AND o.cargo_id = s.cargo_id
    LEFT JOIN party p ON p.election_id = e.id AND p.agrupacion_id = s.agrupacion_id
    LEFT JOIN party_list pl ON pl.party_id = p.id AND pl.lista_numero = s.lista_numero
    ORDER BY m.id, o.id, s.votos_tipo, pl.id
), written AS (
    INSERT INTO manual_entry (mesa_id, office_id, votos_tipo, list_id, votos_cantidad)
    SELECT mesa_id, office_id, votos_tipo, list_id, votos_cantidad FROM entries
    ON CONFLICT ON CONSTRAINT uq_manual_entry_cell DO UPDATE
    SET votos_cantidad = EXCLUDED.votos_cantidad, updated_at = now()
    WHERE manual_entry.votos_cantidad <> EXCLUDED.votos_cantidad
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted),
       (SELECT count(*) FROM entries)
FROM written
"""

_CONFLICTING_DUPLICATES = """
SELECT min(ARRAY[file_no, line]), max(ARRAY[file_no, line]),
       mesa_code, cargo_id, votos_tipo, agrupacion_id, lista_numero
FROM import_staging
GROUP BY anio, eleccion_tipo, recuento_tipo, mesa_code, cargo_id, votos_tipo,
         agrupacion_id, lista_numero
HAVING count(DISTINCT votos_cantidad) > 1
ORDER BY 1
LIMIT 1
"""


class _CopySource(io.RawIOBase):
    """A file-like object COPY reads from, filled lazily from an iterator of CSV lines."""

    def __init__(self, lines: Iterator[str]):
        self._lines = lines
        self._buffer = b""
        #: What went wrong while producing lines (psycopg2 hides it behind QueryCanceled).
        self.error: Exception | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._read(size)
        except Exception as exc:
            self.error = exc
            raise

    def _read(self, size: int) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = "".join(line for _, line in zip(range(2000), self._lines, strict=False))
            if not chunk:
                break
            self._buffer += chunk.encode()
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def _staging_lines(
    path: Path,
    file_no: int,
    stats: ImportStats,
    rejects: csv.writer | None,
    progress: Callable[[int], None],
) -> Iterator[str]:
    """Validated rows of ``path`` as CSV lines for COPY (file and line number first)."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ImportFailure(f"{path}: cannot open: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [name for name in COLUMNS if name not in header]
        if missing:
            raise ImportFailure(f"{path}:1: missing column(s): {', '.join(missing)}")
        try:
            yield from _validated_rows(path, file_no, reader, stats, rejects, progress)
        except csv.Error as exc:
            raise ImportFailure(f"{path}:{reader.line_num}: malformed CSV: {exc}") from None


def _validated_rows(
    path: Path,
    file_no: int,
    reader: csv.DictReader,
    stats: ImportStats,
    rejects: csv.writer | None,
    progress: Callable[[int], None],
) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    field_count = len(reader.fieldnames or [])
    unreported = 0
    for row in reader:
        stats.rows_read += 1
        unreported += 1
        if unreported == 10_000:
            progress(unreported)
            unreported = 0
        try:
            if None in row or None in row.values():
                raise ValueError(f"expected {field_count} fields")
            staged = _validate(row)
        except ValueError as exc:
            if rejects is None:
                raise ImportFailure(f"{path}:{reader.line_num}: {exc}") from None
            stats.rows_rejected += 1
            rejects.writerow([path, reader.line_num, exc, *[row.get(c, "") for c in COLUMNS]])
            continue
        writer.writerow((file_no, reader.line_num, *staged))
        yield out.getvalue()
        out.seek(0)
        out.truncate()
    progress(unreported)


def import_results(
    connection: Connection,
    paths: list[Path],
    skip_bad_rows: bool = False,
    rejects_path: Path | None = None,
    progress: Callable[[int], None] = lambda rows: None,
) -> ImportStats:
    """Import official-format CSV files in one transaction on ``connection``.

    The caller owns the transaction (commit on success, rollback on exception), so a
    failure anywhere leaves the database as it was. ``progress`` is called with the
    number of rows read since the last call.
    """
    stats = ImportStats(files=[str(p) for p in paths])
    rejects_handle = None
    rejects = None
    if skip_bad_rows:
        stats.rejects_file = rejects_path or paths[0].with_suffix(".rejected.csv")
        rejects_handle = stats.rejects_file.open("w", newline="", encoding="utf-8")
        rejects = csv.writer(rejects_handle)
        rejects.writerow(["file", "line", "error", *COLUMNS])
    try:
        connection.execute(text("SET LOCAL work_mem = '256MB'"))
        connection.execute(text(_STAGING))
        raw = connection.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cursor:
            for file_no, path in enumerate(paths):
                source = _CopySource(_staging_lines(path, file_no, stats, rejects, progress))
                try:
                    cursor.copy_expert(_COPY, source)
                except psycopg2.Error:
                    if source.error is not None:
                        raise source.error from None
                    raise
        # Temp tables are never auto-analysed, nor are rows written in this transaction:
        # without statistics the planner picks nested loops over millions of rows.
        connection.execute(text("ANALYZE import_staging"))
        duplicate = connection.execute(text(_CONFLICTING_DUPLICATES)).first()
        if duplicate is not None:
            (first_file, first), (second_file, second), *key = duplicate
            mesa, cargo, votos_tipo, agrupacion, lista = key
            raise ImportFailure(
                f"{paths[first_file]}:{first} and {paths[second_file]}:{second}: duplicate key "
                f"(mesa_id {mesa}, cargo_id {cargo}, "
                f"votos_tipo {votos_tipo}, agrupacion_id {agrupacion}, lista_numero {lista!r}) "
                "with different votos_cantidad"
            )
        for statement in _MERGE:
            connection.execute(text(statement))
        connection.execute(text("ANALYZE election, mesa, office, party, party_list"))
        inserted, updated, entries = connection.execute(text(_MERGE_ENTRIES)).one()
        stats.inserted, stats.updated = int(inserted), int(updated)
        stats.unchanged = int(entries) - stats.inserted - stats.updated
        connection.execute(text("DROP TABLE import_staging"))
    finally:
        if rejects_handle is not None:
            rejects_handle.close()
    return stats
