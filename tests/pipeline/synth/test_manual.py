"""Manual data-entry errors: exactly the listed cells are mistyped, each in the stated way."""

from __future__ import annotations

import numpy as np

from pipeline.forms import load_template
from pipeline.synth.counts import generate_counts
from pipeline.synth.manual import ERROR_KINDS, inject_manual_errors, mistype


def _mesa():
    template = load_template("arg-2019-paso-caba")
    mesa = generate_counts(template, np.random.default_rng(11))
    values = {k: v for k, v in mesa.counts.items() if k[0] != "TOTAL"}
    columns = {
        c.cargo_id: [r.key for r in template.rows if (r.key, c.cargo_id) in values]
        for c in template.columns
    }
    return values, columns


def test_the_listed_errors_are_exactly_the_changed_counts() -> None:
    values, columns = _mesa()
    typed, errors = inject_manual_errors(values, columns, 0.3, np.random.default_rng(5))
    changed = {k for k in values if typed[k] != values[k]}
    assert changed == {(e.row_key, e.cargo_id) for e in errors}
    assert 0 < len(errors) < len(values)
    for e in errors:
        assert (
            e.on_telegram == values[(e.row_key, e.cargo_id)]
            and e.typed == typed[(e.row_key, e.cargo_id)]
        )
        assert e.kind in ERROR_KINDS
        true, wrong = str(e.on_telegram), str(e.typed)
        if e.kind == "dropped_digit":
            assert len(wrong) <= len(true) - 1  # (leading zeros vanish: 105 -> 05 = 5)
        elif e.kind == "swapped_digits":
            assert sorted(wrong.zfill(len(true))) == sorted(true)
        elif e.kind == "adjacent_cell":
            order = columns[e.cargo_id]
            at = order.index(e.row_key)
            near = [values[(order[i], e.cargo_id)] for i in (at - 1, at + 1) if 0 <= i < len(order)]
            assert e.typed in near
        else:
            assert (
                len(wrong) == len(true)
                and sum(a != b for a, b in zip(wrong, true, strict=True)) == 1
            )


def test_rate_zero_types_everything_right_and_rate_one_almost_nothing() -> None:
    values, columns = _mesa()
    typed, errors = inject_manual_errors(values, columns, 0.0, np.random.default_rng(1))
    assert typed == values and errors == []
    typed, errors = inject_manual_errors(values, columns, 1.0, np.random.default_rng(1))
    assert len(errors) == len(values)  # every count has at least the keypad typo available


def test_mistype_never_returns_the_true_value() -> None:
    rng = np.random.default_rng(0)
    for value in [0, 1, 7, 11, 100, 121, 257, 333]:
        for _ in range(30):
            wrong = mistype(value, [value, value + 1], rng)
            assert wrong is not None and wrong[0] != value and wrong[0] >= 0
