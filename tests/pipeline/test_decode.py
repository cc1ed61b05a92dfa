"""Number decoding, calibration and the sum rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.decode import (
    Calibration,
    Flag,
    NumberReading,
    apply_header_rule,
    apply_sum_rule,
    calibrate,
    decode_number,
    fit_calibration,
    illegible,
    mismatch_suspects,
    one_misreading_apart,
    reliability,
    resolve_against_sobres,
)
from pipeline.errors import BadInput


def probs_for(text: str, sure: float = 0.999, alternatives: dict | None = None, classes: int = 10):
    """(k, classes) probabilities reading ``text``: each digit gets ``sure``; alternatives maps
    a digit position to {other digit: probability} taken from that position's best."""
    rows = []
    for position, char in enumerate(text):
        row = np.full(classes, 0.0)
        others = (alternatives or {}).get(position, {})
        best = sure - sum(others.values())
        row[int(char)] = best
        for other, probability in others.items():
            row[other] = probability
        spare = 1.0 - row.sum()
        free = [c for c in range(classes) if row[c] == 0.0]
        row[free] = spare / len(free)
        rows.append(row)
    return np.array(rows)


def reading(text: str, sure: float = 0.999, alternatives: dict | None = None) -> NumberReading:
    return decode_number(probs_for(text, sure, alternatives))


EMPTY = decode_number(np.zeros((0, 10)))


# --------------------------------------------------------------------------- decode_number


def test_number_is_the_best_digits_and_confidence_their_product():
    result = decode_number(probs_for("12", alternatives={0: {7: 0.1}, 1: {7: 0.2}}))
    assert result.value == 12 and result.text == "12"
    assert result.confidence == pytest.approx(0.899 * 0.799)
    assert Flag.LOW_CONFIDENCE in result.flags and not result.accepted
    texts = [text for text, _ in result.alternatives]
    assert texts[:2] == ["12", "17"]
    probabilities = [p for _, p in result.alternatives]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) <= 1.0 + 1e-9


def test_a_count_above_the_bound_reads_as_its_possible_alternative():
    """A flagged 1 read as a 7 (0.6 against 0.4) makes "107" read "707": above a bound of
    400 (no mesa has that many electors) it is impossible, and the possible readings share
    its probability: 107, surely, yet reviewed (LOW_CONFIDENCE) until a sum rule confirms
    it: a column adding up to it makes it accepted."""
    probs = probs_for("707", alternatives={0: {1: 0.4}})
    assert decode_number(probs).value == 707
    bounded = decode_number(probs, max_value=400)
    assert bounded.value == 107 and bounded.confidence > 0.99
    assert Flag.LOW_CONFIDENCE in bounded.flags and not bounded.accepted
    assert all(int(text) <= 400 for text, _ in bounded.alternatives if text)
    column = apply_sum_rule([bounded, reading("40")], reading("147"), reading("147"))
    assert column.rows[0].value == 107 and column.rows[0].accepted


def test_a_surely_read_impossible_count_is_not_made_sure_by_the_bound():
    """A "707" read at 0.996, "107" at 0.0015 and every other possible reading far below:
    the bound drops 707 but does not make 107 sure (renormalised, it would be 0.99)."""
    probs = probs_for("707", sure=0.9995, alternatives={0: {1: 0.0015}})
    bounded = decode_number(probs, max_value=400)
    assert bounded.value != 707 and not bounded.accepted


def test_the_bound_keeps_its_own_value_and_drops_the_next():
    assert decode_number(probs_for("400"), max_value=400).value == 400
    assert decode_number(probs_for("401", alternatives={2: {0: 0.3}}), max_value=400).value == 400


def test_the_bound_does_not_make_a_shorter_reading_sure():
    """First piece a 7 (0.5) or "not a digit" (0.48), then "07": "707" is impossible, but
    the bound says which number, not how many digits: "07" keeps its 0.48 and is reviewed
    (renormalised with the three-digit readings it would read 7 at 0.92, accepted)."""
    first = np.full(11, 0.02 / 9)
    first[7], first[10] = 0.5, 0.48
    probs = np.vstack([first, probs_for("07", classes=11)])
    assert decode_number(probs).value == 707
    bounded = decode_number(probs, max_value=400)
    assert bounded.value != 707 and not bounded.accepted


def test_a_piece_read_as_no_digit_does_not_make_a_count_illegible():
    """A "267" and, at the cell's edge, a line remnant cut in two, both halves "not a
    digit": five pieces, but three digits read, so the count is read (it was ILLEGIBLE, too
    many pieces). Five digits read are still too many."""
    from pipeline.decode import decode_pieces

    junk = np.full(11, 0.01)
    junk[10] = 0.9
    digits = [[(1.0, probs_for(d, classes=11))] for d in "267"]
    remnant = [[(1.0, np.vstack([junk, junk]))]]
    assert decode_pieces(digits + remnant).value == 267
    five = [[(1.0, probs_for(d, classes=11))] for d in "26711"]
    assert decode_pieces(five + remnant).value is None


