"""Reconciliation verdicts on constructed telegrams, and incremental, idempotent runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from db.reconcile import reconcile
from db.session import get_engine
from tests.db.telegrams import COLUMN_275, CellRead, add_reading, import_typed, key, verdicts

MESA = "0200100001X"
OTHER = "0200100002X"


def _only(url, mesa=MESA):
    return {k: v["verdict"] for k, v in verdicts(url, mesa).items()}


def test_a_column_read_as_typed_is_all_match_with_its_evidence(database_url, tmp_path):
    import_typed(database_url, tmp_path / "r.csv", {MESA: {1: COLUMN_275}})
    add_reading(database_url, MESA, {1: COLUMN_275}, sobres=275)

    stats = reconcile(database_url)

    found = verdicts(database_url)
    assert stats.mesas == 1 and stats.cells == 5 and stats.inserted == 5
    assert {row["verdict"] for row in found.values()} == {"MATCH"}
    first = found[key(MESA, 1, 0)]
    assert (first["manual_value"], first["reading_value"]) == (121, 121)
    assert (first["manual_column_sum"], first["reading_column_sum"]) == (275, 275)
    assert (first["reading_column_total"], first["reading_sobres"]) == (275, 275)
    assert first["reading_column_consistent"] and first["manual_column_consistent"]


def test_telegram_121_typed_21_is_a_suspected_data_entry_error(database_url, tmp_path):
    typed = [21, *COLUMN_275[1:]]  # the typist dropped the leading 1
    import_typed(database_url, tmp_path / "r.csv", {MESA: {1: typed}})
    add_reading(database_url, MESA, {1: COLUMN_275}, sobres=275)

    reconcile(database_url)

    found = verdicts(database_url)
    suspect = found[key(MESA, 1, 0)]
    assert suspect["verdict"] == "MANUAL_SUSPECT"
    assert (suspect["manual_value"], suspect["reading_value"]) == (21, 121)
    assert (suspect["manual_column_sum"], suspect["reading_column_sum"]) == (175, 275)
    assert suspect["reading_confidence"] == 0.99
    assert not suspect["manual_column_consistent"] and suspect["reading_column_consistent"]
    assert [found[key(MESA, 1, i)]["verdict"] for i in range(1, 5)] == ["MATCH"] * 4


def test_a_confident_misreading_in_a_column_that_does_not_add_up_is_reading_suspect(
    database_url, tmp_path
):
    import_typed(database_url, tmp_path / "r.csv", {MESA: {1: COLUMN_275}})
    misread = [127, *COLUMN_275[1:]]  # 1 read as 7: the column now sums to 281
    add_reading(database_url, MESA, {1: misread}, sobres=275, totals={1: 275})

    reconcile(database_url)

    cell = verdicts(database_url)[key(MESA, 1, 0)]
    assert cell["verdict"] == "READING_SUSPECT"
    assert (cell["manual_value"], cell["reading_value"]) == (121, 127)
    assert cell["reading_column_sum"] == 281 and not cell["reading_column_consistent"]
    assert cell["manual_column_consistent"]


def test_unsure_readings_go_to_a_person_unless_they_agree_with_the_typed_value(
    database_url, tmp_path
):
    import_typed(database_url, tmp_path / "r.csv", {MESA: {1: COLUMN_275, 2: COLUMN_275}})
    column_1 = [
        CellRead(127, confidence=0.5),  # below the threshold, disagrees
        CellRead(100, confidence=0.5),  # below the threshold, agrees
        CellRead(48, confidence=0.99, flags=["SUM_MISMATCH"]),  # flagged, disagrees
        CellRead(None, confidence=0.1, flags=["ILLEGIBLE"]),  # no value
        4,
    ]
    # Column 2: a confident disagreement in a column that adds up, typed column too:
    # swapped digits in two rows keep both sums (neither side is singled out).
    column_2 = [CellRead(100), CellRead(121), 40, 10, 4]
    add_reading(database_url, MESA, {1: column_1, 2: column_2}, sobres=275)

    reconcile(database_url)

    found = _only(database_url)
    assert [found[key(MESA, 1, i)] for i in range(5)] == [
        "READING_UNSURE",
        "MATCH",
        "READING_UNSURE",
        "READING_UNSURE",
        "MATCH",
    ]
    assert [found[key(MESA, 2, i)] for i in range(2)] == ["READING_SUSPECT"] * 2


def test_the_confidence_threshold_decides_what_is_unsure(database_url, tmp_path):
    import_typed(database_url, tmp_path / "r.csv", {MESA: {1: [21, *COLUMN_275[1:]]}})
    add_reading(database_url, MESA, {1: [CellRead(121, 0.95), *COLUMN_275[1:]]}, sobres=275)

    reconcile(database_url, full=True, threshold=0.9)
    assert _only(database_url)[key(MESA, 1, 0)] == "MANUAL_SUSPECT"
    reconcile(database_url, full=True, threshold=0.97)
    assert _only(database_url)[key(MESA, 1, 0)] == "READING_UNSURE"


def test_cells_on_one_side_only_are_missing_on_the_other(database_url, tmp_path):
    import_typed(database_url, tmp_path / "r.csv", {MESA: {1: COLUMN_275}})
    add_reading(database_url, OTHER, {1: COLUMN_275}, sobres=275)  # not typed yet
    add_reading(database_url, MESA, {1: COLUMN_275}, sobres=275, status="processing")

    reconcile(database_url)

    assert set(_only(database_url, MESA).values()) == {"MISSING_READING"}
    missing_manual = verdicts(database_url, OTHER)
    assert {row["verdict"] for row in missing_manual.values()} == {"MISSING_MANUAL"}
    assert missing_manual[key(OTHER, 1, 0)]["reading_value"] == 121


def test_the_current_recognition_of_the_latest_done_scan_counts(database_url, tmp_path):
    import_typed(database_url, tmp_path / "r.csv", {MESA: {1: COLUMN_275}})
    now = datetime.now(UTC)
    add_reading(database_url, MESA, {1: [7, *COLUMN_275[1:]]}, 275, finished_at=now)
    add_reading(
        database_url, MESA, {1: COLUMN_275}, 275, path="/scans/rescan.png",
        finished_at=now + timedelta(minutes=5),
    )  # fmt: skip
    add_reading(
        database_url, MESA, {1: [9, *COLUMN_275[1:]]}, 275, path="/scans/later-failed.png",
        finished_at=now + timedelta(minutes=9), status="failed",
    )  # fmt: skip

    reconcile(database_url)
    assert set(_only(database_url).values()) == {"MATCH"}

    # A newer model version's recognition of the rescan becomes current: it counts instead.
    with get_engine(database_url).begin() as connection:
        connection.execute(text("UPDATE recognition SET is_current = false"))
        connection.execute(
            text("""UPDATE recognition SET is_current = true
                    WHERE scan_id = (SELECT id FROM scan WHERE path = '/scans/telegram.png')""")
        )
    reconcile(database_url)
    assert _only(database_url)[key(MESA, 1, 0)] != "MATCH"


def test_running_again_changes_nothing(database_url, tmp_path):
    import_typed(database_url, tmp_path / "r.csv", {MESA: {1: [21, *COLUMN_275[1:]]}})
    add_reading(database_url, MESA, {1: COLUMN_275}, sobres=275)
    reconcile(database_url)
    before = verdicts(database_url)

    incremental = reconcile(database_url)
    full = reconcile(database_url, full=True)

    assert incremental.mesas == 0 and incremental.cells == 0
    assert (full.mesas, full.cells, full.inserted, full.updated, full.deleted) == (1, 5, 0, 0, 0)
    assert verdicts(database_url) == before


def test_incremental_runs_touch_only_the_mesas_that_changed(database_url, tmp_path):
    import_typed(database_url, tmp_path / "r.csv", {MESA: {1: COLUMN_275}, OTHER: {1: COLUMN_275}})
    add_reading(database_url, MESA, {1: COLUMN_275}, sobres=275)
    add_reading(database_url, OTHER, {1: COLUMN_275}, sobres=275)
    first = reconcile(database_url)
    assert first.mesas == 2
    other_before = verdicts(database_url, OTHER)

    # The typed count of one mesa is corrected to a wrong value (re-import of that mesa).
    import_typed(database_url, tmp_path / "r2.csv", {MESA: {1: [21, *COLUMN_275[1:]]}})
    second = reconcile(database_url)

    # Every cell of the column changes: its verdict or its evidence (the typed column sum).
    assert (second.mesas, second.cells, second.updated) == (1, 5, 5)
    assert {row["manual_column_sum"] for row in verdicts(database_url, MESA).values()} == {175}
    assert _only(database_url, MESA)[key(MESA, 1, 0)] == "MANUAL_SUSPECT"
    assert verdicts(database_url, OTHER) == other_before  # same rows, same updated_at

    # A new scan of the other mesa marks it (and only it).
    add_reading(database_url, OTHER, {1: [7, *COLUMN_275[1:]]}, 275, path="/scans/other-2.png")
    third = reconcile(database_url)
    assert third.mesas == 1
    assert _only(database_url, OTHER)[key(OTHER, 1, 0)] == "READING_SUSPECT"


def test_a_deleted_scan_takes_its_reading_only_verdicts_with_it(database_url, tmp_path):
    import_typed(database_url, tmp_path / "r.csv", {MESA: {1: COLUMN_275}})
    add_reading(database_url, MESA, {1: COLUMN_275, 2: COLUMN_275}, sobres=275)
    reconcile(database_url)
    assert len(verdicts(database_url)) == 10  # column 2 was never typed: MISSING_MANUAL

    with get_engine(database_url).begin() as connection:
        connection.execute(text("DELETE FROM scan"))
    stats = reconcile(database_url)

    assert stats.deleted == 5
    assert set(_only(database_url).values()) == {"MISSING_READING"}
    assert len(verdicts(database_url)) == 5


def test_a_run_is_recorded(database_url, tmp_path):
    import_typed(database_url, tmp_path / "r.csv", {MESA: {1: COLUMN_275}})
    reconcile(database_url)
    with get_engine(database_url).connect() as connection:
        run = connection.execute(text("SELECT * FROM reconcile_run")).mappings().one()
    assert (run["full_run"], run["mesas"], run["cells"], run["inserted"]) == (False, 1, 5, 5)


def test_a_mesa_marked_again_during_a_run_stays_dirty_for_the_next(database_url, tmp_path):
    import threading
    import time

    import_typed(database_url, tmp_path / "r.csv", {MESA: {1: COLUMN_275}})
    add_reading(database_url, MESA, {1: COLUMN_275}, sobres=275)  # MESA is dirty (committed)
    retype = text(
        """UPDATE manual_entry SET votos_cantidad = 21
           WHERE votos_cantidad = 121"""
    )
    engine = get_engine(database_url)
    writer = engine.connect()
    writer.begin()
    writer.execute(retype)  # marks MESA again; not committed: the run cannot see it
    result = {}

    def reconcile_in_thread():
        try:
            result["stats"] = reconcile(database_url)
        except Exception as exc:  # reported by the assertions below
            result["error"] = exc

    run = threading.Thread(target=reconcile_in_thread)
    run.start()
    try:
        # The run reads the older mark, computes, then waits on the writer's row to clear it.
        deadline = time.monotonic() + 30
        waiting = 0
        while not waiting and time.monotonic() < deadline:
            time.sleep(0.05)
            # a new transaction each time: pg_stat_activity is a per-transaction snapshot
            with engine.connect() as probe:
                waiting = probe.execute(
                    text("""SELECT count(*) FROM pg_stat_activity
                            WHERE wait_event_type = 'Lock' AND datname = current_database()""")
                ).scalar()
        assert waiting, f"the run never reached the marks: {result}"
    finally:
        writer.commit()
        writer.close()
        run.join(30)

    assert result["stats"].mesas == 1
    assert set(_only(database_url).values()) == {"MATCH"}  # computed before the retyping
    with engine.connect() as connection:
        assert connection.execute(text("SELECT mesa_code FROM reconcile_dirty_mesa")).all() == [
            (MESA,)
        ]
    reconcile(database_url)
    assert _only(database_url)[key(MESA, 1, 0)] == "MANUAL_SUSPECT"


def test_a_typing_error_is_found_even_when_a_neighbour_is_misread(database_url, tmp_path):
    # Typed 21 for 121; on the telegram the 40 was read as 46 with low confidence, so the
    # reading column adds up to 281 and the decoder flagged the column SUM_MISMATCH.
    import_typed(database_url, tmp_path / "r.csv", {MESA: {1: [21, *COLUMN_275[1:]]}})
    column = [
        CellRead(121, flags=["SUM_MISMATCH"]),
        CellRead(100, flags=["SUM_MISMATCH"]),
        CellRead(46, confidence=0.6, flags=["LOW_CONFIDENCE", "SUM_MISMATCH"]),
        CellRead(10, flags=["SUM_MISMATCH"]),
        CellRead(4, flags=["SUM_MISMATCH"]),
    ]
    add_reading(database_url, MESA, {1: column}, sobres=275, totals={1: 275})

    reconcile(database_url)

    found = verdicts(database_url)
    typo = found[key(MESA, 1, 0)]
    assert typo["verdict"] == "MANUAL_SUSPECT"
    assert not typo["reading_column_consistent"] and typo["manual_column_repairable"]
    assert typo["envelopes"] == 275
    assert found[key(MESA, 1, 2)]["verdict"] == "READING_UNSURE"  # the misread neighbour


def test_two_typing_errors_in_one_column_are_both_found(database_url, tmp_path):
    typed = [21, 100, 4, 10, 4]  # 121 -> 21 and 40 -> 4: the typed column adds up to 139
    import_typed(database_url, tmp_path / "r.csv", {MESA: {1: typed}})
    add_reading(database_url, MESA, {1: COLUMN_275}, sobres=275)

    reconcile(database_url)

    found = _only(database_url)
    assert [found[key(MESA, 1, i)] for i in range(5)] == [
        "MANUAL_SUSPECT", "MATCH", "MANUAL_SUSPECT", "MATCH", "MATCH",
    ]  # fmt: skip


def test_a_confident_misreading_does_not_repair_a_correct_typed_column(database_url, tmp_path):
    # Typed right; read 127 for 121 confidently while another cell is flagged: the typed
    # column already adds up, so nothing points at the typist.
    import_typed(database_url, tmp_path / "r.csv", {MESA: {1: COLUMN_275}})
    column = [CellRead(127, flags=["SUM_MISMATCH"]), 100, 40, 10, 4]
    add_reading(database_url, MESA, {1: column}, sobres=275, totals={1: 275})

    reconcile(database_url)

    cell = verdicts(database_url)[key(MESA, 1, 0)]
    assert cell["verdict"] == "READING_UNSURE" and not cell["manual_column_repairable"]


def test_the_envelopes_are_what_most_of_the_telegram_and_the_typed_sums_agree_on(
    database_url, tmp_path
):
    # The header's sobres was misread (215); three columns' totals and typed sums say 275.
    import_typed(
        database_url, tmp_path / "r.csv",
        {MESA: {1: [21, *COLUMN_275[1:]], 2: COLUMN_275, 3: COLUMN_275}},
    )  # fmt: skip
    add_reading(database_url, MESA, {1: COLUMN_275, 2: COLUMN_275, 3: COLUMN_275}, sobres=215)

    reconcile(database_url)

    typo = verdicts(database_url)[key(MESA, 1, 0)]
    assert typo["envelopes"] == 275 and typo["reading_sobres"] == 215
    assert typo["verdict"] == "MANUAL_SUSPECT"  # repaired: 175 - 21 + 121 = 275


def test_a_typing_error_next_to_a_confident_misreading_is_still_found(database_url, tmp_path):
    # Typed 21 for 121; the 40 was read as 46, confidently: replacing both typed values gives
    # 281, but the typist's 21 alone replaced by the reading gives the 275 envelopes.
    import_typed(database_url, tmp_path / "r.csv", {MESA: {1: [21, *COLUMN_275[1:]]}})
    column = [CellRead(v, flags=["SUM_MISMATCH"]) for v in (121, 100, 46, 10, 4)]
    add_reading(database_url, MESA, {1: column}, sobres=275, totals={1: 275})

    reconcile(database_url)

    found = verdicts(database_url)
    assert found[key(MESA, 1, 0)]["verdict"] == "MANUAL_SUSPECT"
    misread = found[key(MESA, 1, 2)]
    assert misread["verdict"] == "READING_UNSURE" and not misread["manual_column_repairable"]
