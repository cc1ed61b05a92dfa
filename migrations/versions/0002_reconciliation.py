"""Reconciliation: dirty-mesa tracking, verdict evidence, reviewed values, the psql views.

- ``reconcile_dirty_mesa``: mesa codes whose readings, scans, header or manual entries changed
  since the last reconciliation. Statement-level triggers with transition tables fill it (one
  set-based INSERT per statement, whatever the number of rows written), so every writer
  (importer, workers, psql) is covered without having to remember to mark anything. Each
  marking draws a new ``mark`` from a sequence; a run clears only the marks it read, so a
  mesa marked again while the run works stays dirty, and writers never wait for a run.
- ``reconcile_run``: one row per reconciliation run (what it touched, how long it took).
- ``cell_verdict``: more evidence (reading flags/digits, the column's TOTAL cell, header
  sobres read and official, whether each column satisfies the sum rule, the mesa, scan and
  recognition). Its foreign keys to ``cell_reading`` / ``manual_entry`` are dropped: verdicts
  are derived rows rebuilt per dirty mesa, and ``ON DELETE SET NULL`` would make every
  deletion of readings scan the verdict table.
- ``reviewed_value``: what a person decided a cell says (``escrutinio review import``).
- Views (``v_*``) for psql users; see the README section "Querying the results".

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: Tables whose rows carry a mesa_code; scan only matters when done (see reconcile_mark_scan).
_CODE_TABLES = ("cell_reading", "recognition", "mesa")

_FUNCTIONS = [
    """CREATE FUNCTION escrutinio_confidence_threshold() RETURNS double precision
       LANGUAGE sql STABLE AS $$
         SELECT coalesce(nullif(current_setting('escrutinio.confidence_threshold', true), '')
                         ::double precision, 0.9)
       $$""",
    """CREATE FUNCTION escrutinio_review_flags() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
         SELECT ARRAY['ILLEGIBLE', 'LOW_CONFIDENCE', 'STRUCK_THROUGH', 'SUM_MISMATCH',
                      'HEADER_MISMATCH']::text[]
       $$""",
    """CREATE FUNCTION reconcile_mark_codes() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP IN ('INSERT', 'UPDATE') THEN
           INSERT INTO reconcile_dirty_mesa (mesa_code)
           SELECT DISTINCT mesa_code FROM new_rows WHERE mesa_code IS NOT NULL
           ON CONFLICT (mesa_code) DO UPDATE SET mark = EXCLUDED.mark, marked_at = now();
         END IF;
         IF TG_OP IN ('UPDATE', 'DELETE') THEN
           INSERT INTO reconcile_dirty_mesa (mesa_code)
           SELECT DISTINCT mesa_code FROM old_rows WHERE mesa_code IS NOT NULL
           ON CONFLICT (mesa_code) DO UPDATE SET mark = EXCLUDED.mark, marked_at = now();
         END IF;
         RETURN NULL;
       END $$""",
    # Scans change status often (queued, processing); only a done scan changes the readings.
    """CREATE FUNCTION reconcile_mark_scan() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP IN ('INSERT', 'UPDATE') THEN
           INSERT INTO reconcile_dirty_mesa (mesa_code)
           SELECT DISTINCT mesa_code FROM new_rows
           WHERE mesa_code IS NOT NULL AND status = 'done'
           ON CONFLICT (mesa_code) DO UPDATE SET mark = EXCLUDED.mark, marked_at = now();
         END IF;
         IF TG_OP IN ('UPDATE', 'DELETE') THEN
           INSERT INTO reconcile_dirty_mesa (mesa_code)
           SELECT DISTINCT mesa_code FROM old_rows
           WHERE mesa_code IS NOT NULL AND status = 'done'
           ON CONFLICT (mesa_code) DO UPDATE SET mark = EXCLUDED.mark, marked_at = now();
         END IF;
         RETURN NULL;
       END $$""",
    """CREATE FUNCTION reconcile_mark_manual() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP IN ('INSERT', 'UPDATE') THEN
           INSERT INTO reconcile_dirty_mesa (mesa_code)
           SELECT DISTINCT m.mesa_code FROM (SELECT DISTINCT mesa_id FROM new_rows) n
           JOIN mesa m ON m.id = n.mesa_id
           ON CONFLICT (mesa_code) DO UPDATE SET mark = EXCLUDED.mark, marked_at = now();
         END IF;
         IF TG_OP IN ('UPDATE', 'DELETE') THEN
           INSERT INTO reconcile_dirty_mesa (mesa_code)
           SELECT DISTINCT m.mesa_code FROM (SELECT DISTINCT mesa_id FROM old_rows) o
           JOIN mesa m ON m.id = o.mesa_id
           ON CONFLICT (mesa_code) DO UPDATE SET mark = EXCLUDED.mark, marked_at = now();
         END IF;
         RETURN NULL;
       END $$""",
]

_TRIGGER_FUNCTIONS = {
    **{table: "reconcile_mark_codes" for table in _CODE_TABLES},
    "scan": "reconcile_mark_scan",
    "manual_entry": "reconcile_mark_manual",
}

_TRANSITIONS = {
    "INSERT": "REFERENCING NEW TABLE AS new_rows",
    "UPDATE": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "DELETE": "REFERENCING OLD TABLE AS old_rows",
}

_VIEWS = [
    (
        "v_current_recognition",
        # The reading that counts for a mesa: the current recognition of its latest done scan.
        """SELECT DISTINCT ON (coalesce(r.mesa_code, s.mesa_code))
                  coalesce(r.mesa_code, s.mesa_code) AS mesa_code,
                  r.id AS recognition_id, s.id AS scan_id, s.path AS scan_path, r.form,
                  r.model_version, r.fit_score, r.votantes, r.sobres, r.diferencia,
                  s.finished_at
           FROM scan s
           JOIN recognition r ON r.scan_id = s.id AND r.is_current
           WHERE s.status = 'done' AND coalesce(r.mesa_code, s.mesa_code) IS NOT NULL
           ORDER BY coalesce(r.mesa_code, s.mesa_code), s.finished_at DESC NULLS LAST,
                    s.id DESC""",
    ),
    (
        "v_cell_comparison",
        """SELECT v.mesa_code, d.distrito_id, d.nombre AS distrito_nombre,
                  sec.seccion_id, sec.nombre AS seccion_nombre, c.circuito_id,
                  v.cargo_id, o.nombre AS cargo_nombre, v.votos_tipo, v.agrupacion_id,
                  v.lista_numero, v.manual_value, v.reading_value, v.reading_confidence,
                  v.reading_flags, v.reading_digits, rv.value AS reviewed_value, v.verdict,
                  v.manual_column_sum, v.reading_column_sum, v.reading_column_total,
                  v.reading_sobres, v.manual_sobres, v.manual_column_consistent,
                  v.reading_column_consistent, v.mesa_id, v.scan_id, v.recognition_id,
                  v.cell_reading_id, v.manual_entry_id, v.updated_at
           FROM cell_verdict v
           LEFT JOIN mesa m ON m.id = v.mesa_id
           LEFT JOIN circuit c ON c.id = m.circuit_id
           LEFT JOIN section sec ON sec.id = c.section_id
           LEFT JOIN district d ON d.distrito_id = sec.distrito_id
           LEFT JOIN office o ON o.election_id = m.election_id AND o.cargo_id = v.cargo_id
           LEFT JOIN reviewed_value rv
                  ON rv.mesa_code = v.mesa_code AND rv.cargo_id = v.cargo_id
                 AND rv.votos_tipo = v.votos_tipo
                 AND rv.agrupacion_id IS NOT DISTINCT FROM v.agrupacion_id
                 AND rv.lista_numero IS NOT DISTINCT FROM v.lista_numero""",
    ),
    (
        "v_low_confidence_cells",
        """SELECT cur.mesa_code, cell.cargo_id, cell.votos_tipo, cell.agrupacion_id,
                  cell.lista_numero, cell.value, cell.digits, cell.confidence, cell.flags,
                  cur.scan_path, cell.box, cur.scan_id, cur.recognition_id,
                  cell.id AS cell_reading_id, v.verdict, v.manual_value
           FROM v_current_recognition cur
           JOIN cell_reading cell ON cell.recognition_id = cur.recognition_id
           LEFT JOIN cell_verdict v
                  ON v.mesa_code = cur.mesa_code AND v.cargo_id = cell.cargo_id
                 AND v.votos_tipo = cell.votos_tipo
                 AND v.agrupacion_id IS NOT DISTINCT FROM cell.agrupacion_id
                 AND v.lista_numero IS NOT DISTINCT FROM cell.lista_numero
           WHERE cell.value IS NULL
              OR cell.confidence < escrutinio_confidence_threshold()
              OR cell.flags && escrutinio_review_flags()""",
    ),
    (
        "v_suspected_entry_errors",
        """SELECT cmp.*, s.path AS scan_path, cell.box
           FROM v_cell_comparison cmp
           LEFT JOIN cell_reading cell ON cell.id = cmp.cell_reading_id
           LEFT JOIN scan s ON s.id = cmp.scan_id
           WHERE cmp.verdict = 'MANUAL_SUSPECT'""",
    ),
    (
        # The cells accuracy is measured on: read, and either reviewed by a person or typed in
        # a column whose typed entries satisfy the sum rule (typing errors do not count).
        "v_evaluation_cells",
        """SELECT cmp.*,
                  coalesce(cmp.reviewed_value, cmp.manual_value) AS truth,
                  cmp.reading_value IS NOT DISTINCT FROM
                      coalesce(cmp.reviewed_value, cmp.manual_value) AS exact,
                  (cmp.reading_value IS NOT NULL
                   AND cmp.reading_confidence >= escrutinio_confidence_threshold()
                   AND NOT cmp.reading_flags && escrutinio_review_flags()) AS accepted
           FROM v_cell_comparison cmp
           WHERE cmp.cell_reading_id IS NOT NULL
             AND (cmp.reviewed_value IS NOT NULL
                  OR (cmp.manual_value IS NOT NULL AND cmp.manual_column_consistent))""",
    ),
]

_ACCURACY_COLUMNS = """count(*) AS cells,
       count(*) FILTER (WHERE exact) AS exact_cells,
       avg(exact::int)::double precision AS exact_share,
       count(*) FILTER (WHERE accepted) AS accepted_cells,
       avg(accepted::int)::double precision AS accepted_share,
       (count(*) FILTER (WHERE accepted AND exact))::double precision
           / nullif(count(*) FILTER (WHERE accepted), 0) AS accepted_exact"""

_VIEWS += [
    (
        "v_accuracy_by_district",
        f"""SELECT distrito_id, distrito_nombre, {_ACCURACY_COLUMNS}
            FROM v_evaluation_cells GROUP BY distrito_id, distrito_nombre""",
    ),
    (
        "v_accuracy_by_section",
        f"""SELECT distrito_id, distrito_nombre, seccion_id, seccion_nombre, {_ACCURACY_COLUMNS}
            FROM v_evaluation_cells
            GROUP BY distrito_id, distrito_nombre, seccion_id, seccion_nombre""",
    ),
    (
        "v_accuracy_by_office",
        f"""SELECT cargo_id, cargo_nombre, {_ACCURACY_COLUMNS}
            FROM v_evaluation_cells GROUP BY cargo_id, cargo_nombre""",
    ),
    (
        # Digit pairs of evaluated cells whose digit string has as many digits as the truth
        # (otherwise the digits cannot be paired; empty cells have no digits).
        "v_digit_confusion",
        """SELECT substr(e.truth_text, i, 1)::int AS true_digit,
                  substr(e.reading_digits, i, 1)::int AS read_digit, count(*) AS n
           FROM (SELECT truth::text AS truth_text, reading_digits FROM v_evaluation_cells
                 WHERE reading_digits ~ '^[0-9]+$'
                   AND length(reading_digits) = length(truth::text)) e
           CROSS JOIN LATERAL generate_series(1, length(e.truth_text)) AS i
           GROUP BY 1, 2""",
    ),
    (
        "v_digit_stats",
        """WITH pairs AS MATERIALIZED (SELECT true_digit, read_digit, n FROM v_digit_confusion),
                total AS (SELECT coalesce(sum(n), 0) AS n FROM pairs),
                per_digit AS (
                    SELECT d.digit,
                           coalesce(sum(p.n) FILTER (WHERE p.true_digit = d.digit), 0) AS support,
                           coalesce(sum(p.n) FILTER (WHERE p.read_digit = d.digit), 0)
                               AS predicted,
                           coalesce(sum(p.n) FILTER (WHERE p.true_digit = d.digit
                                                     AND p.read_digit = d.digit), 0) AS tp
                    FROM generate_series(0, 9) AS d(digit)
                    LEFT JOIN pairs p ON p.true_digit = d.digit OR p.read_digit = d.digit
                    GROUP BY d.digit)
           SELECT per_digit.digit, per_digit.support, per_digit.tp,
                  per_digit.predicted - per_digit.tp AS fp,
                  per_digit.support - per_digit.tp AS fn,
                  total.n - per_digit.support - per_digit.predicted + per_digit.tp AS tn,
                  per_digit.tp::double precision / nullif(per_digit.predicted, 0) AS precision,
                  per_digit.tp::double precision / nullif(per_digit.support, 0) AS recall,
                  2 * per_digit.tp::double precision
                      / nullif(per_digit.support + per_digit.predicted, 0) AS f1
           FROM per_digit CROSS JOIN total ORDER BY per_digit.digit""",
    ),
]


def upgrade() -> None:
    op.execute("CREATE SEQUENCE reconcile_mark_seq")
    op.create_table(
        "reconcile_dirty_mesa",
        sa.Column("mesa_code", sa.String(length=32), nullable=False),
        sa.Column(
            "mark",
            sa.BigInteger(),
            server_default=sa.text("nextval('reconcile_mark_seq')"),
            nullable=False,
        ),
        sa.Column(
            "marked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("mesa_code", name=op.f("pk_reconcile_dirty_mesa")),
    )
    op.create_table(
        "reconcile_run",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("full_run", sa.Boolean(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("mesas", sa.Integer(), nullable=False),
        sa.Column("cells", sa.Integer(), nullable=False),
        sa.Column("inserted", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconcile_run")),
    )
    op.create_table(
        "reviewed_value",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("mesa_code", sa.String(length=32), nullable=False),
        sa.Column("cargo_id", sa.Integer(), nullable=False),
        sa.Column("votos_tipo", sa.String(length=16), nullable=False),
        sa.Column("agrupacion_id", sa.Integer(), nullable=True),
        sa.Column("lista_numero", sa.String(length=32), nullable=True),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.Text(), server_default="", nullable=False),
        sa.Column("source", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "reviewed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("value >= 0", name=op.f("ck_reviewed_value_value_non_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviewed_value")),
        sa.UniqueConstraint(
            "mesa_code",
            "cargo_id",
            "votos_tipo",
            "agrupacion_id",
            "lista_numero",
            name="uq_reviewed_value_cell",
            postgresql_nulls_not_distinct=True,
        ),
    )

    op.drop_constraint(
        "fk_cell_verdict_cell_reading_id_cell_reading", "cell_verdict", type_="foreignkey"
    )
    op.drop_constraint(
        "fk_cell_verdict_manual_entry_id_manual_entry", "cell_verdict", type_="foreignkey"
    )
    # Only the verdicts someone looks for are indexed (MATCH is ~all rows; maintaining an
    # index of it costs a large share of a full run's writing).
    op.drop_index("ix_cell_verdict_verdict", table_name="cell_verdict")
    op.create_index(
        "ix_cell_verdict_not_match",
        "cell_verdict",
        ["verdict"],
        postgresql_where=sa.text("verdict <> 'MATCH'"),
    )
    op.add_column("cell_verdict", sa.Column("mesa_id", sa.Integer(), nullable=True))
    op.add_column("cell_verdict", sa.Column("scan_id", sa.BigInteger(), nullable=True))
    op.add_column("cell_verdict", sa.Column("recognition_id", sa.BigInteger(), nullable=True))
    op.add_column(
        "cell_verdict",
        sa.Column("reading_flags", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
    )
    op.add_column("cell_verdict", sa.Column("reading_digits", sa.String(16), nullable=True))
    op.add_column("cell_verdict", sa.Column("reading_column_total", sa.Integer(), nullable=True))
    op.add_column("cell_verdict", sa.Column("reading_sobres", sa.Integer(), nullable=True))
    op.add_column("cell_verdict", sa.Column("manual_sobres", sa.Integer(), nullable=True))
    op.add_column(
        "cell_verdict", sa.Column("reading_column_consistent", sa.Boolean(), nullable=True)
    )
    op.add_column(
        "cell_verdict", sa.Column("manual_column_consistent", sa.Boolean(), nullable=True)
    )

    for statement in _FUNCTIONS:
        op.execute(statement)
    for table, function in _TRIGGER_FUNCTIONS.items():
        for event, transition in _TRANSITIONS.items():
            op.execute(
                f"CREATE TRIGGER reconcile_dirty_{event.lower()} AFTER {event} ON {table} "
                f"{transition} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
    # Whatever exists before this migration has never been reconciled.
    op.execute(
        """INSERT INTO reconcile_dirty_mesa (mesa_code)
           SELECT mesa_code FROM mesa
           UNION SELECT mesa_code FROM scan WHERE mesa_code IS NOT NULL
           ON CONFLICT DO NOTHING"""
    )
    for name, query in _VIEWS:
        op.execute(f"CREATE VIEW {name} AS {query}")


def downgrade() -> None:
    for name, _ in reversed(_VIEWS):
        op.execute(f"DROP VIEW {name}")
    for table in _TRIGGER_FUNCTIONS:
        for event in _TRANSITIONS:
            op.execute(f"DROP TRIGGER reconcile_dirty_{event.lower()} ON {table}")
    for function in (
        "reconcile_mark_manual",
        "reconcile_mark_scan",
        "reconcile_mark_codes",
        "escrutinio_review_flags",
        "escrutinio_confidence_threshold",
    ):
        op.execute(f"DROP FUNCTION {function}()")
    for column in (
        "manual_column_consistent",
        "reading_column_consistent",
        "manual_sobres",
        "reading_sobres",
        "reading_column_total",
        "reading_digits",
        "reading_flags",
        "recognition_id",
        "scan_id",
        "mesa_id",
    ):
        op.drop_column("cell_verdict", column)
    op.drop_index("ix_cell_verdict_not_match", table_name="cell_verdict")
    op.create_index("ix_cell_verdict_verdict", "cell_verdict", ["verdict"])
    # Verdicts are derived data; stale ids would violate the restored foreign keys.
    op.execute("DELETE FROM cell_verdict")
    op.create_foreign_key(
        "fk_cell_verdict_manual_entry_id_manual_entry",
        "cell_verdict",
        "manual_entry",
        ["manual_entry_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_foreign_key(
        "fk_cell_verdict_cell_reading_id_cell_reading",
        "cell_verdict",
        "cell_reading",
        ["cell_reading_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.drop_table("reviewed_value")
    op.drop_table("reconcile_run")
    op.drop_table("reconcile_dirty_mesa")
    op.execute("DROP SEQUENCE reconcile_mark_seq")