def test_a_cell_with_no_possible_reading_is_illegible():
    """Every first digit considered is 6 or more: no three-digit reading is 400 or less."""
    first = np.array([0, 0, 0, 0, 0, 0, 0.1, 0.1, 0.1, 0.7])
    probs = np.vstack([first, probs_for("99")])
    reading = decode_number(probs, max_value=400)
    assert reading.value is None and Flag.ILLEGIBLE in reading.flags


def test_confident_number_is_accepted_without_flags():
    result = reading("305")
    assert result.value == 305 and result.flags == frozenset() and result.accepted


def test_leading_zero_is_kept_in_the_text():
    result = reading("07")
    assert result.text == "07" and result.value == 7


def test_empty_cell_reads_zero_flagged_empty_and_is_accepted():
    assert EMPTY.value == 0 and EMPTY.text == ""
    assert EMPTY.flags == {Flag.EMPTY}
    assert EMPTY.accepted


def test_not_a_digit_pieces_are_dropped_from_the_number():
    probs = probs_for("3", classes=11)
    junk = np.full((1, 11), 0.01)
    junk[0, 10] = 0.9
    result = decode_number(np.vstack([probs, junk]))
    assert result.text == "3"
    assert result.confidence == pytest.approx(0.999 * 0.9)
    only_junk = decode_number(junk)
    assert only_junk.value == 0 and Flag.EMPTY in only_junk.flags


def test_too_many_pieces_is_illegible():
    result = decode_number(probs_for("12345"))
    assert result.value is None and Flag.ILLEGIBLE in result.flags and not result.accepted


def test_very_uncertain_number_is_illegible():
    flat = np.full((2, 10), 0.1)
    result = decode_number(flat)
    assert result.value is None and Flag.ILLEGIBLE in result.flags


def test_struck_through_is_flagged_for_review():
    result = decode_number(probs_for("25"), struck_through=True)
    assert result.value == 25 and Flag.STRUCK_THROUGH in result.flags and not result.accepted


def test_bad_probability_shape_is_rejected():
    with pytest.raises(BadInput, match="10\\|11"):
        decode_number(np.ones((2, 7)) / 7)


# --------------------------------------------------------------------------- calibration


def test_temperature_above_one_softens_and_one_is_identity():
    probs = probs_for("4", sure=0.99)
    assert np.allclose(calibrate(probs, 1.0), probs)
    assert calibrate(probs, 2.0).max() < 0.99
    assert calibrate(probs, 0.5).max() > 0.99


def test_fit_calibration_softens_an_overconfident_model():
    """Readings said 0.99 but right only 85% of the time: the fitted calibration maps 0.99
    near 0.85 and is applied by decode_number."""
    rng = np.random.default_rng(0)
    correct = rng.random(400) < 0.85
    calibration = fit_calibration([0.99] * 400, correct)
    assert abs(calibration(0.99) - correct.mean()) < 0.02
    result = decode_number(probs_for("4", sure=0.99), calibration=calibration)
    assert result.confidence == pytest.approx(calibration(0.99))
    assert result.alternatives[0][1] == pytest.approx(result.confidence)


def test_fit_calibration_separates_right_from_wrong_by_raw_confidence():
    raw = [0.6] * 100 + [0.999] * 100
    correct = [i % 2 == 0 for i in range(100)] + [True] * 99 + [False]
    calibration = fit_calibration(raw, correct)
    assert calibration(0.6) < 0.7 and calibration(0.999) > 0.97
    assert Calibration()(0.73) == pytest.approx(0.73)


def test_reliability_table_counts_and_error():
    rows, ece = reliability([0.95, 0.95, 0.6, 0.6], [True, False, True, True])
    assert sum(row["n"] for row in rows) == 4
    assert ece == pytest.approx((2 * abs(0.95 - 0.5) + 2 * abs(0.6 - 1.0)) / 4)


# --------------------------------------------------------------------------- sum rule


def column_as_read():
    """A column whose handwritten numbers are 12, 35, 40, (empty) and total 87."""
    return [reading("12"), reading("35"), reading("40"), EMPTY]


def test_consistent_column_is_kept_and_confidences_raised():
    rows = [reading("12", sure=0.85), reading("35"), reading("40"), EMPTY]
    assert Flag.LOW_CONFIDENCE in rows[0].flags
    result = apply_sum_rule(rows, reading("87"), reading("87"))
    assert result.flags == frozenset() and result.changed == ()
    assert [r.value for r in result.rows] == [12, 35, 40, 0]
    assert result.rows[0].confidence > rows[0].confidence
    assert Flag.LOW_CONFIDENCE not in result.rows[0].flags


