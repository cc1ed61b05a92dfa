"""Batched digit classifier: load a Keras model once per process, score N reframed digits.

    clf = get_classifier("default")          # cached per process (per pid: fork-safe)
    probabilities = clf.predict_proba(digits)  # (N, 28, 28) uint8 -> (N, clf.num_classes) float32

Digits are what ``pipeline.reframe.reframe_digit`` returns: 28x28 uint8, white ink on black.
Classes 0..9 are the digits; models with 11 classes (``default``) add ``NOT_A_DIGIT`` (10) for
blobs, dashes, specks and line fragments the segmentation should reject.

Inference runs one compiled ``tf.function`` traced once for any batch size (its batch
dimension is left unknown), in batches of at most ``MAX_BATCH`` digits, which bounds the
activations' memory (about 100 KB per digit in the first layer). No batch is padded: a
chunk's second and third calls are a few hundred digits of any count, and padding them to
fixed sizes had doubled the work of some. Results are deterministic for the same input.

Fork safety: this module imports no TensorFlow at import time; ``DigitClassifier.load`` does.
Load in the worker process after the fork (``get_classifier`` keys its cache by pid), never
in a parent that forks afterwards.
"""

from __future__ import annotations

import gc
import hashlib
import os
from pathlib import Path

import numpy as np

from pipeline.errors import BadInput

NOT_A_DIGIT = 10
MODELS_DIR = Path(__file__).resolve().parent / "models"
MAX_BATCH = 512
DEVICES = ("auto", "cpu", "gpu")


def available_models() -> list[str]:
    """Names of the shipped models (files pipeline/models/<name>.keras)."""
    return sorted(path.stem for path in MODELS_DIR.glob("*.keras"))


def resolve_model(name_or_path: str | os.PathLike) -> tuple[str, Path]:
    """A shipped model's name ("default", "paper") or a path to a .keras file -> (name, path)."""
    text = str(name_or_path)
    if text.endswith(".keras") or os.sep in text:
        path = Path(text)
        if not path.is_file():
            raise BadInput(f"model file not found: {path}")
        return path.stem, path
    path = MODELS_DIR / f"{text}.keras"
    if not path.is_file():
        raise BadInput(
            f"unknown model {text!r}: no {path.name} in {MODELS_DIR} "
            f"(available: {', '.join(available_models()) or 'none'})"
        )
    return text, path


