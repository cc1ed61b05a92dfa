"""Decoding: digit probabilities -> a number with a calibrated confidence, flags, and the sum rule.

``decode_number(probs)`` turns the (k, C) class probabilities of a cell's k digit pieces into a
``NumberReading``: the most probable digit string, its probability (``confidence``, after
calibration), the next most probable readings (``alternatives``) and ``flags``.

Confidence = probability that the WHOLE number is right. The raw figure is the probability of
the best digit string: the product of the per-piece probabilities of its outcomes (summed over
the piece outcomes that give the same string when the model has the "not a digit" class, index
10, whose pieces are dropped from the string), times the segmentation's confidence that the
digits were cut right. Softmax outputs are over-confident on some errors and the segmentation
share is under-confident, so the raw figure is then calibrated on its log-odds (Platt scaling:
``sigmoid(slope * logit(p) + offset)``, two numbers fitted per model version on synthetic
numbers by ``fit_calibration``; ``bench/bench_numbers.py --calibrate`` fits them and prints the
reliability table). Alternatives are scaled by the same factor as the best reading, so their
ratios (what the sum rule uses) are the model's own. ``calibrate`` (digit-level temperature
scaling, p_T ∝ p^(1/T)) is available as well.

Impossible counts: a form's cells hold the counts of one mesa, never more than its
registered electors (``FormTemplate.max_count``). Readings above ``max_value`` are dropped
from a cell's alternatives and the rest of the best reading's digit count renormalised (the
classifier's probabilities hold under a flat prior over strings; conditioning on "a possible
count" is Bayes' rule with a prior of 0 above the bound). A flagged 1 read as a 7 in "107"
gives "707": the bound makes it "107" when that is among the alternatives, and ILLEGIBLE
when no alternative is possible. A number surely read and impossible is no possible reading
made sure: MIN_POSSIBLE_SHARE.

Empty cells: a cell with no digit (no ink, or every piece judged "not a digit") reads value 0
with flag EMPTY (informational, not a reason to review). The official data records 0 for such
cells, and the sum rule counts a cell with no ink as a certain 0 (a cell whose ink was all
judged "not a digit" reads EMPTY too, but keeps its other readings: ``value_table``).

The sum rule (``apply_sum_rule``): a column's rows must add up to its total, which must equal the
header's sobres; ``apply_header_rule``: votantes - sobres = diferencia. When the best readings
break an equation, alternatives are searched (each cell's top readings; fewest changed cells
first, at most ``max_changes`` changed cells) for the most probable consistent set. A correction
is accepted only when its posterior probability is >= ``min_posterior`` under this model:

    prior:   with prob. 1 - eps the written numbers satisfy the equation, with eps they do not
             (a writer's arithmetic slip). Among N_eff plausible values of the checked sum, a
             random misreading satisfies the equation with chance ~1/N_eff, so a consistent
             reading gains a factor CONSISTENCY_WEIGHT = (1 - eps) / eps * N_eff.
    posterior(h) = W * P(h) / (W * Z_consistent + Z_all)

where P(h) is the product of the cells' reading probabilities, Z_consistent sums P over the
consistent readings found with up to ``max_changes + 1`` changes, and Z_all sums P over every
combination of the cells' alternatives (no equation). With eps = 0.02 and N_eff = 200 (sums of
two-to-three digit counts spread over a few hundred values), W = 10,000 (2000, N_eff = 40,
until 2026-12-05; BENCHMARKS.md has what each gives). A correction then needs the changed
cell's alternative to be at least ~0.2% as probable as its best reading AND no rival
correction of similar probability: two independent misreadings in
one column are refused (SUM_MISMATCH), not guessed. SUM_MISMATCH then goes on the cells that
may be the misread one (``mismatch_suspects``), not on the sure readings around them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np

from pipeline.errors import BadInput

NOT_A_DIGIT = 10  # index of the optional 11th class ("not a digit"); matches pipeline.model
DEFAULT_TEMPERATURE = 1.0
LOW_CONFIDENCE = 0.9  # below this a reading is flagged for review
ILLEGIBLE_BELOW = 0.3  # below this there is no usable best reading: value None
MAX_DIGITS = 4  # more digits than this is no mesa's count, bound or not: ILLEGIBLE
# Readings listed for a cell at most (the product of its pieces' alternatives; MAX_DIGITS
# pieces of TOP_ALTERNATIVES each): pieces read as "not a digit" beside them are trimmed.
MAX_COMBINATIONS = 10_000
TOP_PER_PIECE = 4  # outcomes per piece considered when listing alternatives
TOP_ALTERNATIVES = 10
# Readings above a cell's bound are dropped and the rest renormalised only when the possible
# readings hold at least this share of the listed probability; below it the image shows an
# impossible number (a stray mark read as a digit, a wrong cut) and the possible readings keep
# their own probability, so they are reviewed, not made sure by the bound alone.
MIN_POSSIBLE_SHARE = 0.05
CONSISTENCY_WEIGHT = 10_000.0


@dataclass(frozen=True)
class Calibration:
    """Raw whole-number probability p -> calibrated sigmoid(slope * logit(p) + offset).

    slope < 1 softens over-confidence, offset > 0 raises everything; (1, 0) is the identity."""

    slope: float = 1.0
    offset: float = 0.0

    def __call__(self, probability: float) -> float:
        p = min(max(probability, 1e-12), 1.0 - 1e-12)
        logit = math.log(p / (1.0 - p))
        return 1.0 / (1.0 + math.exp(-(self.slope * logit + self.offset)))


IDENTITY = Calibration()
# Fitted by ``bench/bench_numbers.py --calibrate`` per model version (name@sha256 prefix of the
# weights: new weights need a new fit). Unknown versions are not calibrated (IDENTITY).
CALIBRATIONS: dict[str, Calibration] = {
    # .venv/bin/python bench/bench_numbers.py --model default --count 2000 --calibrate
    # (fitted on 2,000 numbers of MNIST test digits 0-4999). Keyed by the weights' version:
    # new weights need a refit, which tests/pipeline/test_decode.py checks.
    # refitted for the average of five adaptations on 1,500 telegrams (2026-12-05):
    # evaluation ECE 0.0067 on digits 5000-9999
    "default@c5d96646265f": Calibration(slope=0.7345, offset=0.0071),
}
MIN_POSTERIOR = 0.95
# A column that already holds one misreading (its total) holds others more often than its
# cells' confidences say (a bad page, a hard hand): a correction of its rows against sobres
# alone needs this posterior, not MIN_POSTERIOR (``resolve_against_sobres``).
RECHECK_POSTERIOR = 0.99
# A writer's own arithmetic slip (the eps of the module docstring).
WRITER_SLIP = 0.02
# A cell of a column that does not add up keeps no review flag only when the chance that it is
# the misread cell is below this (as ``mismatch_suspects`` and ``_lone_outlier`` estimate it).
MISMATCH_RISK = 0.002
# How much less likely a cell is the culprit when one digit mistake cannot explain the
# difference (``mismatch_suspects``). Of the wrong cells left in columns that do not add up
# (100 MNIST-typical telegrams, seed 5), 2/3 are one digit wrong, lost or added, which spreads
# them over a few dozen values; the other third spreads over hundreds: 0.67 / 30 per value
# against 0.33 / 300, about 1/20. Used alike for a cell that would have to become negative (it
# needs a second mistake to be wrong at all) and for two misreadings that hide each other
# (``_lone_outlier``): a mistake that lands on one particular value of hundreds.
UNEXPLAINED_MISREADING = 0.05
# Share of column totals a writer leaves blank (the synthetic writer: 136 of 1,200 on 300
# telegrams); ``_misread_posterior`` weighs it when a total alone disagrees with its column.
TOTAL_LEFT_BLANK = 0.1


class Flag(StrEnum):
    EMPTY = "EMPTY"
    ILLEGIBLE = "ILLEGIBLE"
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    STRUCK_THROUGH = "STRUCK_THROUGH"
    SUM_MISMATCH = "SUM_MISMATCH"
    CORRECTED_BY_SUM = "CORRECTED_BY_SUM"
    HEADER_MISMATCH = "HEADER_MISMATCH"


# Flags that mean "a person must look at this cell"; EMPTY and CORRECTED_BY_SUM only inform.
REVIEW_FLAGS = frozenset(
    {
        Flag.ILLEGIBLE,
        Flag.LOW_CONFIDENCE,
        Flag.STRUCK_THROUGH,
        Flag.SUM_MISMATCH,
        Flag.HEADER_MISMATCH,
    }
)


@dataclass(frozen=True)
class NumberReading:
    """The reading of one cell.

    value: the number (None when ILLEGIBLE); text: its digit string ("" when EMPTY, None when
    ILLEGIBLE); confidence: calibrated probability that value is right, 0..1;
    digit_probs: (k, C) float calibrated class probabilities of the k digit pieces;
    alternatives: ((text, probability), ...) most probable digit strings, best first;
    flags: frozenset of Flag;
    either_or: the alternatives are two numbers written apart in the cell, each at about half
    (``pipeline.read.one_of_two_numbers``): the doubt in the value is which of them, not a
    misreading, so the rules that weigh a misreading against a writer's slip leave it alone.
    """

    value: int | None
    text: str | None
    confidence: float
    digit_probs: np.ndarray
    alternatives: tuple[tuple[str, float], ...]
    flags: frozenset[Flag] = field(default_factory=frozenset)
    either_or: bool = False

    @property
    def accepted(self) -> bool:
        """True when the value may be used without a person looking at it."""
        return self.value is not None and not (self.flags & REVIEW_FLAGS)

    def value_table(self) -> dict[int, float]:
        """Alternatives aggregated by integer value: {value: probability}, "" (EMPTY) as 0.

        A blank cell's one alternative is "" (so {0: 1}); a cell whose ink was all judged
        "not a digit" reads EMPTY too, but keeps the numbers its pieces may be (a touching
        "13" read as no digit: "" 0.51, "13" 0.49), which the sum rule may need."""
        table: dict[int, float] = {}
        for text, probability in self.alternatives:
            value = int(text) if text else 0
            table[value] = table.get(value, 0.0) + probability
        return table


def calibrate(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling of probabilities: p_T ∝ p^(1/T) row-wise. (k, C) -> (k, C) float64."""
    logp = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    scaled = np.exp(logp)
    return scaled / scaled.sum(axis=1, keepdims=True)