def test_sum_rule_fixes_a_planted_single_digit_error():
    rows = column_as_read()
    rows[1] = reading("36", alternatives={1: {5: 0.3}})  # a 5 misread as 6 (second choice 5)
    result = apply_sum_rule(rows, reading("87"), reading("87"))
    assert [r.value for r in result.rows] == [12, 35, 40, 0]
    assert result.changed == (1,)
    assert result.flags == {Flag.CORRECTED_BY_SUM}
    assert Flag.CORRECTED_BY_SUM in result.rows[1].flags
    assert result.rows[1].accepted and result.posterior >= 0.95
    assert all(Flag.CORRECTED_BY_SUM not in r.flags for i, r in enumerate(result.rows) if i != 1)


def test_sum_rule_takes_an_alternative_half_a_percent_as_probable_as_the_best():
    """A misread 35 whose 5 is the classifier's second choice at 0.005: the column adds up
    with it alone, so it is taken (CONSISTENCY_WEIGHT 10,000: ~0.2% is enough)."""
    rows = column_as_read()
    rows[1] = reading("36", alternatives={1: {5: 0.005}})
    result = apply_sum_rule(rows, reading("87"), reading("87"))
    assert [r.value for r in result.rows] == [12, 35, 40, 0]
    assert result.changed == (1,) and result.posterior >= 0.95


def test_sum_rule_fixes_a_misread_total_that_rows_and_sobres_agree_on():
    total = reading("81", alternatives={1: {7: 0.25}})
    result = apply_sum_rule(column_as_read(), total, reading("87"))
    assert result.total.value == 87 and result.changed == (4,)


def flagged(result) -> list[int]:
    return [i for i, r in enumerate(result.readings) if Flag.SUM_MISMATCH in r.flags]


def test_a_total_that_alone_disagrees_with_rows_and_sobres_is_the_only_suspect():
    """87 written, the total's "8" lost by the scan: read "7", surely, with no alternative that
    repairs the column. The rows add up to sobres as read, so only the total is flagged (any
    other single misreading would leave total != sobres); read at 0.99 a writer's slip is
    twice as likely as a misreading (``_misread_posterior``), so its value stays as read."""
    rows = column_as_read()
    total = decode_number(probs_for("7", sure=0.99))
    result = apply_sum_rule(rows, total, reading("87"))
    assert result.flags == {Flag.SUM_MISMATCH} and result.changed == ()
    assert result.lone_suspect == 4 and flagged(result) == [4]
    assert result.total.value == 7
    assert all(r.accepted for r in result.rows)


@pytest.mark.parametrize(
    "text, sure, corrected", [("17", 0.7, True), ("17", 0.95, True), ("161", 0.965, False)]
)
def test_a_doubtful_total_that_alone_disagrees_takes_the_sum_rows_and_sobres_agree_on(
    text, sure, corrected
):
    """171 written, its "7" and "1" run together and read as one "7": "17" at 0.49 (0.7 per
    digit), no alternative repairs the column. The rows add up to sobres (171) as read, so
    the total was misread rather than miswritten (0.998): it takes 171, CORRECTED_BY_SUM,
    like any correction of the rule. Read "17" at 0.90 it was still misread (0.99): a slip
    of addition keeps the sum's magnitude, the reader loses digits that ran together. "161"
    at 0.90 is a slip as well as a misreading (0.85, under MIN_POSTERIOR): its value stays
    as read, flagged."""
    rows = [reading("120"), reading("51")]
    result = apply_sum_rule(rows, decode_number(probs_for(text, sure=sure)), reading("171"))
    assert result.lone_suspect == 2
    if corrected:
        assert result.total.value == 171 and result.total.accepted
        assert result.flags == {Flag.CORRECTED_BY_SUM} and result.changed == (2,)
    else:
        assert result.total.value == 161 and flagged(result) == [2]
    assert all(r.accepted for r in result.rows) and result.readings[3].value == 171


def test_a_total_whose_marks_may_be_a_blank_keeps_its_reading():
    """A total left blank, a speck in it read "1" at 0.50 and "not a digit" at 0.45: blank
    is its reading's second choice. Rows and sobres say 169, but a blank total with a mark
    explains the reading better than a misread 169 (0.33): it is not made 169."""
    speck = decode_number(probs_for("1", sure=0.95, alternatives={0: {10: 0.45}}, classes=11))
    assert speck.text == "1" and dict(speck.alternatives)[""] == pytest.approx(0.45)
    rows = [reading("120"), reading("49")]
    result = apply_sum_rule(rows, speck, reading("169"))
    assert result.total.value == 1 and flagged(result) == [2]


