"""Import speed of `escrutinio import-results` on a generated official-format CSV.

    .venv/bin/python bench/bench_import.py --rows 1000000 [--database-url URL]

Writes a file of ROWS rows (mesas x 4 offices x 7 parties + 5 other vote types) under
/tmp, imports it twice into a scratch database (first import = all inserts, second =
all unchanged) and prints rows/s for both. Uses ESCRUTINIO_DATABASE_URL's server or the
embedded one.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import time
from pathlib import Path

from scratch import migrated_scratch_database

from db.importer import COLUMNS, import_results
from db.session import get_engine

PARTIES = [(132, "JUNTOS POR EL CAMBIO"), (133, "HACEMOS POR NUESTRO PAIS"),
           (134, "UNION POR LA PATRIA"), (135, "LA LIBERTAD AVANZA"),
           (136, "FRENTE DE IZQUIERDA Y DE TRABAJADORES - UNIDAD"), (137, "PARTIDO A"),
           (138, "PARTIDO B")]  # fmt: skip
OTHERS = ["EN BLANCO", "NULO", "RECURRIDO", "IMPUGNADO", "COMANDO"]
OFFICES = [(1, "PRESIDENTE Y VICE"), (2, "PARLAMENTARIO MERCOSUR NACIONAL"),
           (3, "DIPUTADO NACIONAL"), (4, "PARLAMENTARIO MERCOSUR REGIONAL")]  # fmt: skip


def write_file(path: Path, rows: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    per_mesa = len(OFFICES) * (len(PARTIES) + len(OTHERS))
    written = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        mesa = 0
        while written + per_mesa <= rows:
            mesa += 1
            distrito, seccion = 1 + mesa % 24, 1 + mesa % 130
            code = f"{distrito:02d}{seccion:03d}{mesa:05d}X"
            place = [2023, "GENERAL", "PROVISORIO", "NORMAL", distrito, f"Distrito {distrito}",
                     "", "", seccion, f"Seccion {seccion}", f"{mesa % 900:05d}", "", code,
                     "NATIVOS", rng.randint(250, 350)]  # fmt: skip
            for cargo_id, cargo in OFFICES:
                for agrupacion_id, party in PARTIES:
                    writer.writerow([*place, cargo_id, cargo, agrupacion_id, party, "", "",
                                     "POSITIVO", rng.randint(0, 120)])  # fmt: skip
                for votos_tipo in OTHERS:
                    writer.writerow([*place, cargo_id, cargo, "", "", "", "", votos_tipo,
                                     rng.randint(0, 5)])  # fmt: skip
            written += per_mesa
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=os.environ.get("ESCRUTINIO_DATABASE_URL", ""))
    args = parser.parse_args()

    path = Path(f"/tmp/escrutinio-bench-import-{args.rows}.csv")
    started = time.perf_counter()
    rows = write_file(path, args.rows)
    print(f"generated {rows} rows ({path.stat().st_size / 1e6:.0f} MB) "
          f"in {time.perf_counter() - started:.1f} s")  # fmt: skip

    with migrated_scratch_database(args.database_url) as url:
        for label in ("first import (inserts)", "second import (unchanged)"):
            started = time.perf_counter()
            with get_engine(url).begin() as connection:
                stats = import_results(connection, [path])
            seconds = time.perf_counter() - started
            print(f"{label}: {stats.rows_read} rows in {seconds:.1f} s = "
                  f"{stats.rows_read / seconds:,.0f} rows/s "
                  f"(inserted {stats.inserted}, updated {stats.updated}, "
                  f"unchanged {stats.unchanged})")  # fmt: skip
    path.unlink()


if __name__ == "__main__":
    main()
