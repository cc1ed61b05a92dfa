"""Segmentation of one cell into digits: constructed cases from real MNIST digits."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from pipeline.errors import BadInput
from pipeline.reframe import reframe_digit
from pipeline.segment import choose_split, choose_splits, segment_cell
from tests.pipeline.mnist_cells import compose, digit


def centre_x(box):
    return (box[0] + box[2]) / 2


def test_separate_digits_are_found_left_to_right():
    cell, ranges = compose([digit(3), digit(0), digit(7)], gaps=[6, 5])
    result = segment_cell(cell)
    assert len(result.digits) == 3
    for crop, (x0, x1) in zip(result.digits, ranges, strict=True):
        assert x0 <= centre_x(crop.box) <= x1
    assert not result.struck_through and not result.is_empty


def test_digit_crops_are_white_ink_on_black_with_a_background_border():
    cell, _ = compose([digit(4)], gaps=[])
    (crop,) = segment_cell(cell).digits
    assert crop.image.dtype == np.uint8
    assert crop.image.max() > 200
    border = np.concatenate([crop.image[0], crop.image[-1], crop.image[:, 0], crop.image[:, -1]])
    assert border.max() == 0
    x0, y0, x1, y1 = crop.box
    assert (cell[y0:y1, x0:x1] < 128).any()


def test_empty_and_noisy_cells_have_no_digits():
    blank = np.full((44, 80), 255, np.uint8)
    assert segment_cell(blank).is_empty
    assert segment_cell(blank).ink_fraction == 0.0
    noisy = (255 - np.random.default_rng(0).integers(0, 25, (44, 80))).astype(np.uint8)
    assert segment_cell(noisy).is_empty


def test_polarity_and_bool_input_give_the_same_digits():
    cell, _ = compose([digit(2), digit(9)], gaps=[5])
    boxes = [c.box for c in segment_cell(cell).digits]
    assert [c.box for c in segment_cell(255 - cell).digits] == boxes
    binary = [c.box for c in segment_cell(cell < 128).digits]  # a stricter ink threshold
    assert len(binary) == len(boxes)
    assert np.abs(np.array(binary) - np.array(boxes)).max() <= 1


def test_rejects_non_2d_input():
    with pytest.raises(BadInput, match="2-D"):
        segment_cell(np.zeros((4, 4, 3), np.uint8))


def test_touching_pair_is_one_piece_with_a_split_option_at_the_joint():
    left, right = digit(3, 1), digit(5, 1)
    for overlap in range(1, 6):  # the smallest overlap at which the strokes really touch
        cell, ranges = compose([left, right], gaps=[-overlap])
        if cv2.connectedComponents((cell < 128).astype(np.uint8))[0] - 1 == 1:
            break
    else:
        pytest.fail("the two digits never touch")
    (piece,) = segment_cell(cell).pieces
    two_part = [o for o in piece.options if len(o) == 2]
    assert two_part
    assert any(
        all(x0 - 2 <= centre_x(c.box) <= x1 + 2 for c, (x0, x1) in zip(o, ranges, strict=True))
        for o in two_part
    )


def test_broken_five_is_one_digit():
    five = digit(5, 2).copy()
    rows = np.flatnonzero(five.max(axis=1) > 0)
    cut = rows[0] + len(rows) // 3
    five[cut : cut + 2] = 0  # a pen lift between the flag and the body
    cell, _ = compose([five], gaps=[])
    assert cv2.connectedComponents((cell < 128).astype(np.uint8))[0] - 1 >= 2
    assert len(segment_cell(cell).digits) == 1


def argentine_one(broken: bool) -> np.ndarray:
    """A '1' with the long up-stroke (white on black), optionally drawn apart from the stem."""
    image = np.zeros((28, 20), np.uint8)
    cv2.line(image, (13, 2), (13, 26), 255, 2)
    start = (11, 6) if broken else (13, 2)
    cv2.line(image, start, (3, 12), 255, 2)
    return image


@pytest.mark.parametrize("broken", [False, True])
def test_one_with_up_stroke_is_one_digit(broken):
    cell, _ = compose([argentine_one(broken), digit(4)], gaps=[6])
    result = segment_cell(cell)
    assert len(result.digits) == 2
    assert result.digits[0].box[2] <= result.digits[1].box[0]


@pytest.mark.parametrize("detached", [False, True])
def test_crossed_seven_is_one_digit_not_a_strike(detached):
    seven = np.zeros((28, 22), np.uint8)
    cv2.line(seven, (2, 3), (19, 3), 255, 2)
    cv2.line(seven, (19, 3), (9, 26), 255, 2)
    if detached:
        cv2.line(seven, (7, 14), (12, 14), 255, 2)  # stops short of the stem (x ~ 14)
        cv2.line(seven, (17, 14), (21, 14), 255, 2)
    else:
        cv2.line(seven, (8, 14), (21, 14), 255, 2)
    cell, _ = compose([seven, digit(2)], gaps=[6])
    result = segment_cell(cell)
    assert len(result.digits) == 2
    assert not result.struck_through


def test_speck_is_dropped():
    cell, _ = compose([digit(6), digit(1)], gaps=[8])
    cell[4:6, 2:4] = 0
    cell[-5:-3, -6:-4] = 30
    result = segment_cell(cell)
    assert len(result.digits) == 2
    assert len(result.dropped) == 2


def test_ruled_line_remnants_along_the_edges_are_dropped():
    cell, _ = compose([digit(8), digit(3)], gaps=[6])
    height, width = cell.shape
    cell[0:2, 5 : width - 10] = 20  # top line remnant
    cell[height - 2 :, 0 : width // 2] = 40  # bottom
    cell[6 : height - 4, width - 2 :] = 20  # right edge
    result = segment_cell(cell)
    assert len(result.digits) == 2
    for crop in result.digits:
        x0, y0, x1, y1 = crop.box
        assert y0 >= 2 and y1 <= height - 2 and x1 <= width - 2


def test_struck_through_number_is_detected_and_its_digits_kept():
    cell, ranges = compose([digit(2, 3), digit(4, 3), digit(0, 3)], gaps=[5, 5])
    height = cell.shape[0]
    cv2.line(cell, (ranges[0][0] - 3, height // 2), (ranges[-1][1] + 3, height // 2 + 1), 0, 2)
    result = segment_cell(cell)
    assert result.struck_through
    assert len(result.digits) == 3


def test_plain_numbers_are_not_struck_through():
    for labels in ([7], [4, 1], [5, 2, 3], [2, 0]):
        cell, _ = compose([digit(d, 4) for d in labels], gaps=[5] * (len(labels) - 1))
        assert not segment_cell(cell).struck_through, labels


@pytest.fixture(scope="module")
def classifier():
    from pipeline.model import get_classifier

    return get_classifier("default", intra_op_threads=1, inter_op_threads=1)


def test_recognition_picks_the_split_of_touching_pairs(classifier):
    """Touching pairs of real MNIST digits: the classifier-checked split finds two digits."""
    right = 0
    pairs = [(3, 5), (2, 8), (4, 6), (9, 0), (5, 3), (6, 2), (0, 4), (8, 9), (2, 3), (7, 0)]
    for index, (a, b) in enumerate(pairs):
        cell, _ = compose([digit(a, index), digit(b, index)], gaps=[-1])
        chosen = choose_split(segment_cell(cell), classifier.predict_proba)
        right += len(chosen.digits) == 2
        assert not chosen.ambiguous
    assert right >= 8


def test_recognition_keeps_single_wide_digits_whole(classifier):
    kept = 0
    for index in range(10):
        for label in (0, 2, 4):
            cell, _ = compose([digit(label, index)], gaps=[])
            kept += len(choose_split(segment_cell(cell), classifier.predict_proba).digits) == 1
    assert kept >= 28


def _broken_zero(index: int) -> np.ndarray:
    """A real MNIST 0 whose strokes broke apart at the top and bottom (a thin pen): "( )"."""
    zero = digit(0, index).copy()
    middle = zero.shape[1] // 2
    zero[:, middle - 1 : middle + 1] = 0
    return zero


def test_a_zero_broken_into_halves_is_offered_whole_and_read_as_one_digit(classifier):
    """The two halves of a broken 0 are one piece with two readings, whole or as two digits;
    the classifier takes the whole 0 for most (the others it calls "not a digit" whole: a
    0 broken this way is rare in its training)."""
    read_as_zero = 0
    for index in range(10):
        cell, _ = compose([_broken_zero(index)], gaps=[])
        segmentation = segment_cell(cell)
        assert len(segmentation.pieces) == 1
        (piece,) = segmentation.pieces
        assert sorted(len(option) for option in piece.options) == [1, 2]
        chosen = choose_split(segmentation, classifier.predict_proba)
        frames = np.stack([reframe_digit(crop.image) for crop in chosen.digits])
        read = classifier.predict_proba(frames)[:, :10].argmax(axis=1).tolist()
        read_as_zero += read == [0]
    assert read_as_zero >= 7


def test_without_a_not_a_digit_class_joined_pieces_are_never_read_whole():
    """The 10-class ``paper`` model cannot refuse a whole: pieces offered as one stay apart."""
    from pipeline.model import get_classifier

    paper = get_classifier("paper", intra_op_threads=1, inter_op_threads=1)
    cell, _ = compose([_broken_zero(0)], gaps=[])
    (piece,) = segment_cell(cell).pieces
    assert piece.joined and any(len(option) == 1 for option in piece.options)
    chosen = choose_split(segment_cell(cell), paper.predict_proba)
    assert len(chosen.digits) == 2 and not chosen.ambiguous


def test_without_a_not_a_digit_class_joined_pieces_are_never_kept_whole_however_sure():
    """``sure_whole`` leaves a joined piece (two pieces offered as one) its cuts when the
    classifier has no "not a digit" class, however surely the whole reads as a digit."""
    from pipeline.segment import sure_whole

    cell, _ = compose([_broken_zero(0)], gaps=[])
    (piece,) = segment_cell(cell).pieces
    assert piece.joined
    assert sure_whole(piece, lambda crop: np.eye(10)[0]) is piece
    kept = sure_whole(piece, lambda crop: np.eye(11)[0])
    assert len(kept.options) == 1 and len(kept.options[0]) == 1


def test_two_ones_written_close_stay_two_digits(classifier):
    """Two narrow digits side by side are also offered whole; the classifier keeps them two."""
    kept = 0
    for index in range(10):
        cell, _ = compose([digit(1, index), digit(1, index + 10)], gaps=[2])
        chosen = choose_split(segment_cell(cell), classifier.predict_proba)
        kept += len(chosen.digits) == 2
    assert kept >= 9


def test_two_pieces_apart_are_read_as_two_unless_the_whole_reads_surer():
    """Two pieces seen apart on the page need no invented cut: offered whole as well, the
    whole wins only when it reads more surely than the two parts together. Two close 1s
    whose whole looks like a 4 at 0.85, each part a 1 at 0.97, read "11"; a whole 0 at
    0.99 against parts at 0.6 reads "0"."""
    cell, _ = compose([digit(1, 0), digit(1, 1)], gaps=[1])
    segmentation = segment_cell(cell)
    (piece,) = segmentation.pieces
    assert piece.joined

    def read(whole: int, whole_p: float, part: int, part_p: float) -> list[int]:
        def probs_of(crop):
            is_whole = any(len(option) == 1 and option[0] is crop for option in piece.options)
            label, p = (whole, whole_p) if is_whole else (part, part_p)
            probs = np.full(11, (1.0 - p) / 10)
            probs[label] = p
            return probs

        chosen = choose_splits([segmentation], probs_of=probs_of)[0]
        return [int(probs_of(crop)[:10].argmax()) for crop in chosen.digits]

    assert read(4, 0.85, 1, 0.97) == [1, 1]
    assert read(0, 0.99, 1, 0.6) == [0]


def test_choose_splits_classifies_all_cells_in_one_batch(classifier):
    """One classify call for many cells; each distinct candidate crop reframed once."""
    from pipeline.reframe import reframe_digit

    cells = []
    for index, (a, b) in enumerate([(3, 5), (2, 8), (4, 6), (0, 9)]):
        cells.append(compose([digit(a, index), digit(b, index)], gaps=[-2])[0])
        cells.append(compose([digit(a, index + 5)], gaps=[])[0])
    segmentations = [segment_cell(cell) for cell in cells]
    calls, reframed = [], []

    def counting_classify(frames):
        calls.append(len(frames))
        return classifier.predict_proba(frames)

    def counting_reframe(image):
        reframed.append(id(image))
        return reframe_digit(image)

    chosen = choose_splits(segmentations, counting_classify, counting_reframe)
    assert len(calls) == 1 and calls[0] == len(reframed) == len(set(reframed))
    assert any(s.ambiguous for s in segmentations)
    assert not any(s.ambiguous for s in chosen)
    for segmentation in chosen:
        assert 0.0 < segmentation.split_confidence <= 1.0


def test_a_piece_rejected_whole_is_cut_even_when_narrow():
    """Two digits written touching and slanted are narrower than the geometric guess
    expects; once the classifier rejects the whole, ``resplit`` offers the cuts."""
    from pipeline.segment import rejected, resplit

    cell, _ = compose([digit(1, 2), digit(7, 2)], gaps=[-4])
    (piece,) = segment_cell(cell).pieces
    narrow_piece = replace(piece, options=piece.options[:1], log_priors=(0.0,))
    again = resplit(narrow_piece)
    assert again.options[0] == narrow_piece.options[0]
    assert any(len(option) == 2 for option in again.options[1:])
    not_a_digit = np.array([0.0] * 10 + [0.9])
    assert rejected(narrow_piece, lambda crop: not_a_digit)
    assert not rejected(narrow_piece, lambda crop: np.eye(11)[3])


def test_a_piece_is_rejected_when_its_best_reading_holds_a_non_digit():
    """``rejected`` asks for new cuts when the option the piece would be read by (the best
    score, as ``choose_splits`` scores them) has a part the classifier calls "not a digit";
    an option made only of digits that reads best is enough to keep the cuts."""
    from pipeline.segment import rejected, resplit

    cell, _ = compose([digit(4, 0), digit(2, 0)], gaps=[-2])
    (piece,) = segment_cell(cell).pieces
    splits = [option for option in piece.options if len(option) == 2]
    assert splits, "the touching pair is offered cut in two"
    whole = next(option[0] for option in piece.options if len(option) == 1)
    not_a_digit, four = np.array([0.0] * 10 + [0.9]), np.eye(11)[4]

    def reads(rejected_crops, others=four):
        return lambda crop: not_a_digit if any(crop is c for c in rejected_crops) else others

    every_right_part = [option[1] for option in splits]
    assert rejected(piece, reads([whole, *every_right_part]))
    assert not rejected(piece, reads([whole]))  # the splits read as digits
    assert not rejected(piece, reads(every_right_part))  # the whole reads as a digit

    # Equal priors: a split whose right part is barely "not a digit" (0.51 against a 4 at
    # 0.49) reads better than a whole no digit of which passes 0.1, and it is rejected.
    even = replace(piece, log_priors=(0.0,) * len(piece.options))
    barely = np.array([0.0] * 4 + [0.49] + [0.0] * 5 + [0.51])
    unsure = np.array([0.099] * 10 + [0.01])

    def mixed(crop):
        if crop is whole:
            return unsure
        return barely if any(crop is c for c in every_right_part) else four

    assert rejected(even, mixed)

    # Cuts made again keep the whole and replace the earlier splits by the forced ones.
    only_splits = replace(piece, options=tuple(splits), log_priors=(0.0,) * len(splits))
    again = resplit(only_splits)
    assert again is not only_splits and again.options
    assert all(len(option) >= 2 for option in again.options)
    for option in again.options:  # the parts lie inside the piece's box, left to right
        assert all(piece.box[0] <= c.box[0] and c.box[2] <= piece.box[2] for c in option)
        assert [c.box[0] for c in option] == sorted(c.box[0] for c in option)


def test_a_piece_read_surely_whole_as_one_digit_is_not_cut():
    """``sure_whole`` keeps only the whole option when the classifier reads it as one digit
    at SURE_WHOLE or more; a doubtful whole, or one read as "not a digit", keeps its cuts."""
    from pipeline.segment import SURE_WHOLE, sure_whole

    cell, _ = compose([digit(4, 0), digit(2, 0)], gaps=[-2])
    (piece,) = segment_cell(cell).pieces
    assert len(piece.options) > 1
    (whole,) = next(option for option in piece.options if len(option) == 1)

    def reads(whole_probs):
        return lambda crop: whole_probs if crop is whole else np.eye(11)[4]

    sure = np.eye(11)[0] * SURE_WHOLE + np.eye(11)[6] * (1 - SURE_WHOLE)
    kept = sure_whole(piece, reads(sure))
    assert kept.options == ((whole,),) and not kept.ambiguous
    doubtful = np.eye(11)[0] * 0.9 + np.eye(11)[6] * 0.1
    assert sure_whole(piece, reads(doubtful)) is piece
    assert sure_whole(piece, reads(np.eye(11)[10])) is piece  # "not a digit" is no digit


def test_a_piece_offered_whole_first_is_cut_only_when_not_read_surely_whole():
    """``whole_first``: a touching pair is offered whole, its cuts not made yet; read surely
    whole it stays so, read in doubt it gets the very cuts ``segment_cell`` makes at once."""
    from pipeline.segment import SURE_WHOLE, cut_unless_sure

    cell, _ = compose([digit(4, 0), digit(2, 0)], gaps=[-2])
    (eager,) = segment_cell(cell).pieces
    (lazy,) = segment_cell(cell, whole_first=True).pieces
    assert lazy.uncut and len(lazy.options) == 1 and lazy.box == eager.box
    sure = np.eye(11)[0] * SURE_WHOLE + np.eye(11)[6] * (1 - SURE_WHOLE)
    kept = cut_unless_sure(lazy, lambda crop: sure)
    assert not kept.uncut and kept.options == lazy.options

    cut = cut_unless_sure(lazy, lambda crop: np.full(11, 1 / 11))
    assert not cut.uncut and cut.log_priors == eager.log_priors
    assert [[c.box for c in option] for option in cut.options] == [
        [c.box for c in option] for option in eager.options
    ]
    narrow, _ = compose([digit(1, 0)], gaps=[])
    (one,) = segment_cell(narrow, whole_first=True).pieces
    assert not one.uncut, "a piece too narrow for two digits has no cuts to make"


def test_a_digit_keeps_the_faint_edge_of_its_strokes_but_not_its_neighbours():
    """MNIST strokes fade out over 1-2 px; the mask keeps only the dark core. The crop the
    classifier sees keeps that faint edge (as MNIST has it); its box stays the strokes'."""
    from pipeline.segment import EDGE_MIN_INK, EDGE_PX, ink_map, ink_mask

    cell, _ = compose([digit(8, 0), digit(3, 0)], gaps=[8])
    ink = ink_map(cell)
    strokes = ink_mask(ink)
    left, right = segment_cell(cell).digits
    x0, y0, x1, y1 = left.box
    assert (x0, y0, x1, y1) == _tight_box(strokes[:, : (left.box[2] + right.box[0]) // 2])
    faint_pixels = (ink >= EDGE_MIN_INK) & ~strokes
    half = (x1 + right.box[0]) // 2
    stroke_pixels = np.count_nonzero(strokes[:, :half])
    around = (slice(max(0, y0 - EDGE_PX), y1 + EDGE_PX), slice(max(0, x0 - EDGE_PX), x1 + EDGE_PX))
    faint_near = np.count_nonzero(faint_pixels[around])
    assert faint_near > 0
    # The crop holds the strokes and the faint pixels around them, none of the right digit's.
    assert np.count_nonzero(left.image) == stroke_pixels + faint_near
    assert np.count_nonzero(left.image >= ink[strokes].min()) == stroke_pixels


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def test_ruled_line_remnant_touching_a_digit_is_cut_away():
    one = argentine_one(broken=False)
    cell, _ = compose([one, digit(3, 2)], gaps=[6], height=44)
    width = cell.shape[1]
    top = int(np.flatnonzero((cell < 128).any(axis=1))[0])
    cell = cell[top - 1 :].copy()  # the digits reach up to the cell's top line
    cell[0:2, :] = 25
    result = segment_cell(cell)
    assert len(result.digits) == 2
    assert all(d.box[2] - d.box[0] < 0.5 * width for d in result.digits)
    # Only ink too faint to be a stroke comes back around a digit: not the line's.
    for crop in result.digits:
        x0, y0, x1, y1 = crop.box
        below_line = cell[max(2, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2]
        assert np.count_nonzero(crop.image > 127) <= np.count_nonzero(below_line < 128)


def test_remnants_of_the_cells_lines_inside_a_margin_are_cut_away_when_located():
    """A crop cut with a margin: the cell's top line runs 10 px below the crop's top edge,
    through the tops of the digits."""
    cell, _ = compose([argentine_one(broken=False), digit(3, 2)], gaps=[6], height=44)
    top = int(np.flatnonzero((cell < 128).any(axis=1))[0])
    cell = np.vstack([np.full((10 - 1, cell.shape[1]), 255, np.uint8), cell[top:]])
    cell[9:11, :] = 25
    height, width = cell.shape
    lines = (3, 10, width - 3, height - 6)
    located = segment_cell(cell, lines=lines)
    assert len(located.digits) == 2
    assert all(d.box[2] - d.box[0] < 0.5 * width for d in located.digits)
    unlocated = segment_cell(cell)  # negative control: the line joins everything in one piece
    assert len(unlocated.pieces) == 1
    assert unlocated.pieces[0].box[2] - unlocated.pieces[0].box[0] > 0.8 * width


def test_dotted_line_remnant_on_a_located_line_is_dropped():
    cell, _ = compose([digit(2, 1), digit(7, 1)], gaps=[6], height=44, margin=14)
    height, width = cell.shape
    lines = (6, 6, width - 6, height - 6)
    for y in range(6, height - 6, 6):  # the left line as a column of dots
        cell[y : y + 2, 5:7] = 30
    located = segment_cell(cell, lines=lines)
    assert len(located.digits) == 2
    assert all(d.box[0] > 10 for d in located.digits)
    unlocated = segment_cell(cell)  # negative control: the dots stay as a piece
    assert any(p.box[0] <= 6 for p in unlocated.pieces)


def test_slanted_one_broken_across_is_one_digit():
    one = np.zeros((28, 14), np.uint8)
    cv2.line(one, (11, 2), (7, 12), 255, 2)  # upper half
    cv2.line(one, (5, 15), (2, 26), 255, 2)  # lower half, a pen lift between
    cell, _ = compose([one, digit(5, 3)], gaps=[7])
    assert cv2.connectedComponents((cell < 128).astype(np.uint8))[0] - 1 == 3
    assert len(segment_cell(cell).digits) == 2


def corrected_cell(
    wrong: list[int], right: list[int], strike: str, overshoot: int = 3, nth: int = 2
) -> tuple[np.ndarray, int]:
    """A corrected cell of real MNIST digits: ``wrong`` (the nth samples) crossed out
    (``strike`` = "line": one slightly rising stroke overshooting it by ``overshoot`` px; "x":
    two diagonals from corner to corner of its ink) and ``right`` written beside it. Returns
    the cell and the x where ``right`` starts."""
    digits = [digit(d, nth) for d in wrong] + [digit(d, 1) for d in right]
    gaps = [2] * (len(wrong) - 1) + [14] + [5] * (len(right) - 1)
    cell, ranges = compose(digits, gaps=gaps)
    x0, x1 = ranges[0][0], ranges[len(wrong) - 1][1] - 1
    rows = np.flatnonzero((cell[:, x0 : x1 + 1] < 128).any(axis=1))
    y0, y1 = int(rows[0]), int(rows[-1])
    if strike == "line":
        mid = (y0 + y1) // 2
        cv2.line(cell, (x0 - overshoot, mid + 2), (x1 + overshoot, mid - 2), 0, 2)
    else:
        cv2.line(cell, (x0, y0), (x1, y1), 0, 2)
        cv2.line(cell, (x0, y1), (x1, y0), 0, 2)
    return cell, ranges[len(wrong)][0]


@pytest.mark.parametrize(
    ("wrong", "right", "strike"),
    [([4, 8], [5, 0], "line"), ([2, 7], [2, 5], "line"), ([6], [7], "x"), ([3, 9], [4, 1], "x")],
)
def test_number_crossed_out_beside_its_correction_is_dropped(wrong, right, strike):
    cell, right_x = corrected_cell(wrong, right, strike)
    result = segment_cell(cell)
    assert result.struck_through  # a correction goes to review
    assert len(result.digits) == len(right)
    assert all(crop.box[0] >= right_x - 1 for crop in result.digits)
    assert any(box[2] < right_x for box in result.dropped)  # the crossed-out number


@pytest.mark.parametrize("nth", range(6))
def test_a_single_struck_one_beside_its_correction_is_dropped_not_read_as_a_four(nth):
    """A pen crossing out a lone 1 makes a "+" that the classifier reads as a 4 at 0.99."""
    cell, right_x = corrected_cell([1], [0], "line", overshoot=6, nth=nth)
    result = segment_cell(cell)
    assert result.struck_through
    assert len(result.digits) == 1
    assert result.digits[0].box[0] >= right_x - 1
    assert any(box[2] < right_x for box in result.dropped)


def test_fours_and_crossed_sevens_beside_another_digit_are_not_struck_ones():
    """A 4's bar starts where its left branch comes down; a crossed 7's top bar is wide.
    (A "+" alone in a cell, with nothing beside it, is read, never dropped.)"""
    seven = np.zeros((28, 27), np.uint8)  # its bar overshoots the stem and the top bar
    cv2.line(seven, (6, 3), (19, 3), 255, 2)
    cv2.line(seven, (19, 3), (9, 26), 255, 2)
    cv2.line(seven, (2, 14), (24, 14), 255, 2)
    cells = [compose([seven, digit(0)], gaps=[8])[0]]
    cells += [compose([digit(4, nth), digit(0)], gaps=[8])[0] for nth in range(40)]
    for cell in cells:
        result = segment_cell(cell)
        assert not result.struck_through
        assert len(result.digits) == 2


@pytest.mark.parametrize("strike", ["line", "x"])
def test_correction_reads_as_the_right_number(classifier, strike):
    cell, _ = corrected_cell([4, 8], [5, 0], strike)
    from pipeline.reframe import reframe_digit

    result = choose_split(segment_cell(cell), classifier.predict_proba)
    frames = np.stack([reframe_digit(crop.image) for crop in result.digits])
    assert classifier.predict_proba(frames)[:, :10].argmax(axis=1).tolist() == [5, 0]


def test_crossed_sevens_fours_and_plain_numbers_keep_all_their_digits():
    seven = np.zeros((28, 22), np.uint8)
    cv2.line(seven, (2, 3), (19, 3), 255, 2)
    cv2.line(seven, (19, 3), (9, 26), 255, 2)
    cv2.line(seven, (4, 14), (21, 14), 255, 2)  # a long bar, overshooting the stem both ways
    apart = [compose([seven, digit(2), digit(4)], gaps=[5, 5])[0]]
    touching = []
    for labels in ([4, 1], [7, 4], [4, 4, 7], [2, 5, 8], [1, 0, 3], [2, 2], [8, 5]):
        for nth in range(5):
            digits = [digit(d, nth) for d in labels]
            apart.append(compose(digits, gaps=[5] * (len(labels) - 1))[0])
            touching.append(compose(digits, gaps=[-2] * (len(labels) - 1))[0])
    for cell in apart:
        result = segment_cell(cell)
        assert not result.struck_through
        assert not result.dropped
    # touching digits: no piece is dropped as crossed out (find_strike, the whole-number
    # strike, may still take a long joint for a strike: it keeps the digits)
    assert not any(segment_cell(cell).dropped for cell in touching)


def _open_wide_zero(gap_degrees: float) -> np.ndarray:
    """A cell with a wide, slanted 0 whose ends do not meet at the top right, drawn as an
    elliptic arc (dark ink on white paper, 3 px pen)."""
    cell = np.full((44, 120), 255, np.uint8)
    start = -60 + gap_degrees / 2
    cv2.ellipse(cell, (60, 22), (17, 10), -25, start, start + 360 - gap_degrees, 30, 3)
    return cell


@pytest.mark.parametrize("gap_degrees", [0, 40])
def test_a_wide_zero_is_not_cut_through_its_loop_even_when_left_open(gap_degrees):
    """Wide enough to pass for two digits, but every cut runs through its loop, which a gap
    of a few pixels between its ends does not open: the best guess is one digit."""
    (piece,) = segment_cell(_open_wide_zero(gap_degrees)).pieces
    assert len(piece.options[0]) == 1


@pytest.mark.parametrize("whole_first", [False, True])
@pytest.mark.parametrize("axes, pen, angle", [((16, 8), 6, -15), ((18, 9), 7, -25)])
def test_a_flat_thick_zero_read_surely_whole_is_not_cut_into_six_seven(
    classifier, axes, pen, angle, whole_first
):
    """A 0 written flat with a thick pen is 1.7-2 times as wide as tall, wider than MNIST's
    single digits, so its shape prior favours two digits ("6" "7"); the classifier reads it
    whole as a 0 surely enough that it stays one digit."""
    from pipeline.read import classify_segmentations

    cell = np.full((44, 120), 255, np.uint8)
    cv2.ellipse(cell, (60, 22), axes, angle, 0, 360, 30, pen)
    segmentation = segment_cell(cell, whole_first=whole_first)
    (chosen,), batch = classify_segmentations([segmentation], classifier)
    (piece,) = chosen.pieces
    assert [int(np.argmax(batch.probs_of(crop))) for crop in piece.options[0]] == [0]


def test_choose_splits_refuses_pieces_whose_cuts_are_not_made_yet():
    """A piece offered whole first must go through ``cut_unless_sure`` before the split
    choice: read whole as it stands, a touching pair would silently be one digit."""
    cell, _ = compose([digit(4, 0), digit(2, 0)], gaps=[-2])
    lazy = segment_cell(cell, whole_first=True)
    assert any(piece.uncut for piece in lazy.pieces)
    with pytest.raises(ValueError, match="cut_unless_sure"):
        choose_splits([lazy], probs_of=lambda crop: np.eye(11)[4])