def column_of_239(second_choice: float = 0.3) -> list[NumberReading]:
    """Rows written 120, 35 and 84 (239), the 35 read "36", 5 its digit's second choice."""
    return [reading("120"), reading("36", alternatives={1: {5: second_choice}}), reading("84")]


def test_a_misread_total_and_a_misread_row_are_resolved_against_a_confirmed_sobres():
    """239 written, the total read "29" (its 3 lost) at 0.49 and a row's 35 read "36": two
    misreadings, which the one-change search cannot repair (no reading of the total is 239).
    Against the sobres other columns confirm, the total was misread (one digit lost, a
    slip keeps the magnitude) and the rows need one correction, 36 -> 35: both are made."""
    rows, total, sobres = column_of_239(), decode_number(probs_for("29", 0.7)), reading("239")
    assert Flag.SUM_MISMATCH in apply_sum_rule(rows, total, sobres).flags
    result = resolve_against_sobres(rows, total, sobres)
    assert result is not None and result.changed == (1, 3)
    assert [r.value for r in result.readings] == [120, 35, 84, 239]
    assert all(r.accepted for r in result.readings)
    assert Flag.CORRECTED_BY_SUM in result.rows[1].flags
    assert Flag.CORRECTED_BY_SUM in result.total.flags


@pytest.mark.parametrize(
    "total, second_choice",
    [
        (reading("229", sure=0.997), 0.3),  # read surely, a slip more likely: not misread
        (illegible(np.zeros((0, 10))), 0.3),  # unread: nothing says it was misread
        (decode_number(probs_for("29", 0.7)), 0.005),  # enough for 0.95, not for 0.99
    ],
)
def test_a_column_is_not_resolved_against_sobres_unless_both_misreadings_are_sure(
    total, second_choice
):
    """No second look when the total may be right as written or cannot be read, nor when the
    rows' correction is under RECHECK_POSTERIOR: a column already holding a misreading
    holds others more often than its confidences say."""
    assert resolve_against_sobres(column_of_239(second_choice), total, reading("239")) is None


def test_a_column_at_odds_in_one_cell_unread_or_mended_through_sobres_is_not_resolved():
    """Rows adding up, as read, to their total (229: sobres alone disagrees, which a
    writer's slip explains as well as two misreadings) are ``_lone_outlier``'s to weigh; a
    row that cannot be read would take whatever value the column lacks, its other
    misreadings included; and rows adding up to 238 against a sobres read "239" with 238 as
    its second choice are not made consistent by changing sobres, which another column
    confirmed."""
    doubtful_109 = reading("109", sure=0.9, alternatives={1: {1: 0.3}})
    agreeing = [doubtful_109, reading("120")]
    doubtful_229 = reading("229", sure=0.8)  # misread rather than miswritten (0.98) alone
    assert resolve_against_sobres(agreeing, doubtful_229, reading("239")) is None
    unread_35 = [reading("120"), reading("35", sure=0.5), reading("84")]  # 35 at 0.25
    assert unread_35[1].value is None and Flag.ILLEGIBLE in unread_35[1].flags
    misread_total = decode_number(probs_for("29", 0.7))
    assert resolve_against_sobres(unread_35, misread_total, reading("239")) is None
    sobres = reading("239", sure=0.9, alternatives={2: {8: 0.08}})
    slip = [reading("120"), reading("34"), reading("84")]
    assert resolve_against_sobres(slip, decode_number(probs_for("29", 0.7)), sobres) is None


def test_a_sobres_that_alone_disagrees_with_rows_and_total_is_the_only_suspect():
    rows = column_as_read()
    result = apply_sum_rule(rows, reading("87"), decode_number(probs_for("8", sure=0.99)))
    assert result.lone_suspect == 5 and flagged(result) == [5]
    assert all(r.accepted for r in result.readings[:5])


def test_rows_adding_up_to_the_odd_cell_by_chance_keep_their_own_doubt():
    """Two doubtful rows and a doubtful total that happen to add up (a 2 read 7 in both 42
    and 172) while a sure sobres says 167: the rule does not confirm them."""
    rows = [reading("47", sure=0.8), reading("125")]
    total = reading("172", sure=0.8)
    result = apply_sum_rule(rows, total, decode_number(probs_for("167", sure=0.99999)))
    assert result.lone_suspect == 3
    assert [Flag.LOW_CONFIDENCE in r.flags for r in result.readings[:3]] == [True, False, True]
    assert result.rows[0].confidence == rows[0].confidence


