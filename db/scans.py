"""The scan queue in SQL: register, claim, record readings, fail, count, retry.

A scan's life is ``registered -> queued -> processing -> done | failed`` (``ScanStatus``).
Every transition is one guarded statement, so duplicate or concurrent deliveries of
the same chunk are harmless:

- ``register_scans`` inserts in bulk with ``ON CONFLICT (sha256) DO NOTHING``: a file
  seen before (same bytes, any path) is not registered twice.
- ``claim_scans`` takes a PostgreSQL *session* advisory lock per scan on the worker's
  connection (key ``(SCAN_LOCK_NAMESPACE, scan id)``) and only then moves the scan to
  ``processing`` and counts the claim in ``scan.attempts``. The lock lives as long as
  the worker's database session: a second worker cannot claim a scan that a live
  worker holds, and when a worker dies (kill -9, out of memory, hard time limit) its
  connection closes, PostgreSQL drops the lock, and the redelivered message may claim
  the scan again. A scan claimed ``max_claims`` times without finishing is marked
  failed instead of being read again: the redelivery cap.
- ``save_readings`` writes recognitions, cell readings and the ``done`` transition in
  the caller's transaction with ``INSERT ... ON CONFLICT DO UPDATE`` on the unique keys,
  so a chunk read twice leaves exactly one set of rows.

Scan ids must stay below 2**31 (the advisory lock key is two int4).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.models import CellReading, Recognition, Scan, ScanStatus

#: First int4 of every scan advisory lock key ("ESCR"); the second is the scan id.
SCAN_LOCK_NAMESPACE = 0x45534352
#: The image files ``find_scan_files`` picks up in a folder.
SCAN_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})
#: An official mesa code: district (2) + section (3) + number (5) digits and a letter.
MESA_CODE = re.compile(r"(?<![0-9])(\d{10}[A-Za-z])(?![A-Za-z])")
#: Statuses from which a delivered chunk may (re)claim a scan.
CLAIMABLE = (ScanStatus.REGISTERED.value, ScanStatus.QUEUED.value, ScanStatus.PROCESSING.value)
_INSERT_BATCH = 1000


# --- registering -------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanFile:
    """One file to register: absolute path, content hash, size and the mesa code if known."""

    path: str
    sha256: str
    size_bytes: int
    mesa_code: str | None


def mesa_code_from_name(path: str | Path) -> str | None:
    """The mesa code in a file name ("0101406691X.png", "caba-0101406691X-p1.jpg"), or None."""
    match = MESA_CODE.search(Path(path).stem)
    return match.group(1).upper() if match else None


def find_scan_files(paths: Iterable[Path]) -> list[Path]:
    """Every image file under ``paths`` (files are taken as given, folders walked), sorted.

    Raises FileNotFoundError naming the first path that does not exist.
    """
    found: set[Path] = set()
    for path in paths:
        if path.is_file():
            found.add(path.resolve())
        elif path.is_dir():
            for root, _dirs, files in os.walk(path):
                for name in files:
                    if Path(name).suffix.lower() in SCAN_SUFFIXES:
                        found.add(Path(root, name).resolve())
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return sorted(found)


def hash_file(path: Path) -> ScanFile:
    """sha256 of the file's bytes (read in 1 MiB blocks; hashlib releases the GIL)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
            size += len(block)
    return ScanFile(str(path), digest.hexdigest(), size, mesa_code_from_name(path))


def hash_files(paths: Sequence[Path], threads: int | None = None) -> Iterator[ScanFile]:
    """``hash_file`` over a thread pool, results in input order (lazily, for a progress bar)."""
    workers = threads or min(16, (os.cpu_count() or 1) * 4)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(hash_file, paths, chunksize=64)


# Statements are built once: executed with a list of rows, SQLAlchemy sends them as
# batched multi-row INSERTs ("insertmanyvalues") without recompiling them per call, as a
# `.values(rows)` statement would (that compilation dominated the cost of a chunk's write).
_REGISTER = (
    pg_insert(Scan.__table__)
    .on_conflict_do_nothing(index_elements=["sha256"])
    .returning(Scan.__table__.c.id)
)


def register_scans(connection: Connection, files: Sequence[ScanFile], form: str) -> int:
    """Insert the scans not registered yet (by sha256) with multi-row INSERTs; return how many."""
    inserted = 0
    for start in range(0, len(files), _INSERT_BATCH):
        rows = [
            {
                "path": item.path,
                "sha256": item.sha256,
                "size_bytes": item.size_bytes,
                "mesa_code": item.mesa_code,
                "form": form,
            }
            for item in files[start : start + _INSERT_BATCH]
        ]
        inserted += len(connection.execute(_REGISTER, rows).all())
    return inserted


# --- queueing ------------------------------------------------------------------------------


