"""Reconciliation: every cell's reading against its manual entry, as a verdict with evidence.

For each mesa to reconcile, the reading that counts is the current recognition of the mesa's
latest done scan (view ``v_current_recognition``), and the manual side is the mesa row of the
latest election holding that code. Cells are matched on the natural keys (cargo_id, votos_tipo,
agrupacion_id, lista_numero); the telegram's TOTAL cells are evidence, not cells to judge.

Per mesa, the *envelopes* every column must add up to: the official per-mesa sobres when
known, else the value most of the telegram's header sobres, its columns' TOTAL cells and the
typed column sums agree on (ties: the header's), so one misread total or one mistyped column
does not move it. Per column (mesa x office):
- the reading column is *consistent* when every cell was read and the non-total cells add up
  to the TOTAL cell and to the header's sobres as read (each one that was read; at least one);
- the manual column is *consistent* when the typed entries add up to the envelopes;
- the manual column is *repairable* by a cell's reading when replacing the cell's typed value
  by its reading, or the typed values of all the column's confidently read disagreeing cells
  by their readings, makes the column add up to the envelopes.

Per cell, the first rule that applies:
  MISSING_READING  no reading for the cell (no done scan, or the reading lacks that cell);
  MISSING_MANUAL   no typed entry for the cell;
  MATCH            both values equal;
  READING_UNSURE   the reading has no value, is below the confidence threshold, or carries a
                   review flag about the cell itself (ILLEGIBLE, LOW_CONFIDENCE, STRUCK_THROUGH);
  MANUAL_SUSPECT   the manual column is not consistent, and either the reading column is (the
                   telegram says 121, the column sums to the 275 envelopes, the typed entry is
                   21) or the confident readings repair the typed column (a misread neighbour
                   spoils the reading column's sum, but this cell's reading is exactly what
                   the typed column lacks);
  READING_UNSURE   the reading carries a column or header review flag (SUM_MISMATCH, ...);
  READING_SUSPECT  otherwise: they disagree and the typed side is the consistent one (or
                   neither side is, in which case the official data is presumed right).

Everything is set-based SQL over temporary tables, in one transaction per run. Incremental
runs take the mesas marked in ``reconcile_dirty_mesa`` (triggers mark every mesa whose scans,
readings, header or manual entries change) and clear, at commit, the marks they read;
``full=True`` takes every known mesa. Stored verdicts are compared with the new ones in one
join: rows are written only when something in them changed and removed when their cell
disappeared, so running twice changes nothing. Runs are serialised with an advisory lock.
(``bench/bench_reconcile.py``: a million cells in well under a minute.)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from sqlalchemy import Connection, text

from db.session import get_engine
from pipeline.decode import REVIEW_FLAGS, Flag

#: Review flags about the cell itself; SUM_MISMATCH and HEADER_MISMATCH are about its column
#: or the header, i.e. possibly about other cells.
CELL_REVIEW_FLAGS = REVIEW_FLAGS - {Flag.SUM_MISMATCH, Flag.HEADER_MISMATCH}

#: Key of the advisory lock that serialises reconciliation runs.
RECONCILE_LOCK_ID = 0x7265636F
#: Memory per sort/hash of a run: a full run of a million cells joins in memory instead of
#: spilling sorts to disk.
WORK_MEM = "128MB"

_BATCH = """
CREATE TEMP TABLE rc_batch (mesa_code varchar(32) PRIMARY KEY, mark bigint) ON COMMIT DROP
"""
# The marks are read, not deleted: deleting them here would make every writer marking one
# of these mesas wait until the run commits.
_TAKE_DIRTY = "INSERT INTO rc_batch SELECT mesa_code, mark FROM reconcile_dirty_mesa"
_TAKE_ALL = """
INSERT INTO rc_batch
SELECT known.mesa_code, dirty.mark
FROM (SELECT mesa_code FROM mesa
      UNION SELECT mesa_code FROM scan WHERE mesa_code IS NOT NULL
      UNION SELECT mesa_code FROM recognition WHERE mesa_code IS NOT NULL
      UNION SELECT mesa_code FROM cell_verdict
      UNION SELECT mesa_code FROM reconcile_dirty_mesa) known