def test_a_doubtful_row_adding_up_to_a_misread_sobres_stays_a_suspect():
    """42 + 120 = 162 with a right total, but the writer's 2s read as 7s: "47" (0.95) and a
    sobres "167". The rows add up to sobres, so the total looks like the odd one; a second
    misreading hiding the first is likely enough here that the "47" and sobres are flagged
    too, while the sure "120" is not; the total, not the only suspect, keeps its value."""
    rows = [decode_number(probs_for("47", sure=0.975)), reading("120", sure=0.99999)]
    total = decode_number(probs_for("162", sure=0.99))
    sobres = decode_number(probs_for("167", sure=0.99))
    result = apply_sum_rule(rows, total, sobres)
    assert result.lone_suspect == 2
    assert flagged(result) == [0, 2, 3] and result.total.value == 162


def test_a_total_and_sobres_read_alike_are_not_suspects():
    """A column of sure readings 8 short of a total and sobres both read 95 (a writer's slip
    or a confident misreading): every row is flagged, not the two cells that confirm each
    other, as no one digit mistake turns "95" into the 87 the rows add up to."""
    rows = [decode_number(probs_for(text, sure=0.99999)) for text in ("12", "35", "40")]
    total = decode_number(probs_for("95", sure=0.99))
    result = apply_sum_rule(rows, total, decode_number(probs_for("95", sure=0.99)))
    assert result.flags == {Flag.SUM_MISMATCH} and result.lone_suspect is None
    assert flagged(result) == [0, 1, 2]


def test_a_total_and_sobres_that_both_lost_a_digit_are_suspects():
    """One writer's "208" read "20" surely in the total and in sobres; the rows add up to
    208. Agreeing does not clear them: "20" is one lost digit from 208."""
    rows = [reading("120", sure=0.99999), reading("88", sure=0.99999)]
    twenty = decode_number(probs_for("20", sure=0.9999))
    result = apply_sum_rule(rows, twenty, twenty)
    assert {2, 3} <= set(flagged(result))


def test_a_column_that_does_not_add_up_always_flags_a_cell():
    """No rows, a total and sobres of 57 read alike: nothing else can be wrong."""
    result = apply_sum_rule([], reading("57"), reading("57"))
    assert result.flags == {Flag.SUM_MISMATCH} and flagged(result) == [0, 1]


def test_sum_rule_refuses_a_column_with_two_independent_errors():
    rows = column_as_read()
    rows[0] = reading("17", alternatives={1: {2: 0.3}})
    rows[1] = reading("38", alternatives={1: {5: 0.3}})
    result = apply_sum_rule(rows, reading("87"), reading("87"))
    assert result.flags == {Flag.SUM_MISMATCH}
    assert [r.value for r in result.rows] == [17, 38, 40, 0]
    assert all(Flag.SUM_MISMATCH in r.flags and not r.accepted for r in result.rows[:2])


def test_an_unresolved_column_flags_only_the_cells_that_may_be_misread():
    """Two doubtful cells whose alternatives do not repair the sum: they are the suspects;
    the sure readings of the column stay accepted."""
    rows = column_as_read()
    rows[0] = reading("17", alternatives={1: {1: 0.3}})
    rows[1] = reading("38", alternatives={1: {9: 0.3}})
    sure_total = decode_number(probs_for("87", sure=0.99999))
    rows[2] = decode_number(probs_for("40", sure=0.99999))
    result = apply_sum_rule(rows, sure_total, sure_total)
    assert result.flags == {Flag.SUM_MISMATCH}
    flagged = [i for i, r in enumerate(result.readings) if Flag.SUM_MISMATCH in r.flags]
    assert flagged == [0, 1]
    assert all(r.accepted for i, r in enumerate(result.readings) if i not in flagged)


def test_a_column_of_sure_readings_that_does_not_add_up_is_flagged_whole():
    """Nothing points at one cell (a writer's slip, or a confident misreading): all are flagged."""
    rows = [decode_number(probs_for(text, sure=0.99999)) for text in ("12", "35", "40")]
    total = decode_number(probs_for("88", sure=0.99999))
    result = apply_sum_rule(rows, total)
    assert all(Flag.SUM_MISMATCH in r.flags for r in result.readings)


def test_mismatch_suspects_weigh_each_cell_against_the_column():
    doubtful, sure = reading("36", sure=0.9), decode_number(probs_for("5", sure=0.99999))
    assert mismatch_suspects([doubtful, sure, sure]) == {0}
    assert mismatch_suspects([sure, sure]) == {0, 1}
    ink_not_a_digit = decode_number(np.array([[0.0] * 10 + [1.0]]))
    assert ink_not_a_digit.text == "" and ink_not_a_digit.confidence > 0.99
    assert mismatch_suspects([ink_not_a_digit, doubtful, sure]) == {0, 1}


