"""Reconciliation speed: CELLS typed-and-read cells reconciled (set-based SQL, one transaction).

    .venv/bin/python bench/bench_reconcile.py --cells 1000000 [--database-url URL]

Generates, with SQL generate_series in a scratch database, CELLS / 32 mesas of 4 offices x
8 rows (6 lists, blank, null): the manual entries (0.5% with a typing error), one done scan per
mesa with a current recognition, its cell readings (0.5% confidently misread by one, 2% at
confidence 0.5) and each column's TOTAL cell. Then times:
  1. a full run on the fresh data (every verdict inserted),
  2. a second full run (nothing changes: every verdict compared, none written),
  3. an incremental run after re-typing one cell in 1% of the mesas,
  4. an incremental run with nothing dirty.
Uses ESCRUTINIO_DATABASE_URL's server or the embedded one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scratch import migrated_scratch_database  # noqa: E402

from db.reconcile import reconcile  # noqa: E402
from db.session import get_engine  # noqa: E402

CELLS_PER_MESA = 32  # 4 offices x (6 lists + blank + null)

_GENERATE = [
    "INSERT INTO election (id, year, eleccion_tipo, recuento_tipo) "
    "VALUES (1, 2023, 'GENERAL', 'PROVISORIO')",
    "INSERT INTO district (distrito_id, nombre) VALUES (1, 'Distrito 1')",
    "INSERT INTO section (id, distrito_id, seccion_id) VALUES (1, 1, 1)",
    "INSERT INTO circuit (id, section_id, circuito_id) VALUES (1, 1, '00001')",
    "INSERT INTO office (id, election_id, cargo_id) SELECT c, 1, c FROM generate_series(1, 4) c",
    "INSERT INTO party (id, election_id, agrupacion_id) "
    "SELECT p, 1, 100 + p FROM generate_series(1, 6) p",
    "INSERT INTO party_list (id, party_id, lista_numero) "
    "SELECT p, p, '' FROM generate_series(1, 6) p",
    """INSERT INTO mesa (id, election_id, mesa_code, circuit_id)
       SELECT i, 1, lpad(i::text, 10, '0') || 'X', 1 FROM generate_series(1, :mesas) i""",
    """CREATE TABLE bench_cell AS
       SELECT i, c, r, lpad(i::text, 10, '0') || 'X' AS code,
              CASE WHEN r <= 6 THEN 'POSITIVO' WHEN r = 7 THEN 'EN BLANCO' ELSE 'NULO' END
                  AS votos_tipo,
              (i * 31 + r * 17) % 97 AS v
       FROM generate_series(1, :mesas) i, generate_series(1, 4) c, generate_series(1, 8) r""",
    """INSERT INTO manual_entry (mesa_id, office_id, votos_tipo, list_id, votos_cantidad)
       SELECT i, c, votos_tipo, CASE WHEN r <= 6 THEN r END,
              v + CASE WHEN (i * 7 + c * 3 + r * 11) % 200 = 0 THEN 100 ELSE 0 END
       FROM bench_cell""",
    """INSERT INTO scan (id, path, sha256, size_bytes, mesa_code, form, status, finished_at)
       SELECT i, '/scans/' || i || '.png', md5(i::text) || md5(i::text), 1,
              lpad(i::text, 10, '0') || 'X', 'bench', 'done', now()
       FROM generate_series(1, :mesas) i""",
    """INSERT INTO recognition (id, scan_id, mesa_code, form, model_version, fit_score, sobres)
       SELECT i, i, min(code), 'bench', 'bench', 1.0, sum(v)
       FROM bench_cell WHERE c = 1 GROUP BY i""",
    """INSERT INTO cell_reading (recognition_id, mesa_code, cargo_id, votos_tipo, agrupacion_id,
                                lista_numero, value, confidence, digits, box)
       SELECT i, code, c, votos_tipo, CASE WHEN r <= 6 THEN 100 + r END,
              CASE WHEN r <= 6 THEN '' END, read, confidence, read::text,
              ARRAY[100, 100 + 30 * r, 160, 128 + 30 * r]
       FROM (SELECT *, v + CASE WHEN (i * 13 + c * 5 + r * 7) % 200 = 1 THEN 1 ELSE 0 END AS read,
                    CASE WHEN (i * 3 + c + r) % 50 = 0 THEN 0.5 ELSE 0.99 END AS confidence
             FROM bench_cell) cells
       UNION ALL
       SELECT i, min(code), c, 'TOTAL', NULL, NULL, sum(v), 0.99, sum(v)::text, NULL
       FROM bench_cell GROUP BY i, c""",
    "DROP TABLE bench_cell",
    "ANALYZE",
]


def generate(url: str, mesas: int) -> None:
    with get_engine(url).begin() as connection:
        for statement in _GENERATE:
            connection.execute(text(statement), {"mesas": mesas})


def _timed(label: str, url: str, full: bool) -> None:
    stats = reconcile(url, full=full)
    rate = stats.cells / stats.seconds if stats.seconds else 0
    print(
        f"{label}: {stats.cells:,} cells of {stats.mesas:,} mesas in {stats.seconds:.1f} s "
        f"= {rate:,.0f} cells/s (inserted {stats.inserted:,}, updated {stats.updated:,}, "
        f"deleted {stats.deleted:,})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=os.environ.get("ESCRUTINIO_DATABASE_URL", ""))
    args = parser.parse_args()
    mesas = max(1, args.cells // CELLS_PER_MESA)

    with migrated_scratch_database(args.database_url) as url:
        started = time.perf_counter()
        generate(url, mesas)
        print(
            f"generated {mesas:,} mesas, {mesas * CELLS_PER_MESA:,} typed and read cells "
            f"in {time.perf_counter() - started:.1f} s"
        )
        _timed("full run, fresh data", url, full=True)
        with get_engine(url).connect() as connection:
            counts = connection.execute(
                text("SELECT verdict, count(*) FROM cell_verdict GROUP BY 1 ORDER BY 1")
            ).all()
        print("verdicts: " + ", ".join(f"{v} {n:,}" for v, n in counts))
        _timed("full run again (unchanged)", url, full=True)
        with get_engine(url).begin() as connection:
            connection.execute(
                text("""UPDATE manual_entry SET votos_cantidad = votos_cantidad + 1
                        WHERE office_id = 1 AND list_id = 1 AND mesa_id % 100 = 0""")
            )
        _timed("incremental, 1% of mesas re-typed", url, full=False)
        _timed("incremental, nothing dirty", url, full=False)


if __name__ == "__main__":
    main()