def _piece_outcomes(row: np.ndarray, top: int) -> list[tuple[str, float]]:
    """Top outcomes of one piece as (string, probability); "not a digit" is the empty string."""
    order = np.argsort(-row)[:top]
    return [("" if c == NOT_A_DIGIT else str(int(c)), float(row[c])) for c in order]


def string_alternatives(
    probs: np.ndarray, top: int | None = TOP_ALTERNATIVES
) -> list[tuple[str, float]]:
    """(k, C) calibrated probabilities -> the ``top`` most probable digit strings (None: every
    string of the pieces' TOP_PER_PIECE outcomes) with their probabilities (product over
    pieces of their outcomes' probabilities, summed per string)."""
    per_piece = [_piece_outcomes(row, TOP_PER_PIECE) for row in probs]
    totals: dict[str, float] = {}
    for combo in itertools.product(*per_piece):
        text = "".join(part for part, _ in combo)
        probability = math.prod(p for _, p in combo)
        totals[text] = totals.get(text, 0.0) + probability
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def _digits_read(digit_probs: np.ndarray) -> int:
    """How many of the (k, C) pieces read best as a digit, not as "not a digit" (class 10):
    a line remnant beside a three-digit count does not make it a four-piece ILLEGIBLE."""
    if digit_probs.shape[1] <= NOT_A_DIGIT:
        return digit_probs.shape[0]
    return int(np.count_nonzero(digit_probs.argmax(axis=1) != NOT_A_DIGIT))


def illegible(
    digit_probs: np.ndarray, flags: set[Flag] | frozenset[Flag] = frozenset()
) -> NumberReading:
    """The reading of a cell with no usable number: value None, no alternatives, ILLEGIBLE."""
    return NumberReading(None, None, 0.0, digit_probs, (), frozenset(flags) | {Flag.ILLEGIBLE})