LEFT JOIN reconcile_dirty_mesa dirty ON dirty.mesa_code = known.mesa_code
"""
# Marks set again since they were read (a new mark) stay for the next run.
_CLEAR_MARKS = """
DELETE FROM reconcile_dirty_mesa d USING rc_batch b
WHERE d.mesa_code = b.mesa_code AND d.mark = b.mark
"""

# Natural keys normalised to the convention: POSITIVO carries agrupacion_id and lista_numero
# ("" when none), other vote types carry neither.
_STEPS = [
    (
        "rc_mesa",
        """SELECT DISTINCT ON (m.mesa_code) m.mesa_code, m.id AS mesa_id, m.sobres
       FROM mesa m JOIN rc_batch b ON b.mesa_code = m.mesa_code
       ORDER BY m.mesa_code, m.election_id DESC""",
    ),
    (
        "rc_recognition",
        """SELECT cur.mesa_code, cur.recognition_id, cur.scan_id, cur.sobres
       FROM v_current_recognition cur JOIN rc_batch b ON b.mesa_code = cur.mesa_code""",
    ),
    (
        "rc_verdict",
        """WITH reading AS MATERIALIZED (
              SELECT c.id, rr.mesa_code, c.cargo_id, c.votos_tipo,
                     CASE WHEN c.votos_tipo = 'POSITIVO' THEN c.agrupacion_id END
                         AS agrupacion_id,
                     CASE WHEN c.votos_tipo = 'POSITIVO' THEN coalesce(c.lista_numero, '') END
                         AS lista_numero,
                     c.value, c.confidence, c.flags, c.digits
              FROM rc_recognition rr
              JOIN cell_reading c ON c.recognition_id = rr.recognition_id
          ), manual AS MATERIALIZED (
              SELECT e.id, rm.mesa_code, o.cargo_id, e.votos_tipo, p.agrupacion_id,
                     CASE WHEN e.votos_tipo = 'POSITIVO' THEN coalesce(pl.lista_numero, '') END
                         AS lista_numero,
                     e.votos_cantidad
              FROM rc_mesa rm
              JOIN manual_entry e ON e.mesa_id = rm.mesa_id
              JOIN office o ON o.id = e.office_id
              LEFT JOIN party_list pl ON pl.id = e.list_id
              LEFT JOIN party p ON p.id = pl.party_id
          ), reading_column AS (
              SELECT mesa_code, cargo_id,
                     sum(value) FILTER (WHERE votos_tipo <> 'TOTAL') AS column_sum,
                     count(*) FILTER (WHERE votos_tipo <> 'TOTAL' AND value IS NULL) AS unread,
                     max(value) FILTER (WHERE votos_tipo = 'TOTAL') AS column_total
              FROM reading GROUP BY mesa_code, cargo_id
          ), manual_column AS (
              SELECT mesa_code, cargo_id, sum(votos_cantidad) AS column_sum
              FROM manual GROUP BY mesa_code, cargo_id
          ), cell AS (
              SELECT coalesce(r.mesa_code, m.mesa_code) AS mesa_code,
                     coalesce(r.cargo_id, m.cargo_id) AS cargo_id,
                     coalesce(r.votos_tipo, m.votos_tipo) AS votos_tipo,
                     coalesce(r.agrupacion_id, m.agrupacion_id) AS agrupacion_id,
                     coalesce(r.lista_numero, m.lista_numero) AS lista_numero,
                     m.id AS manual_entry_id, m.votos_cantidad AS manual_value,
                     r.id AS cell_reading_id, r.value AS reading_value,
                     r.confidence AS reading_confidence,
                     coalesce(r.flags, '{}') AS reading_flags, r.digits AS reading_digits
              FROM (SELECT * FROM reading WHERE votos_tipo <> 'TOTAL') r
              FULL JOIN manual m
                ON m.mesa_code = r.mesa_code AND m.cargo_id = r.cargo_id
               AND m.votos_tipo = r.votos_tipo
               AND coalesce(m.agrupacion_id, -1) = coalesce(r.agrupacion_id, -1)
               AND coalesce(m.lista_numero, '') = coalesce(r.lista_numero, '')
          ), confident_change AS (
              -- per column: what replacing the typed values of the confidently read,
              -- disagreeing cells by their readings adds to the typed sum
              SELECT mesa_code, cargo_id, sum(reading_value - manual_value) AS delta
              FROM cell
              WHERE reading_value <> manual_value
                AND reading_confidence >= :threshold
                AND NOT reading_flags && CAST(:cell_review_flags AS text[])
              GROUP BY mesa_code, cargo_id
          ), envelope_candidate AS (
              SELECT mesa_code, sobres AS envelopes, true AS from_header
              FROM rc_recognition WHERE sobres IS NOT NULL
              UNION ALL
              SELECT mesa_code, column_total, false
              FROM reading_column WHERE column_total IS NOT NULL
              UNION ALL
              SELECT mesa_code, column_sum, false FROM manual_column
          ), voted_envelopes AS (
              SELECT DISTINCT ON (mesa_code) mesa_code, envelopes
              FROM envelope_candidate
              GROUP BY mesa_code, envelopes
              ORDER BY mesa_code, count(*) DESC, bool_or(from_header) DESC, envelopes
          ), evidence AS (
              SELECT c.*, rm.mesa_id, rr.scan_id, rr.recognition_id,
                     mc.column_sum AS manual_column_sum, rc.column_sum AS reading_column_sum,
                     rc.column_total AS reading_column_total, rr.sobres AS reading_sobres,
                     rm.sobres AS manual_sobres,
                     coalesce(rm.sobres, ve.envelopes) AS envelopes,
                     coalesce(rc.unread = 0
                              AND coalesce(rc.column_total, rr.sobres) IS NOT NULL
                              AND (rc.column_total IS NULL OR rc.column_sum = rc.column_total)
                              AND (rr.sobres IS NULL OR rc.column_sum = rr.sobres), false)
                         AS reading_column_consistent,
                     coalesce(mc.column_sum = coalesce(rm.sobres, ve.envelopes), false)
                         AS manual_column_consistent,
                     coalesce(c.manual_value <> c.reading_value
                              AND coalesce(rm.sobres, ve.envelopes) IN (
                                  mc.column_sum - c.manual_value + c.reading_value,
                                  mc.column_sum + cc.delta), false)
                         AS manual_column_repairable
              FROM cell c
              LEFT JOIN rc_mesa rm ON rm.mesa_code = c.mesa_code
              LEFT JOIN rc_recognition rr ON rr.mesa_code = c.mesa_code
              LEFT JOIN voted_envelopes ve ON ve.mesa_code = c.mesa_code
              LEFT JOIN reading_column rc
                     ON rc.mesa_code = c.mesa_code AND rc.cargo_id = c.cargo_id
              LEFT JOIN manual_column mc
                     ON mc.mesa_code = c.mesa_code AND mc.cargo_id = c.cargo_id
              LEFT JOIN confident_change cc
                     ON cc.mesa_code = c.mesa_code AND cc.cargo_id = c.cargo_id
          )
          SELECT e.*,
                 CASE
                   WHEN e.cell_reading_id IS NULL THEN 'MISSING_READING'
                   WHEN e.manual_entry_id IS NULL THEN 'MISSING_MANUAL'
                   WHEN e.reading_value = e.manual_value THEN 'MATCH'
                   WHEN e.reading_value IS NULL OR e.reading_confidence < :threshold
                        OR e.reading_flags && CAST(:cell_review_flags AS text[])
                        THEN 'READING_UNSURE'
                   WHEN NOT e.manual_column_consistent
                        AND ((e.reading_column_consistent
                              AND NOT e.reading_flags && CAST(:review_flags AS text[]))
                             OR e.manual_column_repairable)
                        THEN 'MANUAL_SUSPECT'
                   WHEN e.reading_flags && CAST(:review_flags AS text[]) THEN 'READING_UNSURE'
                   ELSE 'READING_SUSPECT'
                 END AS verdict
          FROM evidence e""",
    ),
]

#: Temp tables the planner needs statistics of: the small per-mesa ones, and the rows to
#: write, whose number decides between index probes (a few changes) and hash joins. The
#: big rc_verdict it sizes from its pages well enough (ANALYZE of it costs ~1 s per 250k).
_ANALYZED = {"rc_mesa", "rc_recognition", "rc_diff"}

_KEY_MATCH = """n.mesa_code = v.mesa_code AND n.cargo_id = v.cargo_id
        AND n.votos_tipo = v.votos_tipo
        AND coalesce(n.agrupacion_id, -1) = coalesce(v.agrupacion_id, -1)
        AND coalesce(n.lista_numero, '') = coalesce(v.lista_numero, '')"""

_EVIDENCE_COLUMNS = (
    "verdict", "manual_entry_id", "cell_reading_id", "manual_value", "reading_value",
    "reading_confidence", "manual_column_sum", "reading_column_sum", "mesa_id", "scan_id",
    "recognition_id", "reading_flags", "reading_digits", "reading_column_total",
    "reading_sobres", "manual_sobres", "reading_column_consistent", "manual_column_consistent",
    "envelopes", "manual_column_repairable",
)  # fmt: skip
_KEY_COLUMNS = ("mesa_code", "cargo_id", "votos_tipo", "agrupacion_id", "lista_numero")


def _columns(prefix: str, names: tuple[str, ...]) -> str:
    return ", ".join(f"{prefix}.{name}" for name in names)


# What to write: the batch's stored verdicts fully joined to the new ones, once, keeping the
# rows that differ (computed before any write, so no statement reads its own target).
_DIFF = (
    "rc_diff",
    f"""SELECT v.id AS stored_id, n.*
        FROM (SELECT stored.* FROM cell_verdict stored
              JOIN rc_batch b ON b.mesa_code = stored.mesa_code) v
        FULL JOIN rc_verdict n ON {_KEY_MATCH}
        WHERE v.id IS NULL OR n.mesa_code IS NULL
           OR ({_columns("v", _EVIDENCE_COLUMNS)})
              IS DISTINCT FROM ({_columns("n", _EVIDENCE_COLUMNS)})""",
)

_DELETE_STALE = """
DELETE FROM cell_verdict WHERE id IN (SELECT stored_id FROM rc_diff WHERE mesa_code IS NULL)
"""

_UPDATE_CHANGED = f"""
UPDATE cell_verdict SET ({", ".join(_EVIDENCE_COLUMNS)}, updated_at)
    = ({_columns("n", _EVIDENCE_COLUMNS)}, now())
