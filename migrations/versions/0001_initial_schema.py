"""Results mirror (election .. manual_entry) and recognition tables (scan .. cell_verdict).

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "district",
        sa.Column("distrito_id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("nombre", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("distrito_id", name=op.f("pk_district")),
    )
    op.create_table(
        "election",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("year", sa.SmallInteger(), nullable=False),
        sa.Column("eleccion_tipo", sa.String(length=16), nullable=False),
        sa.Column("recuento_tipo", sa.String(length=16), nullable=False),
        sa.CheckConstraint(
            "eleccion_tipo IN ('PASO', 'GENERAL', 'BALOTAJE')",
            name=op.f("ck_election_eleccion_tipo"),
        ),
        sa.CheckConstraint(
            "recuento_tipo IN ('PROVISORIO', 'DEFINITIVO')", name=op.f("ck_election_recuento_tipo")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_election")),
        sa.UniqueConstraint(
            "year",
            "eleccion_tipo",
            "recuento_tipo",
            name=op.f("uq_election_year_eleccion_tipo_recuento_tipo"),
        ),
    )
    op.create_table(
        "scan",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("mesa_code", sa.String(length=32), nullable=True),
        sa.Column("form", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="registered", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('registered', 'queued', 'processing', 'done', 'failed')",
            name=op.f("ck_scan_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan")),
        sa.UniqueConstraint("sha256", name=op.f("uq_scan_sha256")),
    )
    op.create_index("ix_scan_mesa_code", "scan", ["mesa_code"], unique=False)
    op.create_index("ix_scan_status", "scan", ["status"], unique=False)
    op.create_table(
        "office",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("election_id", sa.Integer(), nullable=False),
        sa.Column("cargo_id", sa.Integer(), nullable=False),
        sa.Column("nombre", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["election_id"], ["election.id"], name=op.f("fk_office_election_id_election")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_office")),
        sa.UniqueConstraint("election_id", "cargo_id", name=op.f("uq_office_election_id_cargo_id")),
    )
    op.create_table(
        "party",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("election_id", sa.Integer(), nullable=False),
        sa.Column("agrupacion_id", sa.Integer(), nullable=False),
        sa.Column("nombre", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["election_id"], ["election.id"], name=op.f("fk_party_election_id_election")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_party")),
        sa.UniqueConstraint(
            "election_id", "agrupacion_id", name=op.f("uq_party_election_id_agrupacion_id")
        ),
    )
    op.create_table(
        "provincial_section",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("distrito_id", sa.SmallInteger(), nullable=False),
        sa.Column("seccionprovincial_id", sa.Integer(), nullable=False),
        sa.Column("nombre", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["distrito_id"],
            ["district.distrito_id"],
            name=op.f("fk_provincial_section_distrito_id_district"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provincial_section")),
        sa.UniqueConstraint(
            "distrito_id",
            "seccionprovincial_id",
            name=op.f("uq_provincial_section_distrito_id_seccionprovincial_id"),
        ),
    )
    op.create_table(
        "recognition",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("scan_id", sa.BigInteger(), nullable=False),
        sa.Column("mesa_code", sa.String(length=32), nullable=True),
        sa.Column("form", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=128), nullable=False),
        sa.Column("fit_score", sa.Float(), nullable=False),
        sa.Column("votantes", sa.Integer(), nullable=True),
        sa.Column("sobres", sa.Integer(), nullable=True),
        sa.Column("diferencia", sa.Integer(), nullable=True),
        sa.Column(
            "header",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("is_current", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["scan_id"], ["scan.id"], name=op.f("fk_recognition_scan_id_scan"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recognition")),
        sa.UniqueConstraint(
            "scan_id", "model_version", name=op.f("uq_recognition_scan_id_model_version")
        ),
    )
    op.create_index("ix_recognition_mesa_code", "recognition", ["mesa_code"], unique=False)
    op.create_index(
        "uq_recognition_current_scan",
        "recognition",
        ["scan_id"],
        unique=True,
        postgresql_where=sa.text("is_current"),
    )
    op.create_table(
        "section",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("distrito_id", sa.SmallInteger(), nullable=False),
        sa.Column("seccion_id", sa.Integer(), nullable=False),
        sa.Column("nombre", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["distrito_id"], ["district.distrito_id"], name=op.f("fk_section_distrito_id_district")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_section")),
        sa.UniqueConstraint(
            "distrito_id", "seccion_id", name=op.f("uq_section_distrito_id_seccion_id")
        ),
    )
    op.create_table(
        "cell_reading",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("recognition_id", sa.BigInteger(), nullable=False),
        sa.Column("mesa_code", sa.String(length=32), nullable=True),
        sa.Column("cargo_id", sa.Integer(), nullable=False),
        sa.Column("votos_tipo", sa.String(length=16), nullable=False),
        sa.Column("agrupacion_id", sa.Integer(), nullable=True),
        sa.Column("lista_numero", sa.String(length=32), nullable=True),
        sa.Column("value", sa.Integer(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("flags", sa.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("digits", sa.String(length=16), nullable=True),
        sa.Column("digit_confidences", sa.ARRAY(sa.Float()), nullable=True),
        sa.Column("box", sa.ARRAY(sa.Integer()), nullable=True),
        sa.CheckConstraint(
            "votos_tipo IN ('POSITIVO', 'EN BLANCO', 'NULO', 'RECURRIDO', 'IMPUGNADO', 'COMANDO', 'TOTAL')",
            name=op.f("ck_cell_reading_votos_tipo"),
        ),
        sa.CheckConstraint(
            "confidence >= 0 AND confidence <= 1", name=op.f("ck_cell_reading_confidence_range")
        ),
        sa.ForeignKeyConstraint(
            ["recognition_id"],
            ["recognition.id"],
            name=op.f("fk_cell_reading_recognition_id_recognition"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cell_reading")),
        sa.UniqueConstraint(
            "recognition_id",
            "cargo_id",
            "votos_tipo",
            "agrupacion_id",
            "lista_numero",
            name="uq_cell_reading_cell",
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_index(
        "ix_cell_reading_low_confidence",
        "cell_reading",
        ["confidence"],
        unique=False,
        postgresql_where=sa.text("confidence < 0.9 OR cardinality(flags) > 0"),
    )
    op.create_index(
        "ix_cell_reading_mesa_code", "cell_reading", ["mesa_code", "cargo_id"], unique=False
    )
    op.create_table(
        "circuit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("section_id", sa.Integer(), nullable=False),
        sa.Column("circuito_id", sa.String(length=16), nullable=False),
        sa.Column("nombre", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["section_id"], ["section.id"], name=op.f("fk_circuit_section_id_section")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_circuit")),
        sa.UniqueConstraint(
            "section_id", "circuito_id", name=op.f("uq_circuit_section_id_circuito_id")
        ),
    )
    op.create_table(
        "party_list",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("party_id", sa.Integer(), nullable=False),
        sa.Column("lista_numero", sa.String(length=32), nullable=False),
        sa.Column("nombre", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["party_id"], ["party.id"], name=op.f("fk_party_list_party_id_party")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_party_list")),
        sa.UniqueConstraint(
            "party_id", "lista_numero", name=op.f("uq_party_list_party_id_lista_numero")
        ),
    )
    op.create_table(
        "mesa",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("election_id", sa.Integer(), nullable=False),
        sa.Column("mesa_code", sa.String(length=32), nullable=False),
        sa.Column("circuit_id", sa.Integer(), nullable=False),
        sa.Column("provincial_section_id", sa.Integer(), nullable=True),
        sa.Column("mesa_tipo", sa.String(length=32), server_default="", nullable=False),
        sa.Column("electores", sa.Integer(), nullable=True),
        sa.Column("votantes", sa.Integer(), nullable=True),
        sa.Column("sobres", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["circuit_id"], ["circuit.id"], name=op.f("fk_mesa_circuit_id_circuit")
        ),
        sa.ForeignKeyConstraint(
            ["election_id"], ["election.id"], name=op.f("fk_mesa_election_id_election")
        ),
        sa.ForeignKeyConstraint(
            ["provincial_section_id"],
            ["provincial_section.id"],
            name=op.f("fk_mesa_provincial_section_id_provincial_section"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mesa")),
        sa.UniqueConstraint("election_id", "mesa_code", name=op.f("uq_mesa_election_id_mesa_code")),
    )
    op.create_index("ix_mesa_circuit_id", "mesa", ["circuit_id"], unique=False)
    op.create_index("ix_mesa_mesa_code", "mesa", ["mesa_code"], unique=False)
    op.create_table(
        "manual_entry",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("mesa_id", sa.Integer(), nullable=False),
        sa.Column("office_id", sa.Integer(), nullable=False),
        sa.Column("votos_tipo", sa.String(length=16), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=True),
        sa.Column("votos_cantidad", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(votos_tipo = 'POSITIVO') = (list_id IS NOT NULL)",
            name=op.f("ck_manual_entry_list_iff_positivo"),
        ),
        sa.CheckConstraint(
            "votos_tipo IN ('POSITIVO', 'EN BLANCO', 'NULO', 'RECURRIDO', 'IMPUGNADO', 'COMANDO')",
            name=op.f("ck_manual_entry_votos_tipo"),
        ),
        sa.CheckConstraint(
            "votos_cantidad >= 0", name=op.f("ck_manual_entry_votos_cantidad_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["party_list.id"], name=op.f("fk_manual_entry_list_id_party_list")
        ),
        sa.ForeignKeyConstraint(
            ["mesa_id"], ["mesa.id"], name=op.f("fk_manual_entry_mesa_id_mesa"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["office_id"], ["office.id"], name=op.f("fk_manual_entry_office_id_office")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manual_entry")),
        sa.UniqueConstraint(
            "mesa_id",
            "office_id",
            "votos_tipo",
            "list_id",
            name="uq_manual_entry_cell",
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_table(
        "cell_verdict",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("mesa_code", sa.String(length=32), nullable=False),
        sa.Column("cargo_id", sa.Integer(), nullable=False),
        sa.Column("votos_tipo", sa.String(length=16), nullable=False),
        sa.Column("agrupacion_id", sa.Integer(), nullable=True),
        sa.Column("lista_numero", sa.String(length=32), nullable=True),
        sa.Column("verdict", sa.String(length=24), nullable=False),
        sa.Column("manual_entry_id", sa.BigInteger(), nullable=True),
        sa.Column("cell_reading_id", sa.BigInteger(), nullable=True),
        sa.Column("manual_value", sa.Integer(), nullable=True),
        sa.Column("reading_value", sa.Integer(), nullable=True),
        sa.Column("reading_confidence", sa.Float(), nullable=True),
        sa.Column("manual_column_sum", sa.Integer(), nullable=True),
        sa.Column("reading_column_sum", sa.Integer(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "verdict IN ('MATCH', 'READING_UNSURE', 'MANUAL_SUSPECT', 'READING_SUSPECT', 'MISSING_MANUAL', 'MISSING_READING')",
            name=op.f("ck_cell_verdict_verdict"),
        ),
        sa.ForeignKeyConstraint(
            ["cell_reading_id"],
            ["cell_reading.id"],
            name=op.f("fk_cell_verdict_cell_reading_id_cell_reading"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["manual_entry_id"],
            ["manual_entry.id"],
            name=op.f("fk_cell_verdict_manual_entry_id_manual_entry"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cell_verdict")),
        sa.UniqueConstraint(
            "mesa_code",
            "cargo_id",
            "votos_tipo",
            "agrupacion_id",
            "lista_numero",
            name="uq_cell_verdict_cell",
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_index("ix_cell_verdict_verdict", "cell_verdict", ["verdict"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_cell_verdict_verdict", table_name="cell_verdict")
    op.drop_table("cell_verdict")
    op.drop_table("manual_entry")
    op.drop_index("ix_mesa_mesa_code", table_name="mesa")
    op.drop_index("ix_mesa_circuit_id", table_name="mesa")
    op.drop_table("mesa")
    op.drop_table("party_list")
    op.drop_table("circuit")
    op.drop_index("ix_cell_reading_mesa_code", table_name="cell_reading")
    op.drop_index(
        "ix_cell_reading_low_confidence",
        table_name="cell_reading",
        postgresql_where=sa.text("confidence < 0.9 OR cardinality(flags) > 0"),
    )
    op.drop_table("cell_reading")
    op.drop_table("section")
    op.drop_index(
        "uq_recognition_current_scan",
        table_name="recognition",
        postgresql_where=sa.text("is_current"),
    )
    op.drop_index("ix_recognition_mesa_code", table_name="recognition")
    op.drop_table("recognition")
    op.drop_table("provincial_section")
    op.drop_table("party")
    op.drop_table("office")
    op.drop_index("ix_scan_status", table_name="scan")
    op.drop_index("ix_scan_mesa_code", table_name="scan")
    op.drop_table("scan")
    op.drop_table("election")
    op.drop_table("district")
