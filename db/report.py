"""The accuracy report: the published measures, computed against the manual entries.

Accuracy is measured only on cells the typed results can vouch for: cells that were read and
typed, in a column whose typed entries satisfy the sum rule (``manual_column_consistent``), or
that a person reviewed (``reviewed_value`` then is the truth). So typing errors do not count
against the reader. The cell set is the view ``v_evaluation_cells``; the figures:

- ``cells``, ``exact``: how many cells, and the share read exactly (whole number right);
- ``accepted_share`` / ``accepted_exact``: the share of cells accepted automatically (a value,
  confidence >= threshold, no review flag) and the exact share among them; ``coverage`` gives
  both at each threshold of ``THRESHOLDS``;
- digit level (``digits``, ``per_class``, ``confusion``): digits of cells whose digit string has
  as many digits as the truth, paired left to right (view ``v_digit_confusion``), through
  ``pipeline.metrics.classification_report`` (TP, TN, FP, FN, precision, recall, F1, macro);
- ``verdicts``: counts of every verdict over all reconciled cells;
- ``suspected_manual_errors``: the MANUAL_SUSPECT cells;
- ``by_district`` / ``by_office``: the views ``v_accuracy_by_district`` / ``_by_office``.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import Connection, text

from db.models import Verdict
from pipeline.metrics import classification_report

#: Confidence thresholds of the coverage-accuracy curve.
THRESHOLDS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)

_SUMMARY = """
SELECT count(*) AS cells, count(*) FILTER (WHERE exact) AS exact,
       count(*) FILTER (WHERE accepted) AS accepted,
       count(*) FILTER (WHERE accepted AND exact) AS accepted_exact,
       count(*) FILTER (WHERE reviewed_value IS NOT NULL) AS reviewed
FROM v_evaluation_cells
"""
# width_bucket(x, sorted thresholds) = how many thresholds are <= x.
_CONFIDENCE_BUCKETS = """
SELECT width_bucket(reading_confidence, CAST(:thresholds AS double precision[])) AS bucket,
       count(*) AS cells, count(*) FILTER (WHERE exact) AS exact
FROM v_evaluation_cells
WHERE reading_value IS NOT NULL AND NOT reading_flags && escrutinio_review_flags()
GROUP BY bucket
"""
_SUSPECTS = """
SELECT mesa_code, cargo_id, votos_tipo, agrupacion_id, lista_numero, manual_value,
       reading_value, reading_confidence, manual_column_sum, reading_column_sum,
       reading_sobres, distrito_id, scan_path, box
FROM v_suspected_entry_errors
ORDER BY mesa_code, cargo_id, votos_tipo, agrupacion_id, lista_numero
"""
_LEAST_CONFIDENT = """
SELECT mesa_code, cargo_id, votos_tipo, agrupacion_id, lista_numero, value, confidence,
       flags, verdict, manual_value, scan_path, box