def decode_number(
    probs: np.ndarray,
    *,
    calibration: Calibration = IDENTITY,
    temperature: float = DEFAULT_TEMPERATURE,
    struck_through: bool = False,
    split_confidence: float = 1.0,
    low_confidence: float = LOW_CONFIDENCE,
    max_digits: int = MAX_DIGITS,
    max_value: int | None = None,
) -> NumberReading:
    """Digit pieces' class probabilities -> NumberReading.

    probs: (k, C) float, rows are the pieces left to right, C = 10 or 11 (index 10 = "not a
    digit"); k = 0 means an empty cell. calibration: of the whole-number probability;
    temperature: optional digit-level temperature (see module docstring).
    struck_through: from the segmentation; adds STRUCK_THROUGH (review).
    split_confidence: probability the segmentation cut the digits right
    (``CellSegmentation.split_confidence``); every reading's probability is multiplied by it.
    max_value: the largest possible count (None: no bound); readings above it are dropped
    (``_reading``: the rest renormalised within the best reading's digit count).
    """
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or (probs.shape[0] and probs.shape[1] not in (10, 11)):
        raise BadInput(f"digit probabilities must be (k, 10|11), got shape {probs.shape}")
    flags: set[Flag] = {Flag.STRUCK_THROUGH} if struck_through else set()
    if probs.shape[0] == 0:
        return NumberReading(0, "", 1.0, probs, (("", 1.0),), frozenset(flags | {Flag.EMPTY}))
    calibrated = calibrate(probs, temperature)
    if _digits_read(calibrated) > max_digits:
        return illegible(calibrated, flags)
    raw = [(text, p * split_confidence) for text, p in string_alternatives(calibrated, None)]
    return _reading(raw, calibrated, flags, calibration, low_confidence, max_value)


def _possible(raw: list[tuple[str, float]], max_value: int) -> list[tuple[str, float]]:
    """The string alternatives (best first) that are ``max_value`` or less, still best first.

    Those with as many digits as the best listed reading share its digit count's probability
    (renormalised, when they kept at least MIN_POSSIBLE_SHARE of it), the others keep their
    own: the bound says which number, not how many digits, and a shorter reading (a piece
    judged "not a digit") or a blank must not become sure because a longer one was
    impossible."""
    digits = len(str(max_value))  # a string of fewer digits is below the bound: no int()
    if all(len(text) < digits for text, _ in raw):
        return raw
    length = len(raw[0][0])
    listed = sum(p for text, p in raw if len(text) == length)
    possible = [(text, p) for text, p in raw if len(text) < digits or int(text) <= max_value]
    kept = sum(p for text, p in possible if len(text) == length)
    if kept <= 0 or kept < MIN_POSSIBLE_SHARE * listed:
        return possible
    scaled = ((text, p * listed / kept if len(text) == length else p) for text, p in possible)
    return sorted(scaled, key=lambda item: -item[1])


def _reading(
    raw: list[tuple[str, float]],
    digit_probs: np.ndarray,
    flags: set[Flag],
    calibration: Calibration,
    low_confidence: float,
    max_value: int | None = None,
) -> NumberReading:
    """NumberReading from raw (uncalibrated) string alternatives, best first; with
    ``max_value``, only the possible ones (``_possible``): ILLEGIBLE, with no alternatives,
    when none is (the sum rule then has no candidates for the cell's column). A reading the
    bound chose (the best was impossible) is flagged LOW_CONFIDENCE however sure: the
    calibration was fitted without a bound, and on seed 1 (USPS, hard) 12 of the 15 such
    readings at 0.9-0.99 were right. A sum rule that confirms it lifts the flag."""
    if max_value is not None:
        best_text = raw[0][0]
        raw = _possible(raw, max_value)
        if not raw:
            return illegible(digit_probs, flags)
        if raw[0][0] != best_text:
            flags.add(Flag.LOW_CONFIDENCE)
    raw = raw[:TOP_ALTERNATIVES]
    best_raw = raw[0][1]
    confidence = calibration(best_raw) if best_raw > 0 else 0.0
    factor = confidence / best_raw if best_raw > 0 else 0.0
    alternatives = tuple((text, min(1.0, p * factor)) for text, p in raw)
    text = alternatives[0][0]
    if text == "":
        flags.add(Flag.EMPTY)
    if confidence < ILLEGIBLE_BELOW:
        flags.add(Flag.ILLEGIBLE)
        return NumberReading(None, None, confidence, digit_probs, alternatives, frozenset(flags))
    if confidence < low_confidence:
        flags.add(Flag.LOW_CONFIDENCE)
    value = int(text) if text else 0
    return NumberReading(value, text, confidence, digit_probs, alternatives, frozenset(flags))


def decode_pieces(
    pieces: Sequence[Sequence[tuple[float, np.ndarray]]],
    *,
    calibration: Calibration = IDENTITY,
    temperature: float = DEFAULT_TEMPERATURE,
    struck_through: bool = False,
    low_confidence: float = LOW_CONFIDENCE,
    max_digits: int = MAX_DIGITS,
    max_value: int | None = None,
) -> NumberReading:
    """Like ``decode_number`` when the segmentation was not sure how to cut some pieces.

    pieces: left to right, per ink piece its split options as (probability of this cut,
    (k_o, C) class probabilities of its digits), best cut first. The number's alternatives
    then include readings with another cut (a different digit count), weighted by the cut's
    probability, so the sum rule can also repair a wrong split. The best reading uses every
    piece's best cut; digit_probs are those of the best cuts.
    """
    flags: set[Flag] = {Flag.STRUCK_THROUGH} if struck_through else set()
    best = [np.asarray(options[0][1], np.float64) for options in pieces]
    for probs in best:
        if probs.ndim != 2 or probs.shape[1] not in (10, 11):
            raise BadInput(f"digit probabilities must be (k, 10|11), got shape {probs.shape}")
    classes = best[0].shape[1] if best else 10
    digit_probs = calibrate(np.concatenate(best), temperature) if best else np.zeros((0, classes))
    if not pieces:
        return NumberReading(0, "", 1.0, digit_probs, (("", 1.0),), frozenset(flags | {Flag.EMPTY}))
    if _digits_read(digit_probs) > max_digits:
        return illegible(digit_probs, flags)
    per_piece = []
    for options in pieces:
        table: dict[str, float] = {}
        for weight, probs in options:
            calibrated = calibrate(np.asarray(probs, np.float64), temperature)
            for text, p in string_alternatives(calibrated):
                table[text] = table.get(text, 0.0) + weight * p
        per_piece.append(sorted(table.items(), key=lambda item: -item[1])[:TOP_ALTERNATIVES])
    if math.prod(len(table) for table in per_piece) > MAX_COMBINATIONS:
        # pieces read as no digit (line remnants, specks) keep "" and their best digit only
        per_piece = [table[:2] if table[0][0] == "" else table for table in per_piece]
        if math.prod(len(table) for table in per_piece) > MAX_COMBINATIONS:
            return illegible(digit_probs, flags)
    totals: dict[str, float] = {}
    for combo in itertools.product(*per_piece):
        text = "".join(part for part, _ in combo)
        totals[text] = totals.get(text, 0.0) + math.prod(p for _, p in combo)
    raw = sorted(totals.items(), key=lambda item: -item[1])
    return _reading(raw, digit_probs, flags, calibration, low_confidence, max_value)