def pending_scan_ids(connection: Connection, include_queued: bool) -> list[int]:
    """Ids of scans that need a chunk message: ``registered`` ones, and ``queued`` ones too
    when ``include_queued`` (the caller knows no message for them is in the broker)."""
    statuses = [ScanStatus.REGISTERED.value]
    if include_queued:
        statuses.append(ScanStatus.QUEUED.value)
    rows = connection.execute(
        text("SELECT id FROM scan WHERE status = ANY(:statuses) ORDER BY id"),
        {"statuses": statuses},
    )
    return [row.id for row in rows]


def mark_queued(connection: Connection, scan_ids: Sequence[int]) -> int:
    """registered -> queued for ``scan_ids`` (others untouched); return how many moved."""
    result = connection.execute(
        text(
            "UPDATE scan SET status = 'queued', queued_at = now(), updated_at = now() "
            "WHERE id = ANY(:ids) AND status IN ('registered', 'queued')"
        ),
        {"ids": list(scan_ids)},
    )
    return result.rowcount


def chunked(ids: Sequence[int], size: int) -> list[list[int]]:
    """``ids`` cut into lists of at most ``size``."""
    return [list(ids[start : start + size]) for start in range(0, len(ids), size)]


# --- claiming ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedScan:
    id: int
    path: str
    form: str
    mesa_code: str | None
    #: Claims including this one.
    attempts: int


@dataclass
class Claim:
    """What ``claim_scans`` did with a chunk."""

    #: Now ``processing`` and locked by this connection: read them.
    claimed: list[ClaimedScan] = field(default_factory=list)
    #: Marked failed: claimed ``max_claims`` times before without finishing.
    exhausted: list[int] = field(default_factory=list)
    #: Done, failed or unknown: nothing to do.
    skipped: list[int] = field(default_factory=list)
    #: Claimable but locked by another session: a live worker reading them, or the
    #: session of a dead one PostgreSQL has not closed yet. The caller checks again later.
    held: list[int] = field(default_factory=list)
    #: Nothing claimed because some scan had an unfinished earlier claim: the caller
    #: re-sends these ids one per chunk so one poison scan cannot sink its neighbours.
    split: list[int] = field(default_factory=list)


_LOCK_CLAIMABLE = text(
    """
    WITH candidates AS MATERIALIZED (
        SELECT id FROM scan WHERE id = ANY(:ids) AND status = ANY(:claimable) ORDER BY id
    )
    SELECT id, pg_try_advisory_lock(:namespace, id::int) AS locked FROM candidates
    """
)

_CLAIM = text(
    """
    UPDATE scan
    SET status = 'processing', attempts = attempts + 1, error = NULL,
        started_at = now(), finished_at = NULL, updated_at = now()
    WHERE id = ANY(:ids) AND status = ANY(:claimable)
    RETURNING id, path, form, mesa_code, attempts
    """
)

_EXHAUST = text(
    """
    UPDATE scan
    SET status = 'failed', finished_at = now(), updated_at = now(),
        error = 'claimed ' || attempts || ' times without finishing (the worker died, ran '
                || 'out of memory or hit the hard time limit while reading it); not retried'
    WHERE id = ANY(:ids) AND status = ANY(:claimable)
    RETURNING id
    """
)


def claim_scans(
    connection: Connection,
    scan_ids: Sequence[int],
    max_claims: int,
    forgiven_claims: int = 0,
) -> Claim:
    """Lock and claim the chunk's scans on ``connection`` (commits its own transaction).

    ``max_claims``: claims allowed per scan that did not end in a handled (transient)
    error. ``forgiven_claims``: earlier claims of this chunk that ended in a handled
    transient error (the task's retry count); they do not count against the cap and do
    not make the chunk split. The advisory locks stay held until ``release_scans``.
    """
    ids = sorted(set(scan_ids))
    params = {"ids": ids, "claimable": list(CLAIMABLE), "namespace": SCAN_LOCK_NAMESPACE}
    claim = Claim()
    with connection.begin():
        rows = connection.execute(_LOCK_CLAIMABLE, params).all()
        locked = [row.id for row in rows if row.locked]
        claimable = {row.id for row in rows}
        claim.held = [row.id for row in rows if not row.locked]
        claim.skipped = [scan_id for scan_id in ids if scan_id not in claimable]
        if not locked:
            return claim
        attempts = dict(
            connection.execute(
                text("SELECT id, attempts FROM scan WHERE id = ANY(:ids)"), {"ids": locked}
            ).all()
        )
        unfinished = {scan_id: attempts[scan_id] - forgiven_claims for scan_id in locked}
        if len(ids) > 1 and any(count > 0 for count in unfinished.values()):
            claim.split = locked
            return claim
        exhausted = [scan_id for scan_id, count in unfinished.items() if count >= max_claims]
        if exhausted:
            claim.exhausted = [
                row.id for row in connection.execute(_EXHAUST, {**params, "ids": exhausted})
            ]
        to_claim = [scan_id for scan_id in locked if scan_id not in set(exhausted)]
        if to_claim:
            claim.claimed = [
                ClaimedScan(row.id, row.path, row.form, row.mesa_code, row.attempts)
                for row in connection.execute(_CLAIM, {**params, "ids": to_claim})
            ]
    if claim.split or claim.exhausted:
        release_scans(connection, claim.split + claim.exhausted)
    return claim