@pytest.mark.parametrize(
    ("read", "written", "one_apart"),
    [
        ("217", 247, True),  # one digit read as another
        ("4", 47, True),  # one digit lost
        ("17", 1, True),  # a speck read as a digit
        ("", 7, True),  # a faint digit missed
        ("217", 217, True),
        ("16", 4, False),
        ("12", 21, False),
        ("5", 135, False),
        ("7", -3, False),  # counts are never negative
    ],
)
def test_one_misreading_apart_is_one_digit_wrong_lost_or_added(read, written, one_apart):
    assert one_misreading_apart(read, written) is one_apart


def test_mismatch_suspects_follow_the_difference_the_column_is_off_by():
    """38 + 36 + 9 = 83 read "38 + 36 + 4 = 83": off by 5. Only the "4" becomes what it must
    be (9) with one digit changed; 38 -> 43, 36 -> 41 and 83 -> 78 would each take two, so the
    sure readings around the doubtful one stay accepted."""
    sure_38, sure_36, sure_83 = (reading(text, sure=0.9995) for text in ("38", "36", "83"))
    doubtful_4 = reading("4", sure=0.9)
    cells = [sure_38, sure_36, doubtful_4, sure_83]
    assert mismatch_suspects(cells) == {0, 1, 2, 3}
    assert mismatch_suspects(cells, implied=[43, 41, 9, 78]) == {2}


def test_without_a_doubtful_cell_that_explains_it_the_difference_clears_no_cell():
    """Two mistakes or a writer's slip (nothing one digit away), or only a blank cell that
    cannot be wrong "explains" it: the difference says nothing about who is wrong."""
    sure_12, sure_36, sure_88 = (reading(text, sure=0.9995) for text in ("12", "36", "88"))
    doubtful_5 = reading("5", sure=0.9)
    cells = [sure_12, sure_36, doubtful_5, sure_88]
    assert mismatch_suspects(cells) == {0, 1, 2, 3}
    assert mismatch_suspects(cells, implied=[567, 591, 560, 33]) == {0, 1, 2, 3}
    blank = decode_number(np.zeros((0, 10)))  # nothing written: EMPTY, a sure 0
    assert blank.text == "" and blank.value == 0
    # 38 + 36 + blank = 83 read as written: 9 short, and only the blank is one digit from it
    surer = [reading(text, sure=0.9999) for text in ("38", "36", "83")]
    cells = [surer[0], surer[1], blank, surer[2]]
    assert mismatch_suspects(cells) == {0, 1, 3}
    assert mismatch_suspects(cells, implied=[47, 45, 9, 74]) == {0, 1, 3}


def test_a_cell_that_would_have_to_be_negative_is_not_the_suspect():
    """60 + 28 + 14 = 102 read "613 + 28 + 14 = 102" (a 0 cut into "13"): 553 over. No cell is
    one digit from what it must be, but of the rows only the "613" can be 553 less and stay a
    count: the "28" and "14" beside it (-525, -539) stay accepted; the total could be 655."""
    doubtful_613, doubtful_28 = reading("613", sure=0.9), reading("28", sure=0.9995)
    sure_14, sure_102 = reading("14", sure=0.9995), reading("102", sure=0.9995)
    cells = [doubtful_613, doubtful_28, sure_14, sure_102]
    assert mismatch_suspects(cells) == {0, 1, 2, 3}
    assert mismatch_suspects(cells, implied=[60, -525, -539, 655]) == {0, 3}


def test_the_sum_rule_flags_the_cell_the_difference_points_at():
    """End to end: 38 + 36 + 9 = 83 read "38 + 36 + 4 = 83", no alternative of the "4" adds
    up; only the "4" is flagged, and the same holds for the header rule's minus signs."""
    sure_38, sure_36, sure_83 = (reading(text, sure=0.9995) for text in ("38", "36", "83"))
    doubtful_4 = reading("4", sure=0.9)
    result = apply_sum_rule([sure_38, sure_36, doubtful_4], sure_83, sure_83)
    assert result.flags == {Flag.SUM_MISMATCH}
    flagged = [i for i, r in enumerate(result.readings) if Flag.SUM_MISMATCH in r.flags]
    assert flagged == [2]
    # votantes 263 - sobres 257 = diferencia 6, read "263 - 251 = 6": only 251 -> 257 is one
    # digit away (263 -> 257 and 6 -> 12 are not)
    votantes, diferencia = reading("263", sure=0.9995), reading("6", sure=0.9995)
    header = apply_header_rule(votantes, reading("251", sure=0.9), diferencia)
    assert [Flag.HEADER_MISMATCH in r.flags for r in header.readings] == [False, True, False]


