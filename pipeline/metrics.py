"""Classification metrics, the project's one implementation (pure numpy, JSON-ready results).

The figures the published evaluation reports: accuracy; per class TP, TN, FP, FN, accuracy,
precision, recall, F1 (one class against the rest); their macro averages; the confusion matrix
(rows = true class, columns = predicted class). A ratio whose denominator is 0 is reported as
0.0 (e.g. precision of a class never predicted), as scikit-learn's ``zero_division=0`` does.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import BadInput


def _labels(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise BadInput(f"{name} must be a 1-D array of class indices, got shape {array.shape}")
    if array.size and (not np.issubdtype(array.dtype, np.integer) or array.min() < 0):
        raise BadInput(f"{name} must hold non-negative integer class indices")
    return array.astype(np.int64)


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64; entry [t, p] counts samples of class t predicted as p."""
    true = _labels(y_true, "y_true")
    pred = _labels(y_pred, "y_pred")
    if true.shape != pred.shape:
        raise BadInput(f"y_true has {true.size} labels but y_pred has {pred.size}")
    if true.size and max(true.max(), pred.max()) >= num_classes:
        raise BadInput(f"a class index is >= num_classes ({num_classes})")
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (true, pred), 1)
    return matrix


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def per_class_metrics(matrix: np.ndarray) -> list[dict]:
    """One dict per class: class, support, tp, tn, fp, fn, accuracy, precision, recall, f1."""
    matrix = np.asarray(matrix, np.int64)
    total = int(matrix.sum())
    rows = []
    for index in range(matrix.shape[0]):
        tp = int(matrix[index, index])
        fn = int(matrix[index, :].sum()) - tp
        fp = int(matrix[:, index].sum()) - tp
        tn = total - tp - fn - fp
        precision = _ratio(tp, tp + fp)
        recall = _ratio(tp, tp + fn)
        rows.append(
            {
                "class": index,
                "support": tp + fn,
                "tp": tp,
                "tn": tn,
                "fp": fp,
                "fn": fn,
                "accuracy": _ratio(tp + tn, total),
                "precision": precision,
                "recall": recall,
                "f1": _ratio(2 * precision * recall, precision + recall),
            }
        )
    return rows


def classification_report(y_true, y_pred, num_classes: int = 10) -> dict:
    """All the figures as one JSON-ready dict.

    Keys: n, accuracy, macro_precision, macro_recall, macro_f1, per_class (list of dicts, see
    ``per_class_metrics``), confusion (list of lists). Macro averages run over the classes
    that occur in y_true (a class absent from the data does not drag the average to 0).
    """
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    per_class = per_class_metrics(matrix)
    present = [row for row in per_class if row["support"] > 0]
    n = int(matrix.sum())

    def macro(key: str) -> float:
        return float(np.mean([row[key] for row in present])) if present else 0.0

    return {
        "n": n,
        "accuracy": _ratio(np.trace(matrix), n),
        "macro_precision": macro("precision"),
        "macro_recall": macro("recall"),
        "macro_f1": macro("f1"),
        "per_class": per_class,
        "confusion": matrix.tolist(),
    }


def format_report(report: dict, class_names: list[str] | None = None) -> str:
    """The report as aligned text: summary, per-class table, confusion matrix."""
    per_class = report["per_class"]
    names = class_names or [str(row["class"]) for row in per_class]
    lines = [
        f"n = {report['n']}",
        f"accuracy        {report['accuracy']:.4f}",
        f"macro precision {report['macro_precision']:.4f}",
        f"macro recall    {report['macro_recall']:.4f}",
        f"macro F1        {report['macro_f1']:.4f}",
        "",
        f"{'class':>6} {'support':>7} {'TP':>6} {'TN':>6} {'FP':>5} {'FN':>5} "
        f"{'acc':>6} {'prec':>6} {'recall':>6} {'F1':>6}",
    ]
    for name, row in zip(names, per_class, strict=True):
        lines.append(
            f"{name:>6} {row['support']:>7} {row['tp']:>6} {row['tn']:>6} {row['fp']:>5} "
            f"{row['fn']:>5} {row['accuracy']:>6.4f} {row['precision']:>6.4f} "
            f"{row['recall']:>6.4f} {row['f1']:>6.4f}"
        )
    lines += ["", "confusion (rows true, columns predicted)"]
    width = max(5, max(len(str(v)) for row in report["confusion"] for v in row) + 1)
    lines.append(" " * 7 + "".join(f"{name:>{width}}" for name in names))
    for name, row in zip(names, report["confusion"], strict=True):
        lines.append(f"{name:>6} " + "".join(f"{value:>{width}}" for value in row))
    return "\n".join(lines)


def confusion_image(matrix, class_names: list[str] | None = None, cell: int = 40) -> np.ndarray:
    """The confusion matrix as a (H, W, 3) uint8 BGR picture (cv2.imwrite-able).

    Cell shade: share of the true class's row (white 0 .. dark blue 1); counts written in.
    """
    import cv2

    matrix = np.asarray(matrix, np.int64)
    k = matrix.shape[0]
    names = class_names or [str(i) for i in range(k)]
    margin = cell
    size = margin + k * cell
    image = np.full((size + 10, size + 10, 3), 255, np.uint8)
    row_totals = np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    shares = matrix / row_totals
    font = cv2.FONT_HERSHEY_SIMPLEX
    for t in range(k):
        cv2.putText(image, names[t], (8, margin + t * cell + cell // 2 + 5), font, 0.45, 0, 1)
        cv2.putText(image, names[t], (margin + t * cell + 10, margin - 12), font, 0.45, 0, 1)
        for p in range(k):
            shade = shares[t, p]
            colour = (255, int(255 * (1 - 0.8 * shade)), int(255 * (1 - shade)))
            x0, y0 = margin + p * cell, margin + t * cell
            cv2.rectangle(image, (x0, y0), (x0 + cell, y0 + cell), colour, -1)
            cv2.rectangle(image, (x0, y0), (x0 + cell, y0 + cell), (200, 200, 200), 1)
            if matrix[t, p]:
                text_colour = (255, 255, 255) if shade > 0.5 else (0, 0, 0)
                cv2.putText(
                    image,
                    str(matrix[t, p]),
                    (x0 + 3, y0 + cell // 2 + 5),
                    font,
                    0.35,
                    text_colour,
                    1,
                )
    return image