def release_scans(connection: Connection, scan_ids: Sequence[int]) -> None:
    """Drop this session's advisory locks on ``scan_ids`` (no transaction needed)."""
    if not scan_ids:
        return
    with connection.begin():
        connection.execute(
            text("SELECT pg_advisory_unlock(:namespace, id::int) FROM unnest(:ids) AS id"),
            {"namespace": SCAN_LOCK_NAMESPACE, "ids": list(scan_ids)},
        )


def requeue_scans(connection: Connection, scan_ids: Sequence[int]) -> None:
    """processing -> queued for scans this worker claimed but hands back (e.g. a chunk split
    after its soft time limit); their claims stay counted. Caller's transaction."""
    connection.execute(
        text(
            "UPDATE scan SET status = 'queued', queued_at = now(), updated_at = now() "
            "WHERE id = ANY(:ids) AND status = 'processing'"
        ),
        {"ids": list(scan_ids)},
    )


# --- writing results --------------------------------------------------------------------


def mark_failed(connection: Connection, failures: dict[int, str]) -> int:
    """processing -> failed with a reason per scan id; caller's transaction; return how many."""
    if not failures:
        return 0
    result = connection.execute(
        text(
            "UPDATE scan SET status = 'failed', error = :error, finished_at = now(), "
            "updated_at = now() WHERE id = :id AND status = 'processing'"
        ),
        [{"id": scan_id, "error": reason[:2000]} for scan_id, reason in failures.items()],
    )
    return result.rowcount


def _header_json(header: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {
            "value": item.value,
            "confidence": float(item.confidence),
            "flags": list(item.flags),
        }
        for name, item in header.items()
    }


def _header_int(header: dict[str, Any], name: str) -> int | None:
    item = header.get(name)
    value = getattr(item, "value", None)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _upsert(table, conflict: dict[str, object], update: tuple[str, ...]):
    insert = pg_insert(table)
    return insert.on_conflict_do_update(
        **conflict, set_={name: insert.excluded[name] for name in update}
    )


_UPSERT_RECOGNITION = _upsert(
    Recognition.__table__,
    {"index_elements": ["scan_id", "model_version"]},
    ("mesa_code", "form", "fit_score", "votantes", "sobres", "diferencia", "header", "is_current"),
).returning(Recognition.__table__.c.id, Recognition.__table__.c.scan_id)
# RETURNING makes SQLAlchemy send the rows in multi-row INSERTs of up to 1,000 rows
# ("insertmanyvalues"); without it, SQLAlchemy 2.1 sends an INSERT with an ON CONFLICT clause
# one row per statement: 720 round trips and 240 ms for a chunk of eight 90-cell telegrams. The
# rows of one call never share a key (one reading per scan, one cell per field), so a batch
# cannot meet a row twice.
_UPSERT_CELL = _upsert(
    CellReading.__table__,
    {"constraint": "uq_cell_reading_cell"},
    ("mesa_code", "value", "confidence", "flags", "digits", "digit_confidences", "box"),
).returning(CellReading.__table__.c.id)


def _floats(values: Sequence[float] | None) -> list[float] | None:
    return None if values is None else [float(value) for value in values]