def test_sum_rule_refuses_an_improbable_correction():
    """The only consistent reading needs a digit the model gave 0.0005: a writer's slip is
    likelier, so the column is flagged, not 'fixed'."""
    rows = column_as_read()
    rows[1] = reading("36", sure=0.9999, alternatives={1: {5: 0.0005}})
    result = apply_sum_rule(rows, reading("87"), reading("87"))
    assert result.flags == {Flag.SUM_MISMATCH} and rows[1].value == result.rows[1].value


def test_sum_rule_refuses_when_two_corrections_are_equally_likely():
    rows = column_as_read()
    rows[0] = reading("13", alternatives={1: {2: 0.3}})  # 12 or ...
    rows[2] = reading("41", alternatives={1: {0: 0.3}})  # ... 40 would both fix the sum
    rows[1] = reading("35")
    total = reading("88", alternatives={1: {7: 0.3}})
    result = apply_sum_rule(rows, total, None)
    assert result.flags == {Flag.SUM_MISMATCH}


def test_posterior_follows_the_stated_formula():
    rows = column_as_read()
    rows[1] = reading("36", alternatives={1: {5: 0.3}})
    weight = 2000.0
    result = apply_sum_rule(rows, reading("87"), None, consistency_weight=weight)
    row_36 = rows[1].value_table()
    ratio = row_36[35] / row_36[36]
    assert result.posterior <= weight * ratio / (weight * ratio + 1.0)
    assert result.posterior > 0.95


def test_header_rule_votantes_minus_sobres_is_diferencia():
    ok = apply_header_rule(reading("257"), reading("257"), EMPTY)
    assert ok.flags == frozenset()
    fixed = apply_header_rule(reading("251", alternatives={2: {7: 0.3}}), reading("257"), EMPTY)
    assert [r.value for r in fixed.readings] == [257, 257, 0]
    assert fixed.changed == (0,)
    wrong = apply_header_rule(reading("300"), reading("257"), reading("5"))
    assert wrong.flags == {Flag.HEADER_MISMATCH}


def test_a_sobres_the_header_rule_corrected_checks_the_columns_as_corrected():
    """sobres read "89" (87 second) and corrected to 87 by votantes 87 - diferencia 0: the
    column whose rows add up to 87 corrects its total read "81" (87 close behind) to 87. The
    corrected sobres's alternatives say 87 now; with its old ones (89 first) the column could
    find no clearly most probable reading."""
    sobres = reading("89", alternatives={1: {7: 0.06}})
    header = apply_header_rule(reading("87"), sobres, EMPTY)
    corrected = header.readings[1]
    assert corrected.value == 87 and Flag.CORRECTED_BY_SUM in corrected.flags
    assert corrected.alternatives[0] == ("87", corrected.confidence)
    assert max(corrected.value_table(), key=corrected.value_table().get) == 87
    total = reading("81", sure=0.5, alternatives={1: {7: 0.45}})
    result = apply_sum_rule(column_as_read(), total, corrected)
    assert result.total.value == 87 and Flag.CORRECTED_BY_SUM in result.total.flags


def test_a_cell_whose_ink_was_judged_no_digit_can_be_corrected_to_a_number_it_may_be():
    """Touching digits read whole as "not a digit" (cut probability 0.7) leave the cell EMPTY,
    with "35" (the cut, 0.3) among its alternatives: the column that needs 35 takes it. A
    blank cell (no ink) stays 0."""
    from pipeline.decode import decode_pieces

    no_digit = np.full((1, 11), 0.01)
    no_digit[0, 10] = 0.9
    cell = decode_pieces([[(0.7, no_digit), (0.3, probs_for("35", classes=11))]])
    assert cell.value == 0 and Flag.EMPTY in cell.flags
    rows = column_as_read()
    rows[1] = cell
    result = apply_sum_rule(rows, reading("87"), reading("87"))
    assert [r.value for r in result.rows] == [12, 35, 40, 0]
    assert Flag.CORRECTED_BY_SUM in result.rows[1].flags
    assert EMPTY.value_table() == {0: 1.0}


def test_a_reading_the_rule_confirms_says_so_in_its_alternatives():
    """A doubtful sobres "87" (81 behind it) that the header rule confirms: its confidence
    rises to the posterior and its alternatives put 87 first at that probability, the rest
    sharing what is left."""
    sobres = reading("87", sure=0.9, alternatives={1: {1: 0.3}})
    assert sobres.value == 87 and sobres.alternatives[1][0] == "81"
    result = apply_header_rule(reading("87"), sobres, EMPTY)
    confirmed = result.readings[1]
    assert result.changed == () and Flag.CORRECTED_BY_SUM not in confirmed.flags
    assert confirmed.value == 87 and confirmed.confidence > sobres.confidence
    assert confirmed.alternatives[0] == ("87", confirmed.confidence)
    assert sum(p for _, p in confirmed.alternatives) <= 1.0 + 1e-9