FROM rc_diff n
WHERE cell_verdict.id = n.stored_id AND n.mesa_code IS NOT NULL
"""

_INSERT_NEW = f"""
INSERT INTO cell_verdict ({", ".join(_KEY_COLUMNS + _EVIDENCE_COLUMNS)})
SELECT {_columns("n", _KEY_COLUMNS + _EVIDENCE_COLUMNS)} FROM rc_diff n
WHERE n.stored_id IS NULL
"""


@dataclass(frozen=True)
class ReconcileStats:
    """What one run did. ``skipped``: another run held the lock (and ``wait`` was False)."""

    full: bool
    mesas: int = 0
    cells: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    seconds: float = 0.0
    skipped: bool = False

    @property
    def unchanged(self) -> int:
        return self.cells - self.inserted - self.updated

    def as_dict(self) -> dict:
        return {**asdict(self), "unchanged": self.unchanged}


def reconcile_on(
    connection: Connection, full: bool = False, threshold: float = 0.9, wait: bool = True
) -> ReconcileStats:
    """Reconcile inside the caller's transaction on ``connection`` (commit is the caller's).

    full: every known mesa instead of the dirty ones. threshold: confidence (0..1) below
    which a disagreeing reading is READING_UNSURE. wait: block until a concurrent run ends
    (False: return ``skipped`` at once, as the periodic task does).
    """
    started = time.perf_counter()
    if wait:
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": RECONCILE_LOCK_ID})
    else:
        locked = connection.execute(
            text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": RECONCILE_LOCK_ID}
        ).scalar_one()
        if not locked:
            return ReconcileStats(full=full, skipped=True)
    connection.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    connection.execute(text(_BATCH))
    connection.execute(text(_TAKE_ALL if full else _TAKE_DIRTY))
    mesas = connection.execute(text("SELECT count(*) FROM rc_batch")).scalar_one()
    if mesas == 0:
        connection.execute(text("DROP TABLE rc_batch"))
        return ReconcileStats(full=full, seconds=time.perf_counter() - started)
    connection.execute(text("ANALYZE rc_batch"))
    parameters = {
        "threshold": threshold,
        "review_flags": sorted(REVIEW_FLAGS),
        "cell_review_flags": sorted(CELL_REVIEW_FLAGS),
    }
    for table, query in [*_STEPS, _DIFF]:
        connection.execute(text(f"CREATE TEMP TABLE {table} ON COMMIT DROP AS {query}"), parameters)
        if table in _ANALYZED:
            connection.execute(text(f"ANALYZE {table}"))
    cells = connection.execute(text("SELECT count(*) FROM rc_verdict")).scalar_one()
    deleted = connection.execute(text(_DELETE_STALE)).rowcount
    updated = connection.execute(text(_UPDATE_CHANGED)).rowcount
    inserted = connection.execute(text(_INSERT_NEW)).rowcount
    connection.execute(text(_CLEAR_MARKS))
    for table, _ in reversed([*_STEPS, _DIFF]):
        connection.execute(text(f"DROP TABLE {table}"))
    connection.execute(text("DROP TABLE rc_batch"))
    stats = ReconcileStats(
        full=full,
        mesas=int(mesas),
        cells=int(cells),
        inserted=int(inserted),
        updated=int(updated),
        deleted=int(deleted),
        seconds=time.perf_counter() - started,
    )
    connection.execute(
        text(
            """INSERT INTO reconcile_run (full_run, seconds, mesas, cells, inserted, updated,
                                          deleted)
               VALUES (:full, :seconds, :mesas, :cells, :inserted, :updated, :deleted)"""
        ),
        {k: v for k, v in asdict(stats).items() if k != "skipped"},
    )
    return stats


def reconcile(
    database_url: str, full: bool = False, threshold: float = 0.9, wait: bool = True
) -> ReconcileStats:
    """Reconcile the dirty mesas (or all with ``full``) in one transaction; see the module doc."""
    with get_engine(database_url).begin() as connection:
        return reconcile_on(connection, full=full, threshold=threshold, wait=wait)
