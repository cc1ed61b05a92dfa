"""Training the two digit models (seeded, reproducible on CPU), and their model cards.

* ``paper``: Keras' "Simple MNIST convnet" exactly as published (34,826 parameters), trained
  on MNIST train for 15 epochs, batch 128, Adam, 10% held out for validation.
* ``default``: a slightly deeper CNN with batch norm and an 11th "not a digit" class, trained
  on MNIST train (reframed) plus augmented and synthesised variants (``pipeline.augment``).
  5,000 MNIST train digits are held out for model selection; USPS is never used here.

``adapt`` then fine-tunes a trained model on digits as the pipeline sees them: synthetic
telegrams written with MNIST *train* digits (``pipeline.synth``) are read by the pipeline,
and the digits of every cell cut into as many pieces as its true number has digits are
labelled with those digits (``harvest_telegram_digits``). Trained on those frames plus MNIST
train (clean and augmented, so nothing learnt is forgotten), the model learns what
registration, line removal, stroke normalisation and segmentation do to a digit. MNIST test,
USPS and the evaluation telegrams (written with MNIST test or USPS digits) stay unseen.

Both models take (N, 28, 28) uint8-valued input (white ink on black, as ``reframe_digit``
returns) and rescale it internally, so callers never normalise.

TensorFlow is imported inside the functions: importing this module stays cheap and fork-safe.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import BadInput

MODEL_NAMES = ("paper", "default")
DEFAULT_SEED = 1234
# Not-a-digit images per training digit in each epoch of ``default``: junk, touching pairs.
JUNK_SHARE = 0.1
PAIR_SHARE = 0.08


@dataclass(frozen=True)
class MnistData:
    """MNIST in the Keras layout: x (N, 28, 28) uint8 white on black, y (N,) uint8 0..9."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def load_mnist(path: Path | None) -> MnistData:
    """Read mnist.npz (keys x_train, y_train, x_test, y_test); None -> Keras' downloader."""
    if path is None:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
        return MnistData(x_train, y_train, x_test, y_test, "keras.datasets.mnist")
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"MNIST file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(data.files)
            if missing:
                raise BadInput(f"{path}: missing keys {sorted(missing)} (Keras mnist.npz layout)")
            arrays = {key: data[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: not a readable .npz file ({exc})") from exc
    return MnistData(**arrays, source=f"{path.name} sha256:{sha256_file(path)[:12]}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def seed_everything(seed: int) -> None:
    """Python, numpy and TF seeds plus deterministic TF ops (same seed, same weights on CPU)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _input_block(keras):
    """(N, 28, 28) 0..255 -> (N, 28, 28, 1) 0..1; no parameters."""
    inputs = keras.Input(shape=(28, 28), name="digits")
    x = keras.layers.Reshape((28, 28, 1))(inputs)
    x = keras.layers.Rescaling(1.0 / 255.0)(x)
    return inputs, x


def build_paper_model():
    """Keras' "Simple MNIST convnet": 34,826 trainable parameters, 10 classes."""
    import keras

    inputs, x = _input_block(keras)
    x = keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu")(x)
    x = keras.layers.MaxPooling2D(pool_size=(2, 2))(x)
    x = keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu")(x)
    x = keras.layers.MaxPooling2D(pool_size=(2, 2))(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.5)(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="paper")


def build_default_model(num_classes: int = 11):
    """Conv-BN-ReLU x4 in three stages (32, 64, 128, 128 filters), dropout, softmax.

    About 0.24 M parameters and ~7 M multiply-adds per digit (the paper model: ~2.4 M), still
    thousands of digits/s batched on two CPU cores.
    """
    import keras

    def conv(x, filters, kernel=3, padding="same"):
        x = keras.layers.Conv2D(filters, kernel, padding=padding, use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        return keras.layers.Activation("relu")(x)

    inputs, x = _input_block(keras)
    x = conv(x, 32, 5)  # 28x28
    x = keras.layers.MaxPooling2D(2)(x)  # 14x14
    x = conv(x, 64)
    x = keras.layers.MaxPooling2D(2)(x)  # 7x7
    x = conv(x, 128, padding="valid")  # 5x5
    x = conv(x, 128, padding="valid")  # 3x3
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="default")


def train_paper(
    data: MnistData, seed: int = DEFAULT_SEED, epochs: int = 15, log: Callable = print
) -> tuple[object, dict]:
    """Train ``paper`` as published. Returns (keras model, training facts for the card)."""
    import keras

    seed_everything(seed)
    model = build_paper_model()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    started = time.time()
    history = model.fit(
        data.x_train.astype(np.float32),
        data.y_train.astype(np.int32),
        batch_size=128,
        epochs=epochs,
        validation_split=0.1,
        verbose=2,
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: log(e, logs))],
    )
    facts = {
        "training_data": f"MNIST train ({data.source}), first 54,000 digits; last 6,000 validation",
        "seed": seed,
        "epochs": epochs,
        "batch_size": 128,
        "optimizer": "adam",
        "validation_accuracy": float(history.history["val_accuracy"][-1]),
        "training_seconds": round(time.time() - started, 1),
    }
    return model, facts


def train_default(
    data: MnistData,
    seed: int = DEFAULT_SEED,
    epochs: int = 8,
    log: Callable = print,
) -> tuple[object, dict]:
    """Train ``default`` on reframed MNIST train + fresh augmentation each epoch.

    Each epoch sees the clean digits once and a new augmented copy of every digit (with
    synthesised Argentine 1s and crossed 7s) plus not-a-digit images; 5,000 held-out MNIST
    train digits pick the best epoch. Returns (keras model, training facts for the card).
    """
    import keras

    from pipeline import augment
    from pipeline.reframe import reframe_many

    seed_everything(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.x_train))
    held_out, kept = order[:5000], order[5000:]
    x_train = reframe_many(data.x_train[kept])
    y_train = data.y_train[kept].astype(np.int32)
    x_val = reframe_many(data.x_train[held_out])
    y_val = data.y_train[held_out].astype(np.int32)
    model = build_default_model(num_classes=11)
    n = len(x_train)
    not_digits = round(JUNK_SHARE * n) + round(PAIR_SHARE * n)
    steps_per_epoch = (2 * n + not_digits) // 128 + 1
    schedule = keras.optimizers.schedules.CosineDecay(
        2e-3, decay_steps=epochs * steps_per_epoch, alpha=0.02
    )
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=keras.optimizers.Adam(schedule),
        metrics=["accuracy"],
    )
    best_weights, best_val, best_epoch = None, -1.0, -1
    started = time.time()
    for epoch in range(epochs):
        tick = time.time()
        x_aug, y_aug = augment.augmented_epoch(x_train, y_train, rng, JUNK_SHARE, PAIR_SHARE)
        x_epoch = np.concatenate([x_train, x_aug])
        y_epoch = np.concatenate([y_train, y_aug])
        shuffle = rng.permutation(len(x_epoch))
        made = time.time() - tick
        history = _fit_epoch(model, x_epoch[shuffle], y_epoch[shuffle])
        probabilities = model.predict(x_val.astype(np.float32), batch_size=1024, verbose=0)
        val_accuracy = float((probabilities.argmax(axis=1) == y_val).mean())
        log(
            epoch,
            {
                "loss": round(float(history.history["loss"][0]), 4),
                "accuracy": round(float(history.history["accuracy"][0]), 4),
                "val_accuracy": val_accuracy,
                "augment_seconds": round(made, 1),
                "epoch_seconds": round(time.time() - tick, 1),
            },
        )
        if val_accuracy >= best_val:
            best_weights, best_val, best_epoch = model.get_weights(), val_accuracy, epoch
    model.set_weights(best_weights)
    facts = {
        "training_data": (
            f"MNIST train ({data.source}) reframed, minus 5,000 held out for model selection; "
            "each epoch the clean digits plus a fresh augmented copy (rotation, shear, scale, "
            "translation, stroke thickness, elastic distortion, broken strokes, cell-line "
            "fragments), synthesised Argentine 1s and crossed/hooked 7s, and not-a-digit images "
            "(class 10: blobs, dashes, specks, line corners, two touching digits)"
        ),
        "seed": seed,
        "epochs": epochs,
        "best_epoch": best_epoch + 1,
        "batch_size": 128,
        "optimizer": "adam, cosine decay from 2e-3",
        "validation_accuracy": best_val,
        "training_seconds": round(time.time() - started, 1),
        "usps_used_for_training": False,
    }
    return model, facts