def test_illegible_cell_without_probabilities_cannot_be_checked():
    illegible = decode_number(probs_for("12345"))
    result = apply_sum_rule([illegible, reading("4")], reading("9"))
    assert result.flags == {Flag.SUM_MISMATCH}
    assert not math.isnan(result.posterior)


def test_segmentation_doubt_lowers_the_confidence_and_keeps_ratios():
    probs = probs_for("47", alternatives={1: {1: 0.2}})
    sure = decode_number(probs)
    doubtful = decode_number(probs, split_confidence=0.5)
    assert doubtful.confidence == pytest.approx(0.5 * sure.confidence)
    assert doubtful.value == sure.value
    ratio = sure.alternatives[1][1] / sure.alternatives[0][1]
    assert doubtful.alternatives[1][1] / doubtful.alternatives[0][1] == pytest.approx(ratio)


def test_other_cuts_of_a_piece_become_alternatives_the_sum_rule_can_use():
    """A piece read as one digit (7, cut prob 0.8) that may be two (1 and 2, prob 0.2): the
    reading is 7, "12" is an alternative, and a column needing 12 takes it."""
    from pipeline.decode import decode_pieces

    one = probs_for("7")
    two = probs_for("12")
    cell = decode_pieces([[(0.8, one), (0.2, two)]])
    assert cell.value == 7
    assert cell.confidence == pytest.approx(0.8 * 0.999, rel=1e-3)
    assert dict(cell.alternatives)["12"] == pytest.approx(0.2 * 0.999**2, rel=1e-3)
    result = apply_sum_rule([cell, reading("30")], reading("42"), reading("42"))
    assert result.rows[0].value == 12 and Flag.CORRECTED_BY_SUM in result.rows[0].flags


def test_decode_pieces_of_one_cut_each_equals_decode_number():
    from pipeline.decode import decode_pieces

    probs = probs_for("305", alternatives={1: {8: 0.2}})
    by_pieces = decode_pieces([[(1.0, probs[i : i + 1])] for i in range(3)])
    assert by_pieces.value == decode_number(probs).value
    assert by_pieces.confidence == pytest.approx(decode_number(probs).confidence)
    assert decode_pieces([]).flags == {Flag.EMPTY}


def test_the_shipped_default_model_has_a_fitted_calibration():
    """Confidences are calibrated per set of weights; new weights without a refit would
    silently fall back to raw (over-confident) probabilities."""
    from pipeline.decode import CALIBRATIONS
    from pipeline.model import DigitClassifier

    assert DigitClassifier.load("default").version in CALIBRATIONS


def either_or(first: str, second: str) -> NumberReading:
    """A cell holding two numbers written apart, read as ``pipeline.read.one_of_two_numbers``
    reads it: each at half its probability, the first the value, LOW_CONFIDENCE."""
    from dataclasses import replace

    alternatives = ((first, 0.5), (second, 0.49))
    return replace(
        reading(first),
        confidence=0.5,
        alternatives=alternatives,
        flags=frozenset({Flag.LOW_CONFIDENCE}),
        either_or=True,
    )


def replace_confidence(number: NumberReading, confidence: float) -> NumberReading:
    """``number`` with its best alternative and confidence at ``confidence``."""
    from dataclasses import replace

    text = number.text or ""
    return replace(number, confidence=confidence, alternatives=((text, confidence),))


def test_a_total_of_two_numbers_apart_is_not_weighed_as_a_misreading():
    """Rows and sobres say 250; the total holds "230" and "235" written apart. That neither
    is 250 is no misreading (each group reads surely): a writer's slip or a struck-out
    number explains it, so the total is flagged, not made 250. The same "230" at 0.5 read
    as one number is misread rather than miswritten, and takes the sum."""
    rows, sobres = [reading("200"), reading("50")], reading("250")
    doubtful = replace_confidence(reading("230"), 0.5)
    assert apply_sum_rule(rows, doubtful, sobres).total.value == 250
    result = apply_sum_rule(rows, either_or("230", "235"), sobres)
    assert result.total.value == 230 and Flag.SUM_MISMATCH in result.total.flags
    assert not result.total.accepted


def test_a_column_of_two_numbers_apart_gets_no_second_look_against_sobres():
    """The second look (a misread total and one misread row against a confirmed sobres)
    judges the total misread from its doubt; a total of two numbers written apart has
    none of that doubt, nor has a row of them."""
    rows, sobres = column_of_239(), reading("239")
    assert resolve_against_sobres(rows, decode_number(probs_for("29", 0.7)), sobres) is not None
    assert resolve_against_sobres(rows, either_or("29", "23"), sobres) is None
    rows_apart = [reading("120"), either_or("36", "1"), reading("84")]
    assert resolve_against_sobres(rows_apart, decode_number(probs_for("29", 0.7)), sobres) is None