def decode_cell(segmentation, probs_of, **options) -> NumberReading:
    """``decode_pieces`` for a ``pipeline.segment.CellSegmentation`` after ``choose_splits``.

    probs_of: DigitCrop -> (C,) class probabilities (from the chunk's batched classification).
    Each piece's split options are weighted by ``Piece.weights`` (the classifier-checked cut
    probabilities; a piece that was never ambiguous has one option of weight 1). options: as
    ``decode_pieces`` (calibration, temperature, low_confidence, max_digits, max_value).
    """
    pieces = []
    for piece in segmentation.pieces:
        weights = piece.weights or (1.0,)
        pieces.append(
            [
                (weight, np.stack([probs_of(crop) for crop in option]))
                for weight, option in zip(weights, piece.options, strict=False)
            ]
        )
    return decode_pieces(pieces, struck_through=segmentation.struck_through, **options)


# --------------------------------------------------------------------------- calibration


def calibration_for(classifier) -> Calibration:
    """The fitted calibration of this classifier's weights (``.version``), else IDENTITY."""
    return CALIBRATIONS.get(str(getattr(classifier, "version", "")), IDENTITY)


def fit_calibration(raw_confidence: Sequence[float], correct: Sequence[bool]) -> Calibration:
    """Platt scaling: the (slope, offset) maximising the likelihood of ``correct`` (was the
    number read right?) given sigmoid(slope * logit(raw) + offset). Newton's method on the
    two-parameter logistic regression with step halving, a small ridge towards the identity
    keeping it stable on separable or one-valued data."""
    p = np.clip(np.asarray(raw_confidence, np.float64), 1e-12, 1 - 1e-12)
    x = np.log(p / (1 - p))
    t = np.asarray(correct, np.float64)
    features = np.stack([x, np.ones_like(x)], axis=1)
    prior = np.array([1.0, 0.0])
    ridge = 1e-3

    def loss(w: np.ndarray) -> float:
        z = features @ w
        return float(np.sum(np.logaddexp(0.0, z) - t * z) + 0.5 * ridge * np.sum((w - prior) ** 2))

    weights = prior.copy()
    for _ in range(100):
        q = 1.0 / (1.0 + np.exp(-(features @ weights)))
        gradient = features.T @ (q - t) + ridge * (weights - prior)
        hessian = (features * (q * (1 - q))[:, None]).T @ features + ridge * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        current, scale = loss(weights), 1.0
        while scale > 1e-6 and loss(weights - scale * step) > current:
            scale /= 2  # damped Newton: never let the likelihood get worse
        weights = weights - scale * step
        if np.abs(scale * step).max() < 1e-9:
            break
    return Calibration(slope=float(weights[0]), offset=float(weights[1]))


def reliability(
    confidence: Sequence[float],
    correct: Sequence[bool],
    edges: Sequence[float] = (0, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0),
) -> tuple[list[dict], float]:
    """Reliability table: per confidence bin [lo, hi) (last bin closed) the count, mean
    confidence and accuracy; plus the expected calibration error (count-weighted |gap|)."""
    conf = np.asarray(confidence, float)
    right = np.asarray(correct, bool)
    rows, ece = [], 0.0
    for i, (lo, hi) in enumerate(itertools.pairwise(edges)):
        last = i == len(edges) - 2
        inside = (conf >= lo) & ((conf <= hi) if last else (conf < hi))
        n = int(inside.sum())
        if n == 0:
            continue
        mean_conf, accuracy = float(conf[inside].mean()), float(right[inside].mean())
        rows.append({"lo": lo, "hi": hi, "n": n, "confidence": mean_conf, "accuracy": accuracy})
        ece += n * abs(mean_conf - accuracy)
    return rows, ece / max(1, conf.size)


# --------------------------------------------------------------------------- sum rule


@dataclass(frozen=True)
class _Candidate:
    value: int
    ratio: float  # probability relative to the cell's baseline (its best reading)
    changes: int  # cells changed from their best reading


def _candidates(table: dict[int, float]) -> tuple[int | None, list[_Candidate], float]:
    """(best value, candidates incl. best, unconstrained mass relative to best)."""
    if not table:
        return None, [], 0.0
    best = max(table, key=table.get)
    top = table[best]
    cands = [_Candidate(v, p / top, int(v != best)) for v, p in table.items()]
    return best, cands, sum(table.values()) / top


def _merged_total(total: NumberReading, sobres: NumberReading | None):
    """The checked sum as one variable: total cell (and sobres cell, which must agree)."""
    total_best, total_cands, total_mass = _candidates(total.value_table())
    if sobres is None:
        return total_best, total_cands, total_mass
    sob_table = sobres.value_table()
    sob_best, _, sob_mass = _candidates(sob_table)
    if total_best is None or sob_best is None:
        return None, [], 0.0
    tot_table = total.value_table()
    base = tot_table[total_best] * sob_table[sob_best]
    cands = [
        _Candidate(v, tot_table[v] * sob_table[v] / base, int(v != total_best) + int(v != sob_best))
        for v in tot_table
        if v in sob_table
    ]
    best = total_best if total_best == sob_best else None
    return best, cands, total_mass * sob_mass


@dataclass(frozen=True)
class _Solution:
    values: list[int]  # one per variable
    posterior: float
    changes: int
    consistent_as_read: bool
    found: bool


