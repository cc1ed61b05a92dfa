"""Verdict evidence: the mesa's envelope count used, and whether the readings repair the typed column.

- ``envelopes``: the envelopes (sobres) a column must add up to: the official per-mesa count
  when known, else the value most of the telegram's header, its column TOTAL cells and the
  typed column sums agree on (one misread total or one mistyped column does not move it).
- ``manual_column_repairable``: replacing the cell's typed value by its reading, or the typed
  values of all the column's confidently read disagreeing cells by their readings, makes the
  typed column add up to ``envelopes``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cell_verdict", sa.Column("envelopes", sa.Integer(), nullable=True))
    op.add_column(
        "cell_verdict", sa.Column("manual_column_repairable", sa.Boolean(), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("cell_verdict", "manual_column_repairable")
    op.drop_column("cell_verdict", "envelopes")
