"""``escrutinio train``, ``escrutinio adapt`` and ``escrutinio evaluate digits|numbers``: the
digit models."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pipeline.errors import BadInput
from pipeline.training import ADAPT_MNIST_PER_EPOCH, ADAPT_TELEGRAMS


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", help="train a digit model (seeded) and write it with its model card"
    )
    train.add_argument(
        "--mnist",
        type=Path,
        help="mnist.npz (keys x_train, y_train, x_test, y_test); default: Keras' downloader",
    )
    train.add_argument("--model", default="default", choices=("paper", "default"))
    train.add_argument("--out", type=Path, required=True, metavar="FILE.keras")
    train.add_argument(
        "--usps",
        type=Path,
        help="usps.npz: a final check written on the model card (never used for training)",
    )
    train.add_argument("--seed", type=int, default=1234)
    train.add_argument("--epochs", type=int, help="default: 15 (paper), 8 (default)")
    train.add_argument("--threads", type=int, default=2, help="TF intra-op threads (default 2)")
    train.set_defaults(func=run_train)

    adapt = subparsers.add_parser(
        "adapt",
        help="fine-tune a trained model on digits as the pipeline cuts them from synthetic "
        "telegrams written with MNIST train digits",
    )
    adapt.add_argument("--base", type=Path, required=True, metavar="BASE.keras")
    adapt.add_argument("--mnist", type=Path, help="mnist.npz (as for train)")
    adapt.add_argument("--out", type=Path, required=True, metavar="FILE.keras")
    adapt.add_argument("--usps", type=Path, help="usps.npz: a final check on the card")
    adapt.add_argument(
        "--telegrams",
        type=int,
        default=ADAPT_TELEGRAMS,
        help=f"synthetic telegrams ({ADAPT_TELEGRAMS})",
    )
    adapt.add_argument(
        "--flagged-ones",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of the telegrams' 1s written with an Argentine flag (0); above 0 the "
        "augmentation draws the branched flag (augment.branched_one) too",
    )
    adapt.add_argument(
        "--one-pairs",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="1s written into a neighbour (augment.one_in_pair), taught as not a digit, "
        "as a share of each epoch's MNIST digits (0)",
    )
    adapt.add_argument(
        "--mnist-per-epoch",
        type=int,
        default=ADAPT_MNIST_PER_EPOCH,
        metavar="N",
        help=f"MNIST train digits per epoch ({ADAPT_MNIST_PER_EPOCH}; 0: as many as harvested)",
    )
    adapt.add_argument("--seed", type=int, default=501)
    adapt.add_argument("--epochs", type=int, default=3)
    adapt.add_argument("--threads", type=int, default=2, help="TF intra-op threads (default 2)")
    adapt.set_defaults(func=run_adapt)

    average = subparsers.add_parser(
        "average",
        help="average the weights of models fine-tuned from one base (a uniform model soup)",
    )
    average.add_argument("models", nargs="+", type=Path, metavar="MODEL.keras")
    average.add_argument("--out", type=Path, required=True, metavar="FILE.keras")
    average.add_argument("--mnist", type=Path, help="mnist.npz: the test figures on the card")
    average.add_argument("--usps", type=Path, help="usps.npz: a final check on the card")
    average.set_defaults(func=run_average)

    evaluate = subparsers.add_parser("evaluate", help="measure a digit model")
    kinds = evaluate.add_subparsers(dest="evaluate_command", required=True, metavar="WHAT")

    digits = kinds.add_parser("digits", help="accuracy, per-digit metrics, confusion matrix")
    digits.add_argument("file", type=Path, metavar="FILE.npz")
    digits.add_argument("--model", default=None, help="model name or .keras path")
    digits.add_argument("--split", default="test", choices=("test", "train", "all"))
    digits.add_argument("--reframe", default="mnist", choices=("mnist", "paper"))
    digits.add_argument("--json", action="store_true", help="print one JSON object")
    digits.add_argument("--plot", type=Path, metavar="PNG", help="write the confusion matrix")
    digits.set_defaults(func=run_evaluate_digits)

    numbers = kinds.add_parser("numbers", help="whole numbers: DIR with N.png and labels.csv")
    numbers.add_argument("directory", type=Path, metavar="DIR")
    numbers.add_argument("--model", default=None, help="model name or .keras path")
    numbers.add_argument("--threshold", type=float, default=None, help="confidence threshold")
    numbers.add_argument("--json", action="store_true", help="print one JSON object")
    numbers.set_defaults(func=run_evaluate_numbers)


def _settings():
    from worker.settings import get_settings

    return get_settings()


def _classifier(model: str | None):
    """The model named on the command line, else ESCRUTINIO_MODEL_PATH / ESCRUTINIO_MODEL."""
    from pipeline.model import get_classifier

    settings = _settings()
    if model is None:
        model = str(settings.model_path) if settings.model_path else settings.model
    return get_classifier(
        model,
        device=settings.device,
        intra_op_threads=settings.intra_op_threads,
        inter_op_threads=settings.inter_op_threads,
    )


def run_train(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _keras_file(args.out, "--out")
    from pipeline import training

    data = training.load_mnist(args.mnist)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    def log(epoch: int, figures: dict) -> None:
        shown = ", ".join(f"{key} {value:.4g}" for key, value in figures.items())
        print(f"epoch {epoch + 1}: {shown}", flush=True)

    model, facts = training.train(args.model, data, args.seed, args.epochs, log)
    facts["command"] = " ".join(["escrutinio", *sys.argv[1:]])
    return _save_with_card(model, facts, data, args)


def _keras_file(path: Path, option: str, exists: bool = False) -> None:
    """BadInput naming ``option`` unless ``path`` ends in .keras (and, with ``exists``, is a
    file): checked before TensorFlow or any data is loaded."""
    if path.suffix != ".keras":
        raise BadInput(f"{option} must end in .keras: {path}")
    if exists and not path.is_file():
        raise BadInput(f"{option}: no such model file: {path}")


def _save_with_card(model, facts: dict, data, args: argparse.Namespace) -> int:
    """Test figures (MNIST test, USPS if given), then the model file and its card."""
    from pipeline import training

    metrics = training.test_metrics(model, data, args.usps)
    card = training.save_model(model, facts, args.out, metrics)
    print(
        f"wrote {args.out} ({card['parameters']} parameters, sha256 {card['sha256'][:12]}); "
        f"MNIST test accuracy {metrics['mnist_test']['accuracy']:.4f}"
    )
    return 0


def run_adapt(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _keras_file(args.out, "--out")
    _keras_file(args.base, "--base", exists=True)
    if args.telegrams < 10 or args.epochs < 1:
        raise BadInput("--telegrams must be at least 10 and --epochs at least 1")
    import tempfile

    import tensorflow as tf

    from pipeline import training

    data = training.load_mnist(args.mnist)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    base_card = training.read_card(args.base)

    def log(step: int, figures: dict) -> None:
        shown = ", ".join(f"{key} {value}" for key, value in figures.items())
        print(f"step {step + 1}: {shown}", flush=True)

    with tempfile.TemporaryDirectory(prefix="escrutinio-adapt-") as workdir:
        model, facts = training.adapt(
            args.base,
            data,
            Path(workdir),
            args.telegrams,
            args.seed,
            args.epochs,
            log=log,
            flagged_share=args.flagged_ones,
            mnist_per_epoch=args.mnist_per_epoch,
            one_pair_share=args.one_pairs,
        )
    facts = {
        "training_data": base_card.get("training_data", "see the base model's card"),
        "base_weights_sha256": base_card.get("weights_sha256"),
        "base_command": base_card.get("command"),
        **facts,
        "command": " ".join(["escrutinio", *sys.argv[1:]]),
    }
    return _save_with_card(model, facts, data, args)


def run_average(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _keras_file(args.out, "--out")
    for path in args.models:
        _keras_file(path, "a model to average", exists=True)
        if path.resolve() == args.out.resolve():
            raise BadInput(f"--out would overwrite a model being averaged: {path}")
    from pipeline import training

    model, facts = training.average_models(args.models)  # checks them before MNIST is loaded
    data = training.load_mnist(args.mnist)
    facts["command"] = " ".join(["escrutinio", *sys.argv[1:]])
    return _save_with_card(model, facts, data, args)


def run_evaluate_digits(args: argparse.Namespace) -> int:
    from pipeline.evaluation import evaluate_digits, load_digit_set
    from pipeline.metrics import confusion_image, format_report

    if args.plot is not None and args.plot.suffix.lower() != ".png":
        raise BadInput(f"--plot must be a .png file: {args.plot}")
    digit_set = load_digit_set(args.file, args.split)
    classifier = _classifier(args.model)
    report = evaluate_digits(classifier, digit_set, args.reframe)
    if args.plot is not None:
        import cv2

        names = [str(i) for i in range(10)] + ["x"] * (classifier.num_classes - 10)
        if not cv2.imwrite(str(args.plot), confusion_image(report["confusion"], names)):
            raise BadInput(f"could not write {args.plot}")
    if args.json:
        json.dump(report, sys.stdout)
        print()
    else:
        names = [str(i) for i in range(10)] + ["not"] * (classifier.num_classes - 10)
        print(f"model {report['model']} on {report['source']}, reframe {report['reframe']}")
        print(format_report(report, names))
    return 0


def run_evaluate_numbers(args: argparse.Namespace) -> int:
    from pipeline.numbers import evaluate_numbers_dir

    if not args.directory.is_dir():
        raise BadInput(f"not a directory: {args.directory}")
    threshold = args.threshold if args.threshold is not None else _settings().confidence_threshold
    classifier = _classifier(args.model)
    result = evaluate_numbers_dir(args.directory, classifier, threshold)
    result = {"model": classifier.version, **result}
    if args.json:
        json.dump(result, sys.stdout)
        print()
    else:
        for key, value in result.items():
            shown = f"{value:.4f}" if isinstance(value, float) else value
            print(f"{key:<22} {shown}")
    return 0