def _solve(
    variables: list[tuple[int | None, list[_Candidate], float]],
    coefficients: list[int],
    max_changes: int,
    weight: float,
) -> _Solution:
    """Most probable assignment with sum(coef * value) == 0 and <= max_changes changed cells.

    variables: per variable (best value or None, candidates, relative unconstrained mass).
    Enumerates every assignment with up to max_changes + 1 changed cells (for Z_consistent).
    """
    z_all = math.prod(mass for _, _, mass in variables)
    bests = [best for best, _, _ in variables]
    free = [i for i, best in enumerate(bests) if best is None]  # must take a candidate
    if any(not cands for _, cands, _ in variables) or len(free) > 1:
        return _Solution([], 0.0, 0, False, False)
    limit = max_changes + 1
    base = sum(c * (b or 0) for c, b in zip(coefficients, bests, strict=True))
    # per variable: delta -> list of (ratio, value, changes) for its non-best candidates
    deltas: list[dict[int, list[tuple[float, int, int]]]] = []
    for i, (best, cands, _) in enumerate(variables):
        table: dict[int, list[tuple[float, int, int]]] = {}
        for cand in cands:
            if best is not None and cand.value == best:
                continue
            delta = coefficients[i] * (cand.value - (best or 0))
            table.setdefault(delta, []).append((cand.ratio, cand.value, cand.changes))
        deltas.append(table)

    z_cons = 0.0
    best_h: tuple[float, dict[int, int], int] | None = None
    consistent_as_read = not free and base == 0

    def consider(ratio: float, picks: dict[int, int], changes: int) -> None:
        nonlocal z_cons, best_h
        if changes > limit:
            return
        z_cons += ratio
        if changes <= max_changes and (best_h is None or ratio > best_h[0]):
            best_h = (ratio, picks, changes)

    others = [i for i in range(len(variables)) if i not in free]
    if free:
        (f,) = free
        starts = [(r, {f: v}, ch, d) for d, lst in deltas[f].items() for r, v, ch in lst]
    else:
        starts = [(1.0, {}, 0, 0)]
    for ratio0, picks0, changes0, delta0 in starts:
        need = -(base + delta0)
        if need == 0:
            consider(ratio0, picks0, changes0)
        for a_pos, i in enumerate(others):
            for r, v, ch in deltas[i].get(need, []):
                consider(ratio0 * r, {**picks0, i: v}, changes0 + ch)
            if changes0 + 2 > limit:
                continue
            for j in others[a_pos + 1 :]:
                for d, lst in deltas[i].items():
                    rest = deltas[j].get(need - d)
                    if not rest:
                        continue
                    for r1, v1, c1 in lst:
                        for r2, v2, c2 in rest:
                            consider(ratio0 * r1 * r2, {**picks0, i: v1, j: v2}, changes0 + c1 + c2)
    if best_h is None:
        return _Solution([], 0.0, 0, consistent_as_read, False)
    ratio, picks, changes = best_h
    posterior = weight * ratio / (weight * z_cons + z_all)
    values = [picks.get(i, bests[i]) for i in range(len(variables))]
    return _Solution(values, posterior, changes, consistent_as_read, True)


@dataclass(frozen=True)
class SumRuleResult:
    """Outcome of a rule on one column (or the header).

    readings: the cells in the order given (rows..., total[, sobres]) with values/flags updated.
    flags: the column's flags: {CORRECTED_BY_SUM} when a correction was made, {SUM_MISMATCH}
    (or HEADER_MISMATCH for the header) when no clearly most probable consistent reading exists,
    empty when the readings as read satisfy the rule.
    posterior: probability of the returned readings under the rule (0 when unresolved; for a
    lone total corrected to the rows' sum, the chance it was misread: ``_misread_posterior``).
    changed: indices into ``readings`` of the cells whose value was changed.
    lone_suspect: when the rule fails through one cell alone (a column's total or the header's
    sobres, against rows that add up to the other as read), its index, whether it was then
    corrected (flags {CORRECTED_BY_SUM}) or flagged (SUM_MISMATCH); the rest holds.
    """

    readings: list[NumberReading]
    flags: frozenset[Flag]
    posterior: float
    changed: tuple[int, ...]
    n_rows: int = 0
    lone_suspect: int | None = None

    @property
    def rows(self) -> list[NumberReading]:
        """The column's non-total rows (apply_sum_rule)."""
        return self.readings[: self.n_rows]

    @property
    def total(self) -> NumberReading:
        """The total cell (apply_sum_rule)."""
        return self.readings[self.n_rows]


def _recentred(
    alternatives: tuple[tuple[str, float], ...], text: str, confidence: float
) -> tuple[tuple[str, float], ...]:
    """``alternatives`` once a rule has set the reading to ``text`` at ``confidence``: ``text``
    first at that probability, the other strings sharing the rest in their old proportions.
    A later rule weighs the reading by its alternatives (``value_table``: the header's sobres
    in every column's sum rule), so they must say what the rule concluded: a sobres read
    "298" and corrected to 248 by the header rule kept 298 as its best alternative, and the
    column whose rows add up to 248 could not correct its total read "148" to 248."""
    others = [(t, p) for t, p in alternatives if t != text]
    mass = sum(p for _, p in others)
    rest = max(0.0, 1.0 - confidence)
    scaled = [(t, p * rest / mass) for t, p in others] if mass > 0 else []
    return ((text, confidence), *scaled)


def _with_value(reading: NumberReading, value: int, confidence: float) -> NumberReading:
    flags = (reading.flags - {Flag.LOW_CONFIDENCE, Flag.ILLEGIBLE, Flag.EMPTY}) | {
        Flag.CORRECTED_BY_SUM
    }
    return replace(
        reading,
        value=value,
        text=str(value),
        confidence=confidence,
        alternatives=_recentred(reading.alternatives, str(value), confidence),
        flags=frozenset(flags),
    )


def _confirmed(reading: NumberReading, posterior: float, low_confidence: float) -> NumberReading:
    """A reading the rule confirms: its confidence is at least the joint posterior (and its
    alternatives say so, ``_recentred``)."""
    confidence = max(reading.confidence, posterior)
    flags = reading.flags
    if confidence >= low_confidence:
        flags = flags - {Flag.LOW_CONFIDENCE}
    alternatives = _recentred(reading.alternatives, reading.text or "", confidence)
    return replace(
        reading, confidence=confidence, alternatives=alternatives, flags=frozenset(flags)
    )