def _fit_epoch(model, x: np.ndarray, y: np.ndarray):
    """One epoch over (x (N, 28, 28), y (N,)) in the order given (the caller shuffles with
    its seeded generator), batches of 128; returns the Keras history."""
    return model.fit(x.astype(np.float32), y, batch_size=128, epochs=1, verbose=0, shuffle=False)


def train(
    name: str, data: MnistData, seed: int = DEFAULT_SEED, epochs: int | None = None, log=print
):
    """Train the model called ``name`` ("paper" or "default")."""
    if name == "paper":
        return train_paper(data, seed, epochs or 15, log)
    if name == "default":
        return train_default(data, seed, epochs or 8, log)
    raise BadInput(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")


def test_metrics(model, data: MnistData, usps: Path | None = None) -> dict:
    """Card figures: MNIST test (reframed, as the CLI does) and, if given, USPS all 9,298.

    Measured after training; neither set takes part in training or model selection.
    Each entry: n, accuracy, macro_precision, macro_recall, macro_f1.
    """
    import tensorflow as tf

    from pipeline.evaluation import DigitSet, evaluate_digits, load_digit_set
    from pipeline.model import DigitClassifier

    classifier = DigitClassifier(model, model.name, f"{model.name}@training", "/CPU:0", tf)
    sets = {"mnist_test": DigitSet(data.x_test, data.y_test.astype(np.int64), "MNIST test")}
    if usps is not None:
        sets["usps_all"] = load_digit_set(Path(usps), "all")
    keys = ("n", "accuracy", "macro_precision", "macro_recall", "macro_f1")
    figures = {}
    for name, digit_set in sets.items():
        report = evaluate_digits(classifier, digit_set)
        figures[name] = {key: report[key] for key in keys}
    return figures


def save_model(model, facts: dict, out: Path, metrics: dict | None = None) -> dict:
    """Write ``out`` (.keras, no optimizer state) and ``<stem>.card.json``; return the card."""
    out = Path(out)
    if out.suffix != ".keras":
        raise BadInput(f"model file must end in .keras: {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    import keras

    # A model rebuilt from its layer config carries the weights without the optimizer's state
    # (clone_model and model_from_json keep the compile state: a file three times larger).
    clean = keras.Model.from_config(model.get_config())
    clean.set_weights(model.get_weights())
    clean.save(out)
    card = {
        "name": model.name,
        "file": out.name,
        "sha256": sha256_file(out),
        "weights_sha256": weights_sha256(clean),
        "parameters": int(model.count_params()),
        "num_classes": int(model.output_shape[-1]),
        "input": "(N, 28, 28) grey levels 0..255, white ink on black (pipeline.reframe)",
        **facts,
        "metrics": metrics or {},
    }
    card_path(out).write_text(json.dumps(card, indent=2) + "\n")
    return card


def weights_sha256(model) -> str:
    """SHA-256 of the weights' bytes: equal for equal training runs, unlike the .keras file's
    own hash (the zip archive stores timestamps)."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(np.ascontiguousarray(array, np.float32).tobytes())
    return digest.hexdigest()


def card_path(model_file: Path) -> Path:
    """pipeline/models/default.keras -> pipeline/models/default.card.json."""
    model_file = Path(model_file)
    return model_file.with_name(model_file.stem + ".card.json")


# --------------------------------------------------------------------------- adaptation

# Synthetic telegrams ``adapt`` reads, as shares of its ``telegrams``: scan quality -> share.
ADAPT_QUALITIES = (("typical", 0.6), ("clean", 0.2), ("hard", 0.2))
ADAPT_FORM = "arg-2023-general"
# How many: 1,500 give ~79,000 digits, 500 gave 26,000; adapted on 1,500, the model misread
# fewer of the digits cut from held-out telegrams (BENCHMARKS.md, 2026-12-05).
ADAPT_TELEGRAMS = 1500
# MNIST train digits per epoch beside the harvested ones (0: as many as harvested).
ADAPT_MNIST_PER_EPOCH = 25_000


def harvest_telegram_digits(directory: Path, classifier, form: str = ADAPT_FORM):
    """The digits of a ``pipeline.synth`` dataset as the pipeline frames them, labelled.

    Every scan of ``directory`` is read (registration, cells, segmentation, classification
    of the split options, exactly as ``escrutinio read`` does); a written value cell whose
    chosen segmentation has as many digits as its true number (``truth.csv``), and that is
    not struck through, gives one (28, 28) frame per digit, labelled left to right.
    Returns (x (N, 28, 28) uint8, y (N,) int32, counts: cells seen / cells used / pages).
    """
    from pipeline.forms import load_template
    from pipeline.read import classify_digits, load_scan, prepare_page
    from pipeline.synth.writer import read_truth

    template = load_template(form)
    truth, _ = read_truth(directory)
    frames: list[np.ndarray] = []
    labels: list[int] = []
    counts = {"pages": 0, "cells": 0, "cells_used": 0}
    scans = sorted((directory / "scans").glob("*.png"))
    for start in range(0, len(scans), 16):
        pages = []
        for path in scans[start : start + 16]:
            try:
                pages.append((path.stem, prepare_page(load_scan(path, 10**9, 10**9), template)))
            except BadInput:  # a page the pipeline refuses gives no digits
                continue
        chosen, batch = classify_digits([page for _, page in pages], classifier)
        for (mesa, _), segmentations in zip(pages, chosen, strict=True):
            counts["pages"] += 1
            for cell in template.value_cells():
                row = cell.row
                segmentation = segmentations.get(f"{row.key}|{cell.column.cargo_id}")
                if row.votos_tipo == "TOTAL" or segmentation is None:
                    continue
                positive = row.votos_tipo == "POSITIVO"
                key = (
                    mesa,
                    cell.column.cargo_id,
                    row.votos_tipo,
                    row.agrupacion_id if positive else None,
                    row.lista_numero if positive else None,
                )
                value = truth.get(key)
                counts["cells"] += 1
                digits = segmentation.digits
                if value is None or segmentation.struck_through or len(digits) != len(str(value)):
                    continue
                counts["cells_used"] += 1
                for crop, digit in zip(digits, str(value), strict=True):
                    frames.append(batch.frame_of(crop))
                    labels.append(int(digit))
    x = np.stack(frames) if frames else np.zeros((0, 28, 28), np.uint8)
    return x, np.asarray(labels, np.int32), counts


def write_train_bank(
    data: MnistData, path: Path, rng: np.random.Generator, flagged_share: float = 0.0
) -> Path:
    """MNIST train as a ``pipeline.synth`` digit bank (keys x, y): the telegrams ``adapt``
    learns from are written with digits the evaluation telegrams never use.

    flagged_share: share of the 1s given an Argentine flag (``augment.flagged_ones``). MNIST's
    1s are plain strokes, and a model adapted on telegrams of plain 1s forgets the flagged
    ones its base learnt from augmentation (the real 2019 telegram's 1s read "4").
    """
    from pipeline import augment

    x = data.x_train
    if flagged_share > 0:  # else no random draw, as before flagged 1s existed
        x = augment.flagged_ones(x, data.y_train, flagged_share, rng)
    np.savez(path, x=x, y=data.y_train)
    return path


def adapt(
    base: Path,
    data: MnistData,
    workdir: Path,
    telegrams: int = ADAPT_TELEGRAMS,
    seed: int = 501,
    epochs: int = 3,
    learning_rate: float = 3e-4,
    log: Callable = print,
    flagged_share: float = 0.0,
    mnist_per_epoch: int = ADAPT_MNIST_PER_EPOCH,
    one_pair_share: float = 0.0,
) -> tuple[object, dict]:
    """Fine-tune the model in ``base`` (.keras) on pipeline-framed telegram digits.

    Writes ``telegrams`` synthetic telegrams (``ADAPT_QUALITIES``, seeds ``seed``, ``seed`` + 1,
    ...) with MNIST train digits into ``workdir``, harvests their digits with the base model
    (``harvest_telegram_digits``), keeps 10% of them aside to report, and trains ``epochs``
    epochs, each on the harvested digits twice plus ``mnist_per_epoch`` MNIST train digits
    (0: as many as were harvested, at most all) clean and augmented (with not-a-digit
    images), Adam at ``learning_rate``. flagged_share: share of the telegrams' 1s written with
    an Argentine flag (``write_train_bank``); when above 0 the augmentation draws the
    branched flag too (``augment.branched_one``). one_pair_share: 1s written into a
    neighbour (``augment.one_in_pair``) added per epoch as not-a-digit images, as a share of
    the epoch's MNIST digits. Returns (model, facts).
    """
    if not 0.0 <= flagged_share <= 1.0:
        raise BadInput(f"the share of flagged 1s must be from 0 to 1, got {flagged_share}")
    if not 0.0 <= one_pair_share <= 1.0:
        raise BadInput(f"the share of 1s in a pair must be from 0 to 1, got {one_pair_share}")
    if mnist_per_epoch < 0:
        raise BadInput(f"MNIST digits per epoch must be 0 or more, got {mnist_per_epoch}")
    import keras

    from pipeline import augment
    from pipeline.model import get_classifier
    from pipeline.reframe import reframe_many
    from pipeline.synth.writer import SynthConfig, write_dataset

    seed_everything(seed)
    rng = np.random.default_rng(seed)
    started = time.time()
    bank = write_train_bank(data, Path(workdir) / "mnist_train_bank.npz", rng, flagged_share)
    classifier = get_classifier(str(base))
    parts_x, parts_y, harvest_counts = [], [], {}
    for offset, (quality, share) in enumerate(ADAPT_QUALITIES):
        directory = Path(workdir) / f"telegrams-{quality}"
        config = SynthConfig(
            outdir=directory,
            count=max(1, round(share * telegrams)),
            form=ADAPT_FORM,
            seed=seed + offset,
            digits=str(bank),
            quality=quality,
        )
        write_dataset(config, progress=False)
        x, y, counts = harvest_telegram_digits(directory, classifier)
        parts_x.append(x)
        parts_y.append(y)
        harvest_counts[quality] = counts
        log(offset, {f"{quality}_digits": len(x), f"{quality}_cells_used": counts["cells_used"]})
    harvest_x, harvest_y = np.concatenate(parts_x), np.concatenate(parts_y)
    order = rng.permutation(len(harvest_x))
    aside = order[: len(order) // 10]
    train = order[len(order) // 10 :]
    x_mnist = reframe_many(data.x_train)
    y_mnist = data.y_train.astype(np.int32)
    per_epoch = min(mnist_per_epoch or len(train), len(x_mnist))
    model = keras.models.load_model(base)

    def harvest_accuracy() -> float:
        probabilities = model.predict(
            harvest_x[aside].astype(np.float32), batch_size=1024, verbose=0
        )
        return float((probabilities.argmax(axis=1) == harvest_y[aside]).mean())

    before = harvest_accuracy()
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=keras.optimizers.Adam(learning_rate),
        metrics=["accuracy"],
    )
    for epoch in range(epochs):
        tick = time.time()
        sample = rng.choice(len(x_mnist), per_epoch, replace=False)
        x_aug, y_aug = augment.augmented_epoch(
            x_mnist[sample],
            y_mnist[sample],
            rng,
            JUNK_SHARE,
            PAIR_SHARE,
            branched_ones=flagged_share > 0,
            one_pair_share=one_pair_share,
        )
        x_epoch = np.concatenate([harvest_x[train], harvest_x[train], x_mnist[sample], x_aug])
        y_epoch = np.concatenate([harvest_y[train], harvest_y[train], y_mnist[sample], y_aug])
        shuffle = rng.permutation(len(x_epoch))
        history = _fit_epoch(model, x_epoch[shuffle], y_epoch[shuffle])
        log(
            epoch,
            {
                "loss": round(float(history.history["loss"][0]), 4),
                "harvest_aside_accuracy": harvest_accuracy(),
                "epoch_seconds": round(time.time() - tick, 1),
            },
        )
    facts = {
        "adapted_from": {"file": Path(base).name, "sha256": sha256_file(Path(base))},
        "adaptation": (
            f"fine-tuned {epochs} epochs (Adam {learning_rate:g}) on the digits the pipeline "
            f"cut from {telegrams} synthetic {ADAPT_FORM} telegrams written with MNIST train "
            "digits"
            + (f", {flagged_share:.0%} of the 1s with an Argentine flag" if flagged_share else "")
            + " (qualities "
            + ", ".join(f"{q} {share:.0%}" for q, share in ADAPT_QUALITIES)
            + f"; seeds from {seed}), each twice per epoch, plus {per_epoch:,} MNIST "
            "train digits clean and augmented with not-a-digit images per epoch"
            + (
                f", {one_pair_share:.0%} of that many again 1s written into a neighbour"
                if one_pair_share
                else ""
            )
        ),
        "harvest": {
            "digits": int(len(harvest_x)),
            "per_quality": harvest_counts,
            "aside_accuracy_before": before,
            "aside_accuracy_after": harvest_accuracy(),
        },
        "seed": seed,
        "epochs": epochs,
        "training_seconds": round(time.time() - started, 1),
        "usps_used_for_training": False,
    }
    return model, facts


def read_card(model_file: Path) -> dict:
    """The card of ``model_file`` ({} when it has none); a card that is not JSON raises
    BadInput naming it."""
    card_file = card_path(model_file)
    if not card_file.is_file():
        return {}
    try:
        return json.loads(card_file.read_text())
    except ValueError as exc:
        raise BadInput(f"{card_file}: not a readable model card ({exc})") from exc


def average_models(paths: Sequence[Path]) -> tuple[object, dict]:
    """The element-wise mean of the weights of several .keras models (a uniform "model soup").

    Meant for models fine-tuned from one base (``adapt`` runs with other data or seeds): they
    stay in one basin of the loss, where the mean reads better than a typical member, and
    the run-to-run swing of any one of them (a few digits of MNIST test, a wide 0 read whole
    or cut) averages out. Every weight is averaged, batch normalisation's moving statistics
    too. Models whose weights are shaped otherwise, or whose cards name another base
    (``adapted_from``'s sha256), raise BadInput. A member that is itself an average counts
    once: average averages of as many members each. Returns (model, facts for the card: the
    base's facts, the members' seed and epochs when they share them, else None, and the
    members).
    """
    import keras

    paths = [Path(path) for path in paths]
    if len(paths) < 2:
        raise BadInput(f"averaging needs at least two models, got {len(paths)}")
    cards = [read_card(path) for path in paths]
    # The base is its file's hash: its name is how each run happened to call it.
    bases = {str((card.get("adapted_from") or {}).get("sha256")) for card in cards}
    if len(bases) > 1:
        raise BadInput(f"the models were adapted from different bases: {sorted(bases)}")
    models = []
    for path in paths:
        try:
            models.append(keras.models.load_model(path))
        except Exception as exc:  # Keras raises several types for a broken file
            raise BadInput(f"{path}: not a loadable Keras model ({exc})") from exc
    weights = [model.get_weights() for model in models]
    shapes = [[layer.shape for layer in member] for member in weights]
    for path, shape in zip(paths[1:], shapes[1:], strict=True):
        if shape != shapes[0]:
            raise BadInput(f"{path}: its weights are not shaped like those of {paths[0]}")
    model = models[0]
    model.set_weights([np.mean(layer, axis=0) for layer in zip(*weights, strict=True)])
    seeds = {card.get("seed") for card in cards}
    epochs = {card.get("epochs") for card in cards}
    facts = {
        key: cards[0].get(key)
        for key in ("training_data", "base_weights_sha256", "base_command", "adapted_from")
    }
    facts["seed"] = seeds.pop() if len(seeds) == 1 else None
    facts["epochs"] = epochs.pop() if len(epochs) == 1 else None
    facts["averaged_from"] = [
        {
            "file": path.name,
            "sha256": sha256_file(path),
            "weights_sha256": card.get("weights_sha256"),
            "command": card.get("command"),
            "adaptation": card.get("adaptation"),
            "metrics": card.get("metrics"),
        }
        for path, card in zip(paths, cards, strict=True)
    ]
    return model, facts