FROM v_low_confidence_cells
ORDER BY confidence, mesa_code, cargo_id, votos_tipo, agrupacion_id, lista_numero
LIMIT :limit
"""


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def coverage_curve(
    buckets: dict[int, tuple[int, int]], total: int, thresholds=THRESHOLDS
) -> list[dict]:
    """Cumulate confidence buckets into (threshold, accepted share, accepted exact share).

    buckets: {k: (cells, exact)} for cells whose confidence passes exactly k thresholds (the
    k smallest); total: the number of evaluated cells (the share's denominator).
    """
    curve = []
    for index, threshold in enumerate(thresholds):
        passing = [value for k, value in buckets.items() if k >= index + 1]
        accepted = sum(cells for cells, _ in passing)
        exact = sum(e for _, e in passing)
        curve.append(
            {
                "threshold": threshold,
                "accepted": accepted,
                "accepted_share": _ratio(accepted, total),
                "accepted_exact": _ratio(exact, accepted),
            }
        )
    return curve


def digit_report(pairs: list[tuple[int, int, int]]) -> dict:
    """pipeline.metrics' classification report of (true digit, read digit, count) pairs."""
    counts = np.array([n for _, _, n in pairs], np.int64)
    y_true = np.repeat(np.array([t for t, _, _ in pairs], np.int64), counts)
    y_pred = np.repeat(np.array([p for _, p, _ in pairs], np.int64), counts)
    return classification_report(y_true, y_pred, num_classes=10)


def build_report(
    connection: Connection,
    threshold: float = 0.9,
    least_confident: int = 20,
    thresholds=THRESHOLDS,
) -> dict:
    """Every figure of the report as one JSON-ready dict (keys in the module doc).

    Uses the views of migration 0002 with ``threshold`` for this transaction only.
    """
    connection.execute(
        text("SELECT set_config('escrutinio.confidence_threshold', :t, true)"),
        {"t": str(threshold)},
    )
    summary = connection.execute(text(_SUMMARY)).mappings().one()
    cells = int(summary["cells"])
    buckets = {
        int(row.bucket): (int(row.cells), int(row.exact))
        for row in connection.execute(text(_CONFIDENCE_BUCKETS), {"thresholds": list(thresholds)})
    }
    verdicts = {verdict.value: 0 for verdict in Verdict}
    for row in connection.execute(
        text("SELECT verdict, count(*) AS n FROM cell_verdict GROUP BY verdict")
    ):
        verdicts[row.verdict] = int(row.n)
    pairs = [
        (int(row.true_digit), int(row.read_digit), int(row.n))
        for row in connection.execute(
            text("SELECT true_digit, read_digit, n FROM v_digit_confusion")
        )
    ]
    digits = digit_report(pairs)
    suspects = [
        {
            "mesa_id": row.mesa_code,
            "cargo_id": row.cargo_id,
            "votos_tipo": row.votos_tipo,
            "agrupacion_id": row.agrupacion_id,
            "lista_numero": row.lista_numero,
            "manual": row.manual_value,
            "reading": row.reading_value,
            "confidence": row.reading_confidence,
            "manual_column_sum": row.manual_column_sum,
            "reading_column_sum": row.reading_column_sum,
            "sobres": row.reading_sobres,
            "scan_path": row.scan_path,
            "box": row.box,
        }
        for row in connection.execute(text(_SUSPECTS))
    ]
    least = [
        {
            "mesa_id": row.mesa_code,
            "cargo_id": row.cargo_id,
            "votos_tipo": row.votos_tipo,
            "agrupacion_id": row.agrupacion_id,
            "lista_numero": row.lista_numero,
            "reading": row.value,
            "confidence": row.confidence,
            "flags": list(row.flags),
            "verdict": row.verdict,
            "manual": row.manual_value,
            "scan_path": row.scan_path,
            "box": row.box,
        }
        for row in connection.execute(text(_LEAST_CONFIDENT), {"limit": least_confident})
    ]

    def accuracy_rows(view: str, order: str) -> list[dict]:
        rows = connection.execute(text(f"SELECT * FROM {view} ORDER BY {order}")).mappings()
        return [dict(row) for row in rows]

    return {
        "threshold": threshold,
        "cells": cells,
        "exact": _ratio(int(summary["exact"]), cells),
        "accepted_share": _ratio(int(summary["accepted"]), cells),
        "accepted_exact": _ratio(int(summary["accepted_exact"]), int(summary["accepted"])),
        "reviewed_cells": int(summary["reviewed"]),
        "coverage": coverage_curve(buckets, cells, thresholds),
        "verdicts": verdicts,
        "suspected_manual_errors": suspects,
        "least_confident_cells": least,
        "digits": {
            key: digits[key]
            for key in ("n", "accuracy", "macro_precision", "macro_recall", "macro_f1")
        },  # fmt: skip
        "per_class": digits["per_class"],
        "confusion": digits["confusion"],
        "by_district": accuracy_rows("v_accuracy_by_district", "distrito_id"),
        "by_office": accuracy_rows("v_accuracy_by_office", "cargo_id"),
    }


def format_report(report: dict) -> str:
    """The report as text for a terminal."""
    from pipeline.metrics import format_report as format_digits

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = [
        f"cells evaluated (typed column adds up, or reviewed): {report['cells']}",
        f"numbers read exactly: {share(report['exact'])}",
        f"accepted automatically at confidence >= {report['threshold']}: "
        f"{share(report['accepted_share'])}, of which exact {share(report['accepted_exact'])}",
        "",
        "verdicts:",
        *[f"  {name:<16} {count}" for name, count in report["verdicts"].items()],
        "",
        "coverage vs accuracy:",
        "  threshold  accepted  exact",
        *[
            f"  {p['threshold']:>9}  {share(p['accepted_share']):>8}  {share(p['accepted_exact'])}"
            for p in report["coverage"]
        ],
        "",
        "accuracy by district:",
        *[
            f"  {row['distrito_id']} {row['distrito_nombre'] or ''}: {row['cells']} cells, "
            f"exact {share(row['exact_share'])}"
            for row in report["by_district"]
        ],
        "",
        f"suspected data-entry errors: {len(report['suspected_manual_errors'])}",
        *[
            f"  mesa {s['mesa_id']} cargo {s['cargo_id']} {s['votos_tipo']} "
            f"{s['agrupacion_id'] or ''} {s['lista_numero'] or ''}: typed {s['manual']}, "
            f"read {s['reading']} ({s['confidence']:.3f}); column sums typed "
            f"{s['manual_column_sum']} read {s['reading_column_sum']}"
            for s in report["suspected_manual_errors"]
        ],
        "",
        "digits:",
        format_digits(
            {**report["digits"], "per_class": report["per_class"], "confusion": report["confusion"]}
        ),  # fmt: skip
    ]
    return "\n".join(lines)