def save_readings(
    connection: Connection,
    readings: Sequence[tuple[ClaimedScan, Any]],
    form: str,
) -> int:
    """Write the readings of claimed scans and mark them done; caller's transaction.

    ``readings``: (claimed scan, ``pipeline.read.TelegramReading`` without error). For
    each scan: one ``recognition`` per (scan, model version), upserted and made the
    scan's current one (other versions of the scan lose ``is_current`` first); one
    ``cell_reading`` per cell, upserted on its natural key. Returns cell rows written.
    """
    if not readings:
        return 0
    scan_ids = [claimed.id for claimed, _ in readings]
    # Other model versions of these scans stop being current before this one becomes so.
    connection.execute(
        text(
            "UPDATE recognition SET is_current = false "
            "WHERE scan_id = ANY(:ids) AND is_current AND model_version <> ALL(:versions)"
        ),
        {"ids": scan_ids, "versions": sorted({reading.model_version for _, reading in readings})},
    )
    rows = []
    for claimed, reading in readings:
        rows.append(
            {
                "scan_id": claimed.id,
                "mesa_code": reading.mesa_id or claimed.mesa_code,
                "form": reading.form or form,
                "model_version": reading.model_version,
                "fit_score": float(reading.fit_score),
                "votantes": _header_int(reading.header, "votantes"),
                "sobres": _header_int(reading.header, "sobres"),
                "diferencia": _header_int(reading.header, "diferencia"),
                "header": _header_json(reading.header),
                "is_current": True,
            }
        )
    upserted = connection.execute(_UPSERT_RECOGNITION, rows)
    recognition_ids = {row.scan_id: row.id for row in upserted}

    cells = []
    for claimed, reading in readings:
        mesa_code = reading.mesa_id or claimed.mesa_code
        for cell in reading.cells:
            cells.append(
                {
                    "recognition_id": recognition_ids[claimed.id],
                    "mesa_code": mesa_code,
                    "cargo_id": int(cell.cargo_id),
                    "votos_tipo": cell.votos_tipo,
                    "agrupacion_id": cell.agrupacion_id,
                    "lista_numero": cell.lista_numero,
                    "value": None if cell.value is None else int(cell.value),
                    "confidence": min(1.0, max(0.0, float(cell.confidence))),
                    "flags": list(cell.flags),
                    "digits": cell.digits,
                    "digit_confidences": _floats(cell.digit_confidences),
                    "box": [int(v) for v in cell.box] if cell.box is not None else None,
                }
            )
    if cells:
        connection.execute(_UPSERT_CELL, cells)
    connection.execute(
        text(
            "UPDATE scan SET status = 'done', error = NULL, finished_at = now(), "
            "updated_at = now(), mesa_code = coalesce(mesa_code, :mesa) "
            "WHERE id = :id AND status = 'processing'"
        ),
        [{"id": claimed.id, "mesa": reading.mesa_id} for claimed, reading in readings],
    )
    return len(cells)


# --- reporting and retrying ------------------------------------------------------------


_STALLED = """
    status = 'processing' AND NOT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND database = (
            SELECT oid FROM pg_database WHERE datname = current_database())
          AND classid = CAST(:namespace AS oid) AND objid = CAST(scan.id AS oid)
          AND objsubid = 2 AND granted)
"""


@dataclass
class QueueStatus:
    """Scans by status and how fast they finish."""

    scans: dict[str, int]
    #: ``processing`` scans that no live worker holds (their worker died and no message
    #: for them is left, e.g. after its transient-error retries ran out).
    stalled: int
    done_last_minute: int
    #: Scans finished per second over the last minute.
    rate_per_second: float
    #: The most common failure reasons: (reason, count), most frequent first; the failing
    #: file's path reads "<scan>" in them.
    failures: list[tuple[str, int]]


def queue_status(connection: Connection, top_failures: int = 10) -> QueueStatus:
    counts = {status.value: 0 for status in ScanStatus}
    for row in connection.execute(text("SELECT status, count(*) AS n FROM scan GROUP BY status")):
        counts[row.status] = row.n
    stalled = connection.execute(
        text(f"SELECT count(*) FROM scan WHERE {_STALLED}"), {"namespace": SCAN_LOCK_NAMESPACE}
    ).scalar_one()
    recent = connection.execute(
        text(
            "SELECT count(*) FROM scan WHERE status = 'done' "
            "AND finished_at > now() - interval '60 seconds'"
        )
    ).scalar_one()
    failures = connection.execute(
        text(
            # The scan's own path is taken out so one problem of many files is one line.
            "SELECT replace(coalesce(error, ''), path, '<scan>') AS error, count(*) AS n "
            "FROM scan WHERE status = 'failed' GROUP BY 1 ORDER BY n DESC, 1 LIMIT :limit"
        ),
        {"limit": top_failures},
    ).all()
    return QueueStatus(
        scans=counts,
        stalled=int(stalled),
        done_last_minute=int(recent),
        rate_per_second=round(recent / 60.0, 3),
        failures=[(row.error or "", int(row.n)) for row in failures],
    )


def reset_for_retry(connection: Connection, include_stalled: bool = True) -> int:
    """failed (and stalled processing) -> registered with attempts reset; caller's
    transaction. The caller then queues them like new scans. Returns how many."""
    condition = "status = 'failed'"
    if include_stalled:
        condition += f" OR ({_STALLED})"
    result = connection.execute(
        text(
            "UPDATE scan SET status = 'registered', attempts = 0, error = NULL, "
            f"started_at = NULL, finished_at = NULL, updated_at = now() WHERE {condition}"
        ).bindparams(bindparam("namespace", SCAN_LOCK_NAMESPACE)),
    )
    return result.rowcount
