"""Digit model benchmark: batched throughput vs the one-at-a-time loop, and accuracy figures.

    .venv/bin/python bench/bench_model.py                 # speed, both models
    .venv/bin/python bench/bench_model.py --accuracy      # + MNIST test / USPS all, both reframings

Speed: ``DigitClassifier.predict_proba`` on N digits at once (buckets, compiled tf.function)
against what the reference notebooks do, ``model.predict(one_digit)`` in a Python loop.
Accuracy: the same figures ``escrutinio evaluate digits FILE --model M --split S --reframe R``
prints (it calls the same ``pipeline.evaluation.evaluate_digits``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def digits_for_speed(count: int) -> np.ndarray:
    """(count, 28, 28) uint8 MNIST test digits (the shipped fixture when ../shared is absent)."""
    from pipeline.evaluation import load_mnist_sample

    path = SHARED_DATA / "mnist.npz"
    if path.is_file():
        with np.load(path) as data:
            x = data["x_test"]
    else:
        x, _ = load_mnist_sample()
    return np.resize(x, (count, 28, 28))


def bench_speed(name: str, n_batched: int, n_loop: int, threads: int) -> dict:
    from pipeline.model import get_classifier

    classifier = get_classifier(name, "cpu", threads, 1)
    digits = digits_for_speed(n_batched)
    classifier.predict_proba(digits[:1024])  # warm up (traces the buckets used)
    started = time.perf_counter()
    classifier.predict_proba(digits)
    batched = n_batched / (time.perf_counter() - started)

    # The notebooks' way: the saved model as Keras loads it, one model.predict per digit.
    import keras

    from pipeline.model import resolve_model

    keras_model = keras.models.load_model(resolve_model(name)[1], compile=False)
    x = digits[:n_loop].astype(np.float32)
    keras_model.predict(x[:1], verbose=0)
    started = time.perf_counter()
    for index in range(n_loop):
        keras_model.predict(x[index : index + 1], verbose=0)
    looped = n_loop / (time.perf_counter() - started)
    return {"model": classifier.version, "batched": batched, "loop": looped}


def bench_accuracy(names: list[str]) -> None:
    from pipeline.evaluation import evaluate_digits, load_digit_set
    from pipeline.model import get_classifier

    sets = [("mnist.npz", "test"), ("usps.npz", "all")]
    print(
        f"{'model':<22} {'data':<16} {'reframe':<7} {'n':>6} {'acc':>7} {'P':>7} {'R':>7} {'F1':>7}"
    )
    for name in names:
        classifier = get_classifier(name, "cpu")
        for file, split in sets:
            path = SHARED_DATA / file
            if not path.is_file():
                print(f"(skipping {path}: not found)")
                continue
            digit_set = load_digit_set(path, split)
            for method in ("mnist", "paper"):
                r = evaluate_digits(classifier, digit_set, method)
                print(
                    f"{classifier.version:<22} {file + ':' + split:<16} {method:<7} {r['n']:>6} "
                    f"{r['accuracy']:>7.4f} {r['macro_precision']:>7.4f} "
                    f"{r['macro_recall']:>7.4f} {r['macro_f1']:>7.4f}",
                    flush=True,
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["paper", "default"])
    parser.add_argument("--batched", type=int, default=20000, help="digits in the batched run")
    parser.add_argument("--loop", type=int, default=300, help="digits in the one-by-one loop")
    parser.add_argument("--threads", type=int, default=2, help="TF intra-op threads")
    parser.add_argument("--accuracy", action="store_true", help="also MNIST test and USPS all")
    args = parser.parse_args()

    print(f"{os.cpu_count()} CPUs visible, {args.threads} TF intra-op threads")
    for name in args.models:
        figures = bench_speed(name, args.batched, args.loop, args.threads)
        ratio = figures["batched"] / figures["loop"]
        print(
            f"{figures['model']:<22} batched {figures['batched']:>9.0f} digits/s   "
            f"one-at-a-time model.predict {figures['loop']:>6.1f} digits/s   ratio {ratio:>6.0f}x",
            flush=True,
        )
    if args.accuracy:
        bench_accuracy(args.models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
