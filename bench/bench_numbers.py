"""Whole-number reading on numbers cut from MNIST test digits: exactness, calibration, sum rule.

    .venv/bin/python bench/bench_numbers.py --model default --count 3000 [--calibrate]
        [--touching 0.2 --overlapping 0.1] [--columns 300] [--write DIR] [--usps USPS.npz]

Numbers are 1-3 CONSECUTIVE MNIST test digits side by side (``pipeline.numbers.make_numbers``;
20% of the gaps touching 0-1 px and 10% overlapping 1-2 px by default). The evaluation set uses
test digits 5,000-9,999; ``--calibrate`` fits the whole-number calibration (Platt slope and
offset) on a separate set made from test digits 0-4,999 and reports the reliability table of the
evaluation set with it (with the model's shipped calibration otherwise). ``--columns N``
simulates N telegram columns of 8 rows + total read from such images and measures the sum rule
(cells exact before/after, wrong corrections).
``--write DIR`` also writes the evaluation set as an ``escrutinio evaluate numbers`` directory.
``--usps FILE`` builds the evaluation numbers from USPS digits instead (all 9,298, 16x16,
enlarged to 28x28 as the synthetic telegrams' digit bank does): handwriting the model never
saw; the calibration stays the one fitted on MNIST.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.decode import (  # noqa: E402
    IDENTITY,
    Flag,
    apply_sum_rule,
    calibration_for,
    fit_calibration,
    reliability,
)
from pipeline.numbers import (  # noqa: E402
    make_number_image,
    make_numbers,
    read_numbers,
    summarise,
    write_numbers_dir,
)

DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"


def print_reliability(confidence, correct, title):
    rows, ece = reliability(confidence, correct)
    print(f"{title}: expected calibration error {ece:.4f}")
    print(f"  {'bin':<13} {'n':>6} {'mean conf':>10} {'accuracy':>9}")
    for row in rows:
        span = f"[{row['lo']:.3f},{row['hi']:.3f})"
        print(f"  {span:<13} {row['n']:>6} {row['confidence']:>10.4f} {row['accuracy']:>9.4f}")


def simulate_columns(x, y, classifier, calibration, count, rows_per_column, rng):
    """Columns of random counts written with MNIST digits; totals too. Sum rule figures."""
    by_label = [np.flatnonzero(y == d) for d in range(10)]

    def write(value):
        digits = [x[rng.choice(by_label[int(c)])] for c in str(value)]
        return make_number_image(digits, rng)

    images, truth = [], []
    for _ in range(count):
        values = [int(v) for v in rng.integers(0, 120, rows_per_column)]
        images += [write(v) for v in values] + [write(sum(values))]
        truth.append(values + [sum(values)])
    results = read_numbers(images, classifier, calibration=calibration)
    readings = [r.reading for r in results]
    size = rows_per_column + 1
    before = after = corrected_right = corrected_wrong = mismatched = accepted = 0
    accepted_right = 0
    for index, values in enumerate(truth):
        column = readings[index * size : (index + 1) * size]
        outcome = apply_sum_rule(column[:-1], column[-1], None)
        before += sum(r.value == v for r, v in zip(column, values, strict=True))
        after += sum(r.value == v for r, v in zip(outcome.readings, values, strict=True))
        for changed in outcome.changed:
            if outcome.readings[changed].value == values[changed]:
                corrected_right += 1
            else:
                corrected_wrong += 1
        mismatched += Flag.SUM_MISMATCH in outcome.flags
        for reading, value in zip(outcome.readings, values, strict=True):
            if reading.accepted:
                accepted += 1
                accepted_right += reading.value == value
    cells = count * size
    print(f"sum rule on {count} columns of {rows_per_column} rows + total ({cells} cells):")
    print(f"  cells exact before {before / cells:.4f}  after {after / cells:.4f}")
    print(f"  corrections right {corrected_right}  wrong {corrected_wrong}")
    print(f"  columns flagged SUM_MISMATCH {mismatched / count:.4f}")
    share = accepted_right / max(1, accepted)
    print(f"  cells accepted {accepted / cells:.4f}, of those right {share:.4f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    parser.add_argument("--model", default="default")
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--touching", type=float, default=0.2)
    parser.add_argument("--overlapping", type=float, default=0.1)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--columns", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path, default=None)
    parser.add_argument("--usps", type=Path, default=None)
    args = parser.parse_args()

    from pipeline.model import get_classifier

    data = np.load(args.mnist)
    x_test, y_test = data["x_test"], data["y_test"]
    classifier = get_classifier(args.model, "cpu", args.threads, 1)
    print(f"model {classifier.version} ({classifier.num_classes} classes)")
    shape = {"touching": args.touching, "overlapping": args.overlapping}

    calibration = calibration_for(classifier)
    if args.calibrate:
        cal_images, cal_labels = make_numbers(
            x_test[:5000], y_test[:5000], args.count, seed=args.seed + 1000, **shape
        )
        cal = read_numbers(cal_images, classifier, calibration=IDENTITY)
        correct = [r.reading.text == label for r, label in zip(cal, cal_labels, strict=True)]
        raw = [r.reading.confidence for r in cal]
        calibration = fit_calibration(raw, correct)
        print(f"fitted {calibration} on {args.count} numbers (digits 0-4999)")
        print(f'  CALIBRATIONS entry: "{classifier.version}": {calibration!r}')
        print_reliability(raw, correct, "calibration set, raw confidence")

    if args.usps:
        usps = np.load(args.usps)
        x_eval = np.concatenate([usps["x_train"], usps["x_test"]])
        x_eval = np.stack(
            [cv2.resize(image, (28, 28), interpolation=cv2.INTER_LINEAR) for image in x_eval]
        )
        y_eval = np.concatenate([usps["y_train"], usps["y_test"]]).astype(int)
        source = "USPS all"
    else:
        x_eval, y_eval, source = x_test[5000:], y_test[5000:], "digits 5000-9999"
    images, labels = make_numbers(x_eval, y_eval, args.count, seed=args.seed, **shape)
    if args.write:
        write_numbers_dir(args.write, images, labels)
        print(f"wrote {len(images)} numbers to {args.write}")
    start = time.perf_counter()
    results = read_numbers(images, classifier, calibration=calibration)
    elapsed = time.perf_counter() - start
    report = summarise(results, labels, args.threshold)
    print(f"{args.count} numbers ({source}, seed {args.seed}, {shape}):")
    for key, value in report.items():
        print(f"  {key:<22} {value:.4f}" if isinstance(value, float) else f"  {key:<22} {value}")
    for length in (1, 2, 3):
        chosen = [
            r.reading.text == lab
            for r, lab in zip(results, labels, strict=True)
            if len(lab) == length
        ]
        print(f"  exact, {length}-digit numbers   {np.mean(chosen):.4f} (n={len(chosen)})")
    print(f"  read speed             {len(images) / elapsed:.0f} numbers/s")
    correct = [r.reading.text == label for r, label in zip(results, labels, strict=True)]
    print_reliability(
        [r.reading.confidence for r in results], correct, f"evaluation set, {calibration}"
    )
    if args.columns:
        rng = np.random.default_rng(args.seed + 7)
        simulate_columns(
            x_test[5000:], y_test[5000:], classifier, calibration, args.columns, 8, rng
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