def _configure_tensorflow(device: str, intra_op_threads: int, inter_op_threads: int):
    """Import TF, apply thread counts (if TF is not yet running), return the device name."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if device not in DEVICES:
        raise BadInput(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    try:
        if intra_op_threads:
            tf.config.threading.set_intra_op_parallelism_threads(int(intra_op_threads))
        if inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(int(inter_op_threads))
    except RuntimeError:
        pass  # TF already initialised in this process: its thread pools are fixed by now.
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise BadInput("device 'gpu' asked for (ESCRUTINIO_DEVICE=gpu) but no GPU is visible")
    if device == "gpu" or (device == "auto" and gpus):
        return tf, "/GPU:0"
    return tf, "/CPU:0"


def fold_batch_norm(keras_model):
    """Inference copy of a layer-chain model with every Conv2D + BatchNormalization pair merged
    into one Conv2D with bias (same outputs to ~1e-6, ~15-30% faster on CPU: one pass over the
    activations less, and TF fuses conv + bias + ReLU). Models without such pairs, or not a
    simple chain of layers, are returned unchanged."""
    import keras

    layers = keras_model.layers[1:]
    pairs = sum(
        isinstance(a, keras.layers.Conv2D) and isinstance(b, keras.layers.BatchNormalization)
        for a, b in zip(layers, layers[1:], strict=False)
    )
    chain = all(len(layer._inbound_nodes) == 1 for layer in layers)
    if not pairs or not chain or len(keras_model.inputs) != 1:
        return keras_model
    inputs = keras.Input(shape=keras_model.input_shape[1:], name="digits")
    x = inputs
    index = 0
    while index < len(layers):
        layer = layers[index]
        following = layers[index + 1] if index + 1 < len(layers) else None
        if isinstance(layer, keras.layers.Conv2D) and isinstance(
            following, keras.layers.BatchNormalization
        ):
            config = layer.get_config() | {"use_bias": True, "name": f"{layer.name}_bn"}
            conv = keras.layers.Conv2D.from_config(config)
            x = conv(x)
            weights = layer.get_weights()
            kernel = weights[0]
            bias = weights[1] if layer.use_bias else np.zeros(kernel.shape[-1], np.float32)
            gamma, beta, mean, variance = following.get_weights()
            scale = gamma / np.sqrt(variance + following.epsilon)
            conv.set_weights([kernel * scale, (bias - mean) * scale + beta])
            index += 2
        else:
            x = layer(x)
            index += 1
    return keras.Model(inputs, x, name=keras_model.name)


class DigitClassifier:
    """A loaded digit model. Use ``DigitClassifier.load`` or ``get_classifier``."""

    def __init__(self, keras_model, name: str, version: str, device: str, tf_module):
        self._model = keras_model
        self._tf = tf_module
        self.name = name
        self.version = version
        self.device = device
        self.num_classes = int(keras_model.output_shape[-1])

        @tf_module.function(
            autograph=False,
            input_signature=[tf_module.TensorSpec([None, 28, 28], tf_module.float32)],
        )
        def infer(batch):
            with tf_module.device(device):
                return keras_model(batch, training=False)

        self._infer = infer

    @classmethod
    def load(
        cls,
        name_or_path: str = "default",
        device: str = "cpu",
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
    ) -> DigitClassifier:
        """Load a shipped model by name or a .keras file by path.

        device: "cpu" (default), "gpu" (error if none) or "auto" (GPU when present).
        intra/inter_op_threads: TF thread pools; 0 = TF's default. Only effective when this is
        the first TF work in the process.
        """
        name, path = resolve_model(name_or_path)
        tf, device_name = _configure_tensorflow(device, intra_op_threads, inter_op_threads)
        import keras

        try:
            with tf.device(device_name):
                model = keras.models.load_model(path, compile=False)
        except Exception as exc:  # Keras raises several types for a broken file
            raise BadInput(f"{path}: not a loadable Keras model ({exc})") from exc
        if tuple(model.input_shape[1:]) != (28, 28) or model.output_shape[-1] not in (10, 11):
            raise BadInput(
                f"{path}: expected input (N, 28, 28) and 10 or 11 classes, got input "
                f"{model.input_shape} and output {model.output_shape}"
            )
        with tf.device(device_name):
            model = fold_batch_norm(model)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        classifier = cls(model, name, f"{name}@{digest[:12]}", device_name, tf)
        classifier.predict_proba(np.zeros((1, 28, 28), np.uint8))  # trace the graph now
        return classifier

    def predict_proba(self, digits: np.ndarray) -> np.ndarray:
        """digits (N, 28, 28) uint8, white ink on black -> (N, num_classes) float32; N may be 0."""
        digits = np.asarray(digits)
        if digits.ndim != 3 or digits.shape[1:] != (28, 28):
            raise BadInput(f"digits must have shape (N, 28, 28), got {digits.shape}")
        count = len(digits)
        out = np.zeros((count, self.num_classes), np.float32)
        for start in range(0, count, MAX_BATCH):
            batch = digits[start : start + MAX_BATCH].astype(np.float32)
            out[start : start + len(batch)] = np.asarray(self._infer(self._tf.constant(batch)))
        return out

    def classify(self, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 28, 28) uint8 -> (labels (N,) int64, confidence (N,) float32 of that label)."""
        probabilities = self.predict_proba(digits)
        labels = probabilities.argmax(axis=1)
        return labels, probabilities[np.arange(len(labels)), labels]

    def __repr__(self) -> str:
        return f"DigitClassifier({self.version}, {self.num_classes} classes, {self.device})"


_CACHE: dict[tuple, DigitClassifier] = {}


def get_classifier(
    name_or_path: str = "default",
    device: str | None = None,
    intra_op_threads: int | None = None,
    inter_op_threads: int | None = None,
) -> DigitClassifier:
    """The process's classifier for ``name_or_path``, loaded on first use (cache keyed by pid).

    Unset arguments come from ESCRUTINIO_DEVICE (default "cpu"), ESCRUTINIO_INTRA_OP_THREADS
    and ESCRUTINIO_INTER_OP_THREADS (default 0 = TF's choice).
    A side effect for the whole process: after a load, every object alive is frozen out of
    the garbage collector's reach (``gc.freeze``), so the model's are not walked again.
    """
    if device is None:
        device = os.environ.get("ESCRUTINIO_DEVICE", "cpu").strip().lower() or "cpu"
    if intra_op_threads is None:
        intra_op_threads = int(os.environ.get("ESCRUTINIO_INTRA_OP_THREADS", "0") or 0)
    if inter_op_threads is None:
        inter_op_threads = int(os.environ.get("ESCRUTINIO_INTER_OP_THREADS", "0") or 0)
    key = (os.getpid(), str(name_or_path), device)
    if key not in _CACHE:
        _CACHE[key] = DigitClassifier.load(name_or_path, device, intra_op_threads, inter_op_threads)
        # TensorFlow and Keras leave ~280,000 Python objects that live as long as the process,
        # and every full garbage collection walked them all (0.13 s each, ~15% of the CPU of
        # reading a telegram). Frozen, the collector no longer looks at what exists now; the
        # loading's own garbage is collected first so that it is not kept for good.
        gc.collect()
        gc.freeze()
    return _CACHE[key]
