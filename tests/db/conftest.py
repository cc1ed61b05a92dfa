"""Fixtures of the database tests: a small reconciled election (see ``election``)."""

from __future__ import annotations

import pytest

from db.reconcile import reconcile
from tests.db.telegrams import COLUMN_275, CellRead, add_reading, import_typed

A, B, C = "0200100001X", "0300100002X", "0200100003X"


@pytest.fixture
def election(database_url, tmp_path):
    """Three mesas, reconciled (column values per ROWS; every telegram has 275 sobres):

    - A (district 2), office 1: typed 121 100 40 10 4; read 127 (confidence 0.95), 100,
      40 (confidence 0.6), 10, 4: the reading column adds to 281, READING_SUSPECT for 127;
    - A, office 2: typed and read 121 100 40 10 4;
    - B (district 3), office 1: typed 21 100 40 10 4 (adds to 175), read 121 ...: MANUAL_SUSPECT;
    - C (district 2): typed, never scanned: MISSING_READING.
    Every other confidence is 0.99. Returns the database URL.
    """
    import_typed(
        database_url,
        tmp_path / "typed.csv",
        {A: {1: COLUMN_275, 2: COLUMN_275}, B: {1: [21, *COLUMN_275[1:]]}, C: {1: COLUMN_275}},
        distritos={A: 2, B: 3, C: 2},
    )
    office_1 = [CellRead(127, 0.95), 100, CellRead(40, 0.6), 10, 4]
    add_reading(database_url, A, {1: office_1, 2: COLUMN_275}, sobres=275)
    add_reading(database_url, B, {1: COLUMN_275}, sobres=275, path="/scans/b.png")
    reconcile(database_url)
    return database_url
