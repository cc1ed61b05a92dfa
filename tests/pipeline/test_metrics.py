"""Classification metrics checked against figures worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.errors import BadInput
from pipeline.metrics import classification_report, confusion_matrix, format_report

# 8 samples, 3 classes. True: 0 0 0 1 1 1 2 2; predicted: 0 0 1 1 1 2 2 0.
Y_TRUE = np.array([0, 0, 0, 1, 1, 1, 2, 2])
Y_PRED = np.array([0, 0, 1, 1, 1, 2, 2, 0])


def test_confusion_matrix_rows_are_true_columns_predicted():
    assert confusion_matrix(Y_TRUE, Y_PRED, 3).tolist() == [[2, 1, 0], [0, 2, 1], [1, 0, 1]]


def test_per_class_counts_and_ratios():
    report = classification_report(Y_TRUE, Y_PRED, 3)
    zero, one, two = report["per_class"]
    # Class 0: TP 2, FN 1 (read as 1), FP 1 (a 2 read as 0), TN 8-2-1-1 = 4.
    assert (zero["tp"], zero["fn"], zero["fp"], zero["tn"]) == (2, 1, 1, 4)
    assert zero["precision"] == pytest.approx(2 / 3)
    assert zero["recall"] == pytest.approx(2 / 3)
    assert zero["f1"] == pytest.approx(2 / 3)
    assert zero["accuracy"] == pytest.approx(6 / 8)
    # Class 2: TP 1, FN 1, FP 1, TN 5; precision 1/2, recall 1/2.
    assert (two["tp"], two["fn"], two["fp"], two["tn"]) == (1, 1, 1, 5)
    assert two["f1"] == pytest.approx(0.5)
    assert one["support"] == 3 and one["precision"] == pytest.approx(2 / 3)


def test_accuracy_and_macro_averages():
    report = classification_report(Y_TRUE, Y_PRED, 3)
    assert report["n"] == 8
    assert report["accuracy"] == pytest.approx(5 / 8)
    assert report["macro_precision"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)
    assert report["macro_recall"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)
    assert report["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)


def test_a_class_never_predicted_has_zero_precision_and_absent_classes_are_not_averaged():
    report = classification_report([0, 1, 1], [0, 0, 0], 4)
    assert report["per_class"][1]["precision"] == 0.0
    assert report["per_class"][1]["recall"] == 0.0
    # Classes 2 and 3 have no samples: the macro average runs over classes 0 and 1.
    assert report["macro_recall"] == pytest.approx((1.0 + 0.0) / 2)


def test_report_is_json_ready_and_formats():
    report = classification_report(Y_TRUE, Y_PRED, 3)
    assert json.loads(json.dumps(report)) == report
    text = format_report(report)
    assert "accuracy        0.6250" in text
    assert "confusion" in text


def test_mismatched_or_invalid_labels_are_rejected():
    with pytest.raises(BadInput, match="3 labels"):
        confusion_matrix([0, 1, 2], [0, 1], 3)
    with pytest.raises(BadInput, match="num_classes"):
        confusion_matrix([0, 5], [0, 1], 3)
    with pytest.raises(BadInput):
        confusion_matrix([-1, 0], [0, 0], 3)
