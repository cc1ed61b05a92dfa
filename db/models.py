"""The database: a mirror of the official results data plus the recognition side.

Two halves, joined on the official natural keys (mesa code, cargo_id, votos_tipo,
agrupacion_id, lista_numero) so readings can be compared with manual entries even
when the scans arrive before the typed results:

- the mirror of ``ResultadosElectorales_<year>.csv`` (../shared/FORMS.md): election,
  district, sections, circuit, mesa, office (cargo), party (agrupacion), list (lista)
  and one ``ManualEntry`` per mesa x office x vote type (x list for POSITIVO);
- the recognition side: ``Scan`` (one image file, its status and attempts),
  ``Recognition`` (one reading of a scan by one model version) and ``CellReading``
  (one recognised value per cell of that reading), and ``CellVerdict`` (what the
  reconciliation concluded for a cell).

Every table has a unique key that makes each write an idempotent upsert. Re-reading a
scan with the same model version replaces its rows in place (same keys); reading it
with a new model version adds a new ``Recognition`` and moves ``is_current`` to it in
the same transaction, so history is kept and what counts is chosen deliberately.

Migrations in ``migrations/`` are the only way these tables are created.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ELECTION_TYPES = ("PASO", "GENERAL", "BALOTAJE")
COUNT_TYPES = ("PROVISORIO", "DEFINITIVO")
#: The official ``votos_tipo`` values; POSITIVO rows carry a party and list.
VOTE_TYPES = ("POSITIVO", "EN BLANCO", "NULO", "RECURRIDO", "IMPUGNADO", "COMANDO")
#: Readings also carry the telegram's column totals, which the official data has not.
READING_VOTE_TYPES = (*VOTE_TYPES, "TOTAL")


class ScanStatus(enum.StrEnum):
    """Life of a scan: registered -> queued -> processing -> done | failed."""

    REGISTERED = "registered"
    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


class Verdict(enum.StrEnum):
    MATCH = "MATCH"
    READING_UNSURE = "READING_UNSURE"
    MANUAL_SUSPECT = "MANUAL_SUSPECT"
    READING_SUSPECT = "READING_SUSPECT"
    MISSING_MANUAL = "MISSING_MANUAL"
    MISSING_READING = "MISSING_READING"


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# --- the mirror of the official results -------------------------------------------------


class Election(Base):
    __tablename__ = "election"
    __table_args__ = (
        UniqueConstraint("year", "eleccion_tipo", "recuento_tipo"),
        CheckConstraint(_in("eleccion_tipo", ELECTION_TYPES), name="eleccion_tipo"),
        CheckConstraint(_in("recuento_tipo", COUNT_TYPES), name="recuento_tipo"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    year: Mapped[int] = mapped_column(SmallInteger)
    eleccion_tipo: Mapped[str] = mapped_column(String(16))
    recuento_tipo: Mapped[str] = mapped_column(String(16))


class District(Base):
    __tablename__ = "district"

    distrito_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    nombre: Mapped[str] = mapped_column(Text)


class ProvincialSection(Base):
    __tablename__ = "provincial_section"
    __table_args__ = (UniqueConstraint("distrito_id", "seccionprovincial_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    distrito_id: Mapped[int] = mapped_column(ForeignKey("district.distrito_id"))
    seccionprovincial_id: Mapped[int] = mapped_column(Integer)
    nombre: Mapped[str] = mapped_column(Text, server_default="")


class Section(Base):
    __tablename__ = "section"
    __table_args__ = (UniqueConstraint("distrito_id", "seccion_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    distrito_id: Mapped[int] = mapped_column(ForeignKey("district.distrito_id"))
    seccion_id: Mapped[int] = mapped_column(Integer)
    nombre: Mapped[str] = mapped_column(Text, server_default="")


class Circuit(Base):
    __tablename__ = "circuit"
    __table_args__ = (UniqueConstraint("section_id", "circuito_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    section_id: Mapped[int] = mapped_column(ForeignKey("section.id"))
    #: Text with its leading zeros, as published ("00153").
    circuito_id: Mapped[str] = mapped_column(String(16))
    nombre: Mapped[str] = mapped_column(Text, server_default="")


class Mesa(Base):
    """A polling station in one election; votantes/sobres come from the telegram header."""

    __tablename__ = "mesa"
    __table_args__ = (
        UniqueConstraint("election_id", "mesa_code"),
        Index("ix_mesa_mesa_code", "mesa_code"),
        Index("ix_mesa_circuit_id", "circuit_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    election_id: Mapped[int] = mapped_column(ForeignKey("election.id"))
    #: The official mesa code, e.g. ``0101406691X``.
    mesa_code: Mapped[str] = mapped_column(String(32))
    circuit_id: Mapped[int] = mapped_column(ForeignKey("circuit.id"))
    provincial_section_id: Mapped[int | None] = mapped_column(ForeignKey("provincial_section.id"))
    mesa_tipo: Mapped[str] = mapped_column(String(32), server_default="")
    electores: Mapped[int | None] = mapped_column(Integer)
    votantes: Mapped[int | None] = mapped_column(Integer)
    sobres: Mapped[int | None] = mapped_column(Integer)


class Office(Base):
    """A cargo (office) voted for in one election."""

    __tablename__ = "office"
    __table_args__ = (UniqueConstraint("election_id", "cargo_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    election_id: Mapped[int] = mapped_column(ForeignKey("election.id"))
    cargo_id: Mapped[int] = mapped_column(Integer)
    nombre: Mapped[str] = mapped_column(Text, server_default="")


class Party(Base):
    """An agrupacion in one election."""

    __tablename__ = "party"
    __table_args__ = (UniqueConstraint("election_id", "agrupacion_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    election_id: Mapped[int] = mapped_column(ForeignKey("election.id"))
    agrupacion_id: Mapped[int] = mapped_column(Integer)
    nombre: Mapped[str] = mapped_column(Text, server_default="")


class PartyList(Base):
    """A lista within a party (in primaries a party runs several)."""

    __tablename__ = "party_list"
    __table_args__ = (UniqueConstraint("party_id", "lista_numero"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    party_id: Mapped[int] = mapped_column(ForeignKey("party.id"))
    #: As published; "" when the party runs a single unnamed list.
    lista_numero: Mapped[str] = mapped_column(String(32))
    nombre: Mapped[str] = mapped_column(Text, server_default="")


class ManualEntry(Base):
    """One typed count: mesa x office x vote type (x list for POSITIVO)."""

    __tablename__ = "manual_entry"
    __table_args__ = (
        UniqueConstraint(
            "mesa_id",
            "office_id",
            "votos_tipo",
            "list_id",
            name="uq_manual_entry_cell",
            postgresql_nulls_not_distinct=True,
        ),
        CheckConstraint(_in("votos_tipo", VOTE_TYPES), name="votos_tipo"),
        CheckConstraint(
            "(votos_tipo = 'POSITIVO') = (list_id IS NOT NULL)", name="list_iff_positivo"
        ),
        CheckConstraint("votos_cantidad >= 0", name="votos_cantidad_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    mesa_id: Mapped[int] = mapped_column(ForeignKey("mesa.id", ondelete="CASCADE"))
    office_id: Mapped[int] = mapped_column(ForeignKey("office.id"))
    votos_tipo: Mapped[str] = mapped_column(String(16))
    list_id: Mapped[int | None] = mapped_column(ForeignKey("party_list.id"))
    votos_cantidad: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# --- the recognition side ---------------------------------------------------------------


class Scan(Base):
    """One scanned telegram file. ``sha256`` makes registration idempotent."""

    __tablename__ = "scan"
    __table_args__ = (
        UniqueConstraint("sha256"),
        CheckConstraint(_in("status", tuple(ScanStatus)), name="status"),
        Index("ix_scan_status", "status"),
        Index("ix_scan_mesa_code", "mesa_code"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    #: From the file name or the page; null until known.
    mesa_code: Mapped[str | None] = mapped_column(String(32))
    form: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), server_default=ScanStatus.REGISTERED.value)
    #: Times a worker claimed this scan; capped by ESCRUTINIO_MAX_DELIVERIES.
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Recognition(Base):
    """One reading of one scan by one model version; at most one per scan is current."""

    __tablename__ = "recognition"
    __table_args__ = (
        UniqueConstraint("scan_id", "model_version"),
        Index(
            "uq_recognition_current_scan",
            "scan_id",
            unique=True,
            postgresql_where=text("is_current"),
        ),
        Index("ix_recognition_mesa_code", "mesa_code"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scan.id", ondelete="CASCADE"))
    mesa_code: Mapped[str | None] = mapped_column(String(32))
    form: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(128))
    fit_score: Mapped[float] = mapped_column(Float)
    votantes: Mapped[int | None] = mapped_column(Integer)
    sobres: Mapped[int | None] = mapped_column(Integer)
    diferencia: Mapped[int | None] = mapped_column(Integer)
    #: The header readings with confidences and flags, as in the JSON of ``escrutinio read``.
    header: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    is_current: Mapped[bool] = mapped_column(server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CellReading(Base):
    """One recognised value: a table cell of one recognition."""

    __tablename__ = "cell_reading"
    __table_args__ = (
        UniqueConstraint(
            "recognition_id",
            "cargo_id",
            "votos_tipo",
            "agrupacion_id",
            "lista_numero",
            name="uq_cell_reading_cell",
            postgresql_nulls_not_distinct=True,
        ),
        CheckConstraint(_in("votos_tipo", READING_VOTE_TYPES), name="votos_tipo"),
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence_range"),
        Index("ix_cell_reading_mesa_code", "mesa_code", "cargo_id"),
        Index(
            "ix_cell_reading_low_confidence",
            "confidence",
            postgresql_where=text("confidence < 0.9 OR cardinality(flags) > 0"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    recognition_id: Mapped[int] = mapped_column(ForeignKey("recognition.id", ondelete="CASCADE"))
    mesa_code: Mapped[str | None] = mapped_column(String(32))
    cargo_id: Mapped[int] = mapped_column(Integer)
    votos_tipo: Mapped[str] = mapped_column(String(16))
    agrupacion_id: Mapped[int | None] = mapped_column(Integer)
    lista_numero: Mapped[str | None] = mapped_column(String(32))
    value: Mapped[int | None] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    flags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    #: The digits as read, left to right ("121"); per-digit statistics use it.
    digits: Mapped[str | None] = mapped_column(String(16))
    digit_confidences: Mapped[list[float] | None] = mapped_column(ARRAY(Float))
    #: The crop's box on the scan, pixels (x0, y0, x1, y1).
    box: Mapped[list[int] | None] = mapped_column(ARRAY(Integer))


class CellVerdict(Base):
    """The reconciliation's conclusion for one cell of a mesa, with its evidence.

    Derived data, rebuilt per dirty mesa by ``db.reconcile``: the ids of the manual entry,
    reading, recognition and scan it was computed from are kept as plain evidence columns
    (no foreign keys, so deleting readings never has to touch this table).
    """

    __tablename__ = "cell_verdict"
    __table_args__ = (
        UniqueConstraint(
            "mesa_code",
            "cargo_id",
            "votos_tipo",
            "agrupacion_id",
            "lista_numero",
            name="uq_cell_verdict_cell",
            postgresql_nulls_not_distinct=True,
        ),
        CheckConstraint(_in("verdict", tuple(Verdict)), name="verdict"),
        Index("ix_cell_verdict_not_match", "verdict", postgresql_where=text("verdict <> 'MATCH'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    mesa_code: Mapped[str] = mapped_column(String(32))
    cargo_id: Mapped[int] = mapped_column(Integer)
    votos_tipo: Mapped[str] = mapped_column(String(16))
    agrupacion_id: Mapped[int | None] = mapped_column(Integer)
    lista_numero: Mapped[str | None] = mapped_column(String(32))
    verdict: Mapped[str] = mapped_column(String(24))
    manual_entry_id: Mapped[int | None] = mapped_column(BigInteger)
    cell_reading_id: Mapped[int | None] = mapped_column(BigInteger)
    manual_value: Mapped[int | None] = mapped_column(Integer)
    reading_value: Mapped[int | None] = mapped_column(Integer)
    reading_confidence: Mapped[float | None] = mapped_column(Float)
    #: Sum of the column's non-total rows: typed, and as read (null if a cell is unread).
    manual_column_sum: Mapped[int | None] = mapped_column(Integer)
    reading_column_sum: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    #: The mesa row (of the latest election holding that code) the manual side came from.
    mesa_id: Mapped[int | None] = mapped_column(Integer)
    scan_id: Mapped[int | None] = mapped_column(BigInteger)
    recognition_id: Mapped[int | None] = mapped_column(BigInteger)
    reading_flags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    reading_digits: Mapped[str | None] = mapped_column(String(16))
    #: The telegram's TOTAL cell of the column, as read.
    reading_column_total: Mapped[int | None] = mapped_column(Integer)
    #: Header "sobres en la urna": as read on the telegram, and in the official per-mesa data.
    reading_sobres: Mapped[int | None] = mapped_column(Integer)
    manual_sobres: Mapped[int | None] = mapped_column(Integer)
    #: Whether the column satisfies the sum rule (see ``db.reconcile``).
    reading_column_consistent: Mapped[bool | None] = mapped_column()
    manual_column_consistent: Mapped[bool | None] = mapped_column()
    #: The envelopes the column must add up to (official sobres, else the telegram's and the
    #: typed sums' majority; see migration 0003) and whether this cell's reading, or the
    #: confident readings of all the column's disagreeing cells, make the typed column add up.
    envelopes: Mapped[int | None] = mapped_column(Integer)
    manual_column_repairable: Mapped[bool | None] = mapped_column()


class ReconcileDirtyMesa(Base):
    """A mesa whose readings or manual entries changed since the last reconciliation.

    Filled by statement-level triggers on scan, recognition, cell_reading, mesa and
    manual_entry (migration 0002); a reconciliation run deletes the marks it has read
    (unchanged ``mark``) when it commits.
    """

    __tablename__ = "reconcile_dirty_mesa"

    mesa_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: A new number from ``reconcile_mark_seq`` at every marking.
    mark: Mapped[int] = mapped_column(
        BigInteger, server_default=text("nextval('reconcile_mark_seq')")
    )
    marked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReconcileRun(Base):
    """One reconciliation run: what it touched and how long it took."""

    __tablename__ = "reconcile_run"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    full_run: Mapped[bool] = mapped_column()
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    seconds: Mapped[float] = mapped_column(Float)
    mesas: Mapped[int] = mapped_column(Integer)
    cells: Mapped[int] = mapped_column(Integer)
    inserted: Mapped[int] = mapped_column(Integer)
    updated: Mapped[int] = mapped_column(Integer)
    deleted: Mapped[int] = mapped_column(Integer)


class ReviewedValue(Base):
    """What a person decided a cell says (``escrutinio review import``)."""

    __tablename__ = "reviewed_value"
    __table_args__ = (
        UniqueConstraint(
            "mesa_code",
            "cargo_id",
            "votos_tipo",
            "agrupacion_id",
            "lista_numero",
            name="uq_reviewed_value_cell",
            postgresql_nulls_not_distinct=True,
        ),
        CheckConstraint("value >= 0", name="value_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    mesa_code: Mapped[str] = mapped_column(String(32))
    cargo_id: Mapped[int] = mapped_column(Integer)
    votos_tipo: Mapped[str] = mapped_column(String(16))
    agrupacion_id: Mapped[int | None] = mapped_column(Integer)
    lista_numero: Mapped[str | None] = mapped_column(String(32))
    value: Mapped[int] = mapped_column(Integer)
    reviewer: Mapped[str] = mapped_column(Text, server_default="")
    #: The file it was imported from.
    source: Mapped[str] = mapped_column(Text, server_default="")
    reviewed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