def one_misreading_apart(read: str, written: int) -> bool:
    """Whether one digit mistake turns the digit string ``read`` into the number ``written``:
    one digit read as another ("247" -> "217"), or one digit lost or added ("47" -> "4", a
    speck read as a "1"). Edit distance <= 1 on the digit strings."""
    if written < 0:
        return False
    target = str(written)
    if len(read) == len(target):
        return sum(a != b for a, b in zip(read, target, strict=True)) <= 1
    if abs(len(read) - len(target)) != 1:
        return False
    shorter, longer = sorted((read, target), key=len)
    return any(longer[:i] + longer[i + 1 :] == shorter for i in range(len(longer)))


def mismatch_suspects(
    cells: Sequence[NumberReading],
    max_risk: float = MISMATCH_RISK,
    implied: Sequence[int | None] | None = None,
    agreeing: frozenset[int] = frozenset(),
) -> set[int]:
    """Indices of the cells of an inconsistent column (or header) that may be the misread one.

    With p_i = 1 - confidence_i (calibrated; 1 for an unreadable cell) and the writer's own slip
    rate WRITER_SLIP, the equation fails with probability
    P = 1 - (1 - WRITER_SLIP) * prod(1 - p_j), and cell i is the culprit with probability about
    p_i / P. Cells above ``max_risk`` are suspects; the others stay accepted, so one doubtful
    cell does not send a whole column of sure readings to review.

    implied[i]: the value cell i must have for the equation to hold when every other cell is
    right (None: unknown). The difference also says which cell can be the culprit: when a
    cell that is a suspect by its own doubt could be turned into its implied value by one
    digit mistake (``one_misreading_apart``), each cell that could not would need a mistake
    of its own, so its p_i is scaled by UNEXPLAINED_MISREADING. A column that breaks by 30
    points at the "217" that was written "247", not at the "75" beside it (it would have to
    be 105). Failing that, a count is never negative: when a doubtful cell's implied value is
    possible, the cells whose implied value is below 0 are scaled the same way (a column
    553 over its total points at the "613" written "60", not at the "28" beside it).
    Limits: a digit cut in two ("4" read "11") or two read as one is two edits here,
    so such a cell is only a suspect by its own doubt (wrong cuts mostly read with low
    confidence); and with two misread cells in one column, one of them may explain the
    difference by chance and lift the flag from the other when that one was read surely.

    A cell with ink that read as EMPTY (every piece judged "not a digit") is always a suspect:
    that judgement's confidence is not calibrated, and a number lost that way is what breaks a
    sum. When no cell is a suspect (all sure: a writer's slip, or a confident misreading),
    every cell is.

    agreeing: cells that two independent readings confirm (a column's total and the header's
    sobres read as one same number): a misreading would have to hit both alike, so they are
    not suspects, not even of a column of sure readings, unless one digit mistake turns them
    into the value the rows imply (the same writer's "208" read "20" in both).
    """
    needed = implied if implied is not None else [None] * len(cells)
    possible = [value is not None and value >= 0 for value in needed]
    explains = [
        ok and cell.text is not None and one_misreading_apart(cell.text, value)
        for ok, cell, value in zip(possible, cells, needed, strict=True)
    ]
    # a total and sobres read alike stay suspects when they could both have lost (or gained)
    # the digit the rows say: one writer's "208" read "20" twice
    exempt = {i for i in agreeing if not explains[i]}
    wrong = [0.0 if i in exempt else _doubt(c) for i, c in enumerate(cells)]

    def failing(risks: list[float]) -> float:
        return 1.0 - (1.0 - WRITER_SLIP) * math.prod(1.0 - w for w in risks)

    if implied is not None:
        doubt = max_risk * failing(wrong)
        for culprits in (explains, possible):
            if any(ok and w > doubt for ok, w in zip(culprits, wrong, strict=True)):
                wrong = [
                    w if ok else w * UNEXPLAINED_MISREADING
                    for w, ok in zip(wrong, culprits, strict=True)
                ]
                break
    suspects = {i for i, w in enumerate(wrong) if w > max_risk * failing(wrong)}
    suspects |= {i for i, c in enumerate(cells) if c.text == "" and c.digit_probs.shape[0] > 0}
    # a column that does not add up always sends some cell to review
    return (suspects or set(range(len(cells)))) - exempt or set(range(len(cells)))


def _doubt(reading: NumberReading) -> float:
    """The chance that ``reading`` is wrong: 1 - its (calibrated) confidence, 1 when unread."""
    return 1.0 if reading.value is None else min(1.0, max(0.0, 1.0 - reading.confidence))


def _implied_values(
    cells: Sequence[NumberReading],
    variables: list,
    coefficients: list[int],
    expand: list[list[int]],
) -> list[int | None] | None:
    """Per cell, the value that satisfies sum(coef * value) == 0 with every other variable at
    its best reading (coefficients are +1 or -1); None when a cell is unreadable or a variable
    has no best reading (a total and a sobres that disagree)."""
    bests = [best for best, _, _ in variables]
    if any(best is None for best in bests) or any(cell.value is None for cell in cells):
        return None
    residual = sum(c * b for c, b in zip(coefficients, bests, strict=True))
    implied: list[int | None] = [None] * len(cells)
    for var, members in enumerate(expand):
        for index in members:
            implied[index] = bests[var] - coefficients[var] * residual  # 1 / c == c for c = +-1
    return implied


