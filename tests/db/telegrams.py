"""Constructed telegrams for the reconciliation tests: typed results and readings of them.

A telegram here is one mesa with one or more office columns over the same five rows
(``ROWS``: three party lists, blank and null votes). The typed side is written as an
official-format CSV and imported with ``db.importer.import_results``; the read side is
inserted as scan + recognition + cell_reading rows, as the worker writes them, with each
column's TOTAL cell and the header's sobres.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, text

from db.importer import COLUMNS, import_results
from db.models import CellReading, Recognition, Scan
from db.session import get_engine, transaction

#: (votos_tipo, agrupacion_id, lista_numero) of the rows of every constructed column.
ROWS: list[tuple[str, int | None, str | None]] = [
    ("POSITIVO", 501, "101"),
    ("POSITIVO", 502, "102"),
    ("POSITIVO", 503, ""),
    ("EN BLANCO", None, None),
    ("NULO", None, None),
]
#: The 2023 case: the telegram says 121, the column sums to the 275 envelopes.
COLUMN_275 = [121, 100, 40, 10, 4]


def official_row(
    mesa_code: str,
    cargo_id: int,
    row: tuple[str, int | None, str | None],
    votos: int,
    distrito_id: int = 2,
    seccion_id: int = 14,
) -> dict[str, str]:
    votos_tipo, agrupacion_id, lista_numero = row
    return {
        "año": "2023",
        "eleccion_tipo": "GENERAL",
        "recuento_tipo": "PROVISORIO",
        "padron_tipo": "NORMAL",
        "distrito_id": str(distrito_id),
        "distrito_nombre": f"Distrito {distrito_id}",
        "seccionprovincial_id": "0",
        "seccionprovincial_nombre": "",
        "seccion_id": str(seccion_id),
        "seccion_nombre": f"Seccion {seccion_id}",
        "circuito_id": "00001",
        "circuito_nombre": "",
        "mesa_id": mesa_code,
        "mesa_tipo": "NATIVOS",
        "mesa_electores": "350",
        "cargo_id": str(cargo_id),
        "cargo_nombre": f"Cargo {cargo_id}",
        "agrupacion_id": "" if agrupacion_id is None else str(agrupacion_id),
        "agrupacion_nombre": "" if agrupacion_id is None else f"Partido {agrupacion_id}",
        "lista_numero": lista_numero or "",
        "lista_nombre": "",
        "votos_tipo": votos_tipo,
        "votos_cantidad": str(votos),
    }


def import_typed(
    url: str,
    path: Path,
    mesas: dict[str, dict[int, list[int]]],
    distritos: dict[str, int] | None = None,
) -> None:
    """Write {mesa_code: {cargo_id: values per ROWS}} as an official CSV and import it."""
    rows = [
        official_row(mesa, cargo, row, votos, distrito_id=(distritos or {}).get(mesa, 2))
        for mesa, columns in mesas.items()
        for cargo, values in columns.items()
        for row, votos in zip(ROWS, values, strict=True)
    ]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with get_engine(url).begin() as connection:
        import_results(connection, [path])


@dataclass
class CellRead:
    """How one cell was read (defaults: confidently, digits as the value)."""

    value: int | None
    confidence: float = 0.99
    flags: list[str] = field(default_factory=list)
    digits: str | None = None
    box: list[int] | None = None


def add_reading(
    url: str,
    mesa_code: str,
    columns: dict[int, list[int | CellRead]],
    sobres: int | None,
    totals: dict[int, int | None] | None = None,
    path: str = "/scans/telegram.png",
    status: str = "done",
    finished_at: datetime | None = None,
    model_version: str = "test-model",
) -> int:
    """Insert a done scan of ``mesa_code`` read as ``columns`` (values per ROWS); its id.

    totals: each column's TOTAL cell as read (default: the sum of the column as read).
    """
    digest = hashlib.sha256(f"{mesa_code}{path}{finished_at}{model_version}".encode()).hexdigest()
    with transaction(url) as session:
        scan = Scan(
            path=path,
            sha256=digest,
            size_bytes=1000,
            mesa_code=mesa_code,
            form="test-form",
            status=status,
            finished_at=finished_at or datetime.now(UTC),
        )
        session.add(scan)
        session.flush()
        recognition = Recognition(
            scan_id=scan.id,
            mesa_code=mesa_code,
            form="test-form",
            model_version=model_version,
            fit_score=0.9,
            votantes=sobres,
            sobres=sobres,
            diferencia=0,
            header={},
        )
        session.add(recognition)
        session.flush()
        x = 0
        for cargo_id, cells in columns.items():
            read = [c if isinstance(c, CellRead) else CellRead(c) for c in cells]
            for row, cell in zip(ROWS, read, strict=True):
                votos_tipo, agrupacion_id, lista_numero = row
                x += 20
                session.add(
                    CellReading(
                        recognition_id=recognition.id,
                        mesa_code=mesa_code,
                        cargo_id=cargo_id,
                        votos_tipo=votos_tipo,
                        agrupacion_id=agrupacion_id,
                        lista_numero=lista_numero,
                        value=cell.value,
                        confidence=cell.confidence,
                        flags=cell.flags,
                        digits=cell.digits
                        if cell.digits is not None
                        else (None if cell.value is None else str(cell.value)),
                        box=cell.box or [x, 10, x + 18, 28],
                    )
                )
            known = [c.value for c in read]
            total = (totals or {}).get(cargo_id, sum(v for v in known if v is not None))
            session.add(
                CellReading(
                    recognition_id=recognition.id,
                    mesa_code=mesa_code,
                    cargo_id=cargo_id,
                    votos_tipo="TOTAL",
                    value=total,
                    confidence=0.99,
                    flags=[],
                    digits=None if total is None else str(total),
                )
            )
        return scan.id


def verdicts(url: str, mesa_code: str | None = None) -> dict[tuple, dict]:
    """{(mesa_code, cargo_id, votos_tipo, agrupacion_id, lista_numero): row as dict}."""
    query = "SELECT * FROM cell_verdict" + (" WHERE mesa_code = :mesa" if mesa_code else "")
    with get_engine(url).connect() as connection:
        rows = connection.execute(text(query), {"mesa": mesa_code}).mappings().all()
    return {
        (
            r["mesa_code"],
            r["cargo_id"],
            r["votos_tipo"],
            r["agrupacion_id"],
            r["lista_numero"],
        ): dict(r)
        for r in rows
    }


def key(mesa_code: str, cargo_id: int, row_index: int) -> tuple:
    return (mesa_code, cargo_id, *ROWS[row_index])


def scan_ids(url: str) -> list[int]:
    with get_engine(url).connect() as connection:
        return list(connection.execute(select(Scan.id).order_by(Scan.id)).scalars())