def _apply(
    cells: list[NumberReading],
    variables: list,
    coefficients: list[int],
    mismatch: Flag,
    expand: list[list[int]],
    *,
    max_changes: int,
    weight: float,
    min_posterior: float,
    low_confidence: float,
    n_rows: int,
    agreeing: frozenset[int] = frozenset(),
) -> SumRuleResult:
    """Shared driver: solve, then write the values back. expand[v] lists the cells of variable v;
    agreeing: cells another reading confirms (``mismatch_suspects``)."""
    solution = _solve(variables, coefficients, max_changes, weight)
    if solution.consistent_as_read and solution.posterior < min_posterior:
        # Satisfied as read, but rival consistent readings are too close to raise confidences.
        return SumRuleResult(list(cells), frozenset(), solution.posterior, (), n_rows)
    if not solution.found or solution.posterior < min_posterior:
        implied = _implied_values(cells, variables, coefficients, expand)
        suspects = mismatch_suspects(cells, implied=implied, agreeing=agreeing)
        flagged = [
            replace(c, flags=frozenset(c.flags | {mismatch})) if i in suspects else c
            for i, c in enumerate(cells)
        ]
        return SumRuleResult(flagged, frozenset({mismatch}), 0.0, (), n_rows)
    out = list(cells)
    changed = []
    for var, value in enumerate(solution.values):
        for index in expand[var]:
            cell = cells[index]
            if cell.value != value:
                out[index] = _with_value(cell, value, solution.posterior)
                changed.append(index)
            else:
                out[index] = _confirmed(cell, solution.posterior, low_confidence)
    flags = frozenset({Flag.CORRECTED_BY_SUM}) if changed else frozenset()
    return SumRuleResult(out, flags, solution.posterior, tuple(changed), n_rows)


def apply_sum_rule(
    column: Sequence[NumberReading],
    total: NumberReading,
    sobres: NumberReading | None = None,
    *,
    max_changes: int = 1,
    consistency_weight: float = CONSISTENCY_WEIGHT,
    min_posterior: float = MIN_POSTERIOR,
    low_confidence: float = LOW_CONFIDENCE,
) -> SumRuleResult:
    """Check sum(column) == total (== sobres when given) and correct one misreading if clear.

    column: the readings of the non-total rows (lists and other vote types; EMPTY counts 0).
    total: the column's TOTAL row; sobres: the header's sobres reading or None.
    Returns ``SumRuleResult`` with readings ordered rows..., total[, sobres]. When the readings
    as read satisfy the rule, values are kept and each confidence is raised to the joint
    posterior (LOW_CONFIDENCE dropped when that reaches ``low_confidence``). When they do not,
    the most probable consistent reading with <= max_changes changed cells is taken if its
    posterior >= min_posterior (changed cells get CORRECTED_BY_SUM); otherwise values are left
    as read, the result's flags are {SUM_MISMATCH} and the cells that may be the misread one
    (``mismatch_suspects``) get SUM_MISMATCH: not a total and a sobres read alike (unless one
    digit mistake makes them what the rows imply), and only the total (or sobres), with the
    rows that two hidden misreadings may explain, when it alone disagrees with rows that add
    up to the other (``_lone_outlier``, ``SumRuleResult.lone_suspect``; a total surely enough
    misread rather than miswritten then takes the sum, CORRECTED_BY_SUM).
    """
    rows = list(column)
    cells = rows + [total] + ([sobres] if sobres is not None else [])
    variables = [_candidates(r.value_table()) for r in rows] + [_merged_total(total, sobres)]
    coefficients = [1] * len(rows) + [-1]
    expand = [[i] for i in range(len(rows))] + [
        [len(rows)] + ([len(rows) + 1] if sobres is not None else [])
    ]
    # a total and a sobres read alike confirm each other (``mismatch_suspects``' agreeing)
    agrees = sobres is not None and total.value is not None and total.value == sobres.value
    result = _apply(
        cells,
        variables,
        coefficients,
        Flag.SUM_MISMATCH,
        expand,
        max_changes=max_changes,
        weight=consistency_weight,
        min_posterior=min_posterior,
        low_confidence=low_confidence,
        n_rows=len(rows),
        agreeing=frozenset(expand[-1]) if agrees else frozenset(),
    )
    if sobres is None or agrees or Flag.SUM_MISMATCH not in result.flags:
        return result
    return _lone_outlier(rows, total, sobres, min_posterior=min_posterior) or result


def _lone_outlier(
    rows: list[NumberReading],
    total: NumberReading,
    sobres: NumberReading,
    max_risk: float = MISMATCH_RISK,
    min_posterior: float = MIN_POSTERIOR,
) -> SumRuleResult | None:
    """A column whose total and sobres disagree, but whose rows add up to one of them as read:
    the other is the misread cell (every other single misreading would leave total != sobres;
    a "215" whose "2" the scan lost read "15"). The odd one gets SUM_MISMATCH, its value as
    read. The other explanation is two misreadings that hide each other: a row and the
    agreeing cell misread so that they match (one writer's 2s read as 7s: "47" for 42 and
    "167" for 162), as unlikely as a misreading one digit mistake does not explain
    (UNEXPLAINED_MISREADING); a row whose share of that exceeds ``max_risk`` is a suspect, and
    the agreeing cell with it. The others keep their own confidences and flags (the rule does
    not confirm them: doubtful rows adding up to a doubtful total stay LOW_CONFIDENCE).
    A total that is the only suspect takes the sum of the rows when it was more probably
    misread than miswritten by at least ``min_posterior`` (``_misread_posterior``), as any
    correction of the rule: CORRECTED_BY_SUM (a "171" whose 7 and 1 ran together, read "17").
    A sobres alone at odds is left to the other columns (``pipeline.read.apply_rules``).
    None when the rows add up to neither, or a cell is unread or two numbers written apart
    (``NumberReading.either_or``: its doubt is which of them, not a misreading)."""
    readings = [*rows, total, sobres]
    if any(cell.value is None or cell.either_or for cell in readings):
        return None
    counted = sum(row.value for row in rows)
    if counted == sobres.value:
        odd_index = len(rows)
    elif counted == total.value:
        odd_index = len(rows) + 1
    else:
        return None
    agree_index = 2 * len(rows) + 1 - odd_index  # the other of total (n) and sobres (n + 1)
    lone = _doubt(readings[odd_index])
    agree = _doubt(readings[agree_index]) * UNEXPLAINED_MISREADING
    pairs = [_doubt(row) * agree for row in rows]  # row i and the agreeing cell both misread
    alternatives = lone + sum(pairs)
    suspects = {odd_index} | {i for i, pair in enumerate(pairs) if pair > max_risk * alternatives}
    if suspects == {len(rows)} and total.text:
        posterior = _misread_posterior(total, counted, sum(pairs))
        if posterior >= min_posterior:
            readings[odd_index] = _with_value(total, counted, posterior)
            flags = frozenset({Flag.CORRECTED_BY_SUM})
            return SumRuleResult(readings, flags, posterior, (odd_index,), len(rows), odd_index)
    if len(suspects) > 1:
        suspects.add(agree_index)
    for index in suspects:
        reading = readings[index]
        readings[index] = replace(reading, flags=frozenset(reading.flags | {Flag.SUM_MISMATCH}))
    return SumRuleResult(
        readings, frozenset({Flag.SUM_MISMATCH}), 0.0, (), len(rows), lone_suspect=odd_index
    )


def resolve_against_sobres(
    rows: Sequence[NumberReading],
    total: NumberReading,
    sobres: NumberReading,
    *,
    min_posterior: float = MIN_POSTERIOR,
    rows_posterior: float = RECHECK_POSTERIOR,
) -> SumRuleResult | None:
    """A column ``apply_sum_rule`` left unresolved, whose total disagrees with a sobres that
    other columns confirm (``pipeline.read.apply_rules``): a misread total and a misread row
    that the one-change search cannot both repair ("239" read "20" and "36" for a 35).
    The total is judged as a lone total is (``_misread_posterior`` against sobres: misread
    rather than miswritten or blank, at ``min_posterior``), and the rows are checked against
    sobres alone, as under a blank total, their one correction needing ``rows_posterior``.
    When both hold, returns the readings (rows..., total), the total set to sobres and the
    changed cells CORRECTED_BY_SUM; None otherwise (the column stays as ``apply_sum_rule``
    left it). Not judged: a total or a row that cannot be read (an illegible cell comes with
    a bad page, and one left free to take any value absorbs the column's other misreadings:
    a row read "0" for 10 and one read "18" for 65 beside an illegible 0 made 57, all
    accepted, in the demo's 2019 telegrams; checking columns of an illegible total against
    sobres alone made wrong corrections too, 2026-12-05); a total or a row holding two
    numbers written apart (``NumberReading.either_or``); rows that add up, as read, to
    sobres or to the total (one cell at odds, which ``_lone_outlier`` weighs, a writer's
    slip among its explanations). sobres, confirmed, is never the cell changed."""
    if total.value is None or sobres.value is None or total.value == sobres.value:
        return None
    if total.either_or or any(row.value is None or row.either_or for row in rows):
        return None
    if sum(row.value for row in rows) in (total.value, sobres.value):  # type: ignore[misc]
        return None
    posterior = _misread_posterior(total, sobres.value, 0.0)
    if posterior < min_posterior:
        return None
    result = apply_sum_rule(rows, sobres, min_posterior=rows_posterior)
    if Flag.SUM_MISMATCH in result.flags or len(rows) in result.changed:
        return None
    readings = [*result.rows, _with_value(total, sobres.value, posterior)]
    return SumRuleResult(
        readings,
        frozenset({Flag.CORRECTED_BY_SUM}),
        result.posterior * posterior,
        (*result.changed, len(rows)),
        len(rows),
    )


def _misread_posterior(total: NumberReading, implied: int, hidden_pairs: float) -> float:
    """The chance that a total alone at odds with its rows and sobres (which agree on
    ``implied``) was misread, against the writer's slip (WRITER_SLIP; a slip of the sum's
    magnitude lands on a given value about as often as a one-digit misreading does), a
    total left blank (below) and a right total with two hidden misreadings elsewhere
    (``hidden_pairs``, the pairs' weight as ``_lone_outlier`` sums it).
    The total's doubt (1 - confidence) is the chance of a misreading, times
    UNEXPLAINED_MISREADING when no one digit mistake turns its reading into ``implied``.
    A slip is an error of addition: it gives a total of the sum's magnitude, so a reading
    with more or fewer digits than ``implied`` is a slip only as rarely as an unexplained
    misreading (UNEXPLAINED_MISREADING), while the reader loses digits that ran together
    often (a "218" read "28", a "239" read "20"). "17" at 0.6 where rows and sobres say 171
    is misread at 0.998; "47" at 0.6 where they say 41, at 0.97; "7" at 0.99 where they say
    87, at 0.91; "47" at 0.99 where they say 41, at 0.33 (a slip is twice as likely).
    A total left blank (TOTAL_LEFT_BLANK) whose marks were read as digits is as likely as
    the reading's own blank alternative says: a speck and a line remnant read "11" at 0.40,
    blank at 0.21, is no misread 182."""
    doubt = _doubt(total)
    explained = total.text is not None and one_misreading_apart(total.text, implied)
    written = (1.0 - TOTAL_LEFT_BLANK) * (1.0 - WRITER_SLIP)
    misread = written * doubt * (1.0 if explained else UNEXPLAINED_MISREADING)
    magnitude_kept = total.text is not None and len(total.text) == len(str(implied))
    slip = (1.0 - TOTAL_LEFT_BLANK) * (1.0 - doubt) * WRITER_SLIP
    slip *= 1.0 if magnitude_kept else UNEXPLAINED_MISREADING
    hidden = written * hidden_pairs * (1.0 - doubt)
    blank = TOTAL_LEFT_BLANK * sum(p for text, p in total.alternatives if text == "")
    return misread / (misread + slip + hidden + blank)


def apply_header_rule(
    votantes: NumberReading,
    sobres: NumberReading,
    diferencia: NumberReading,
    *,
    max_changes: int = 1,
    consistency_weight: float = CONSISTENCY_WEIGHT,
    min_posterior: float = MIN_POSTERIOR,
    low_confidence: float = LOW_CONFIDENCE,
) -> SumRuleResult:
    """Check votantes - sobres == diferencia (an EMPTY diferencia counts 0); same search and
    acceptance as ``apply_sum_rule``, HEADER_MISMATCH when unresolved.
    Returns readings ordered (votantes, sobres, diferencia)."""
    cells = [votantes, sobres, diferencia]
    variables = [_candidates(c.value_table()) for c in cells]
    return _apply(
        cells,
        variables,
        [1, -1, -1],
        Flag.HEADER_MISMATCH,
        [[0], [1], [2]],
        max_changes=max_changes,
        weight=consistency_weight,
        min_posterior=min_posterior,
        low_confidence=low_confidence,
        n_rows=0,
    )
