"""Data-entry errors: how operators mistype the counts of a telegram into the manual entries.

Kinds (each chosen only where it changes the value):

- ``dropped_digit``: one digit left out (121 -> 21);
- ``swapped_digits``: two neighbouring digits exchanged (123 -> 132);
- ``adjacent_cell``: the value of the cell above or below in the same column was typed;
- ``typo``: one digit replaced by a neighbouring key of the numeric keypad.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ERROR_KINDS = ("dropped_digit", "swapped_digits", "adjacent_cell", "typo")

# Neighbours of each key on a numeric keypad (7 8 9 / 4 5 6 / 1 2 3 / 0).
_KEYPAD_NEIGHBOURS = {
    "0": "12",
    "1": "024",
    "2": "1350",
    "3": "26",
    "4": "157",
    "5": "2468",
    "6": "359",
    "7": "48",
    "8": "579",
    "9": "68",
}


@dataclass(frozen=True)
class ManualError:
    """One mistyped count: the cell ``(row key, cargo_id)``, the true and the typed value."""

    row_key: str
    cargo_id: int
    on_telegram: int
    typed: int
    kind: str


def mistype(value: int, neighbours: list[int], rng: np.random.Generator) -> tuple[int, str] | None:
    """A wrong value an operator might type for ``value``, and its kind; None if impossible.

    ``neighbours`` are the values of the cells above and below in the same column.
    """
    text = str(value)
    options: list[tuple[int, str]] = []
    if len(text) >= 2:
        i = int(rng.integers(len(text)))
        options.append((int(text[:i] + text[i + 1 :]), "dropped_digit"))
        j = int(rng.integers(len(text) - 1))
        swapped = text[:j] + text[j + 1] + text[j] + text[j + 2 :]
        if swapped != text:
            options.append((int(swapped), "swapped_digits"))
    different = [n for n in neighbours if n != value]
    if different:
        options.append((different[int(rng.integers(len(different)))], "adjacent_cell"))
    i = int(rng.integers(len(text)))
    keys = _KEYPAD_NEIGHBOURS[text[i]]
    if i == 0 and len(text) > 1:
        keys = keys.replace("0", "")  # a leading 0 would shorten the number: not a typo
    typo = text[:i] + keys[int(rng.integers(len(keys)))] + text[i + 1 :]
    options.append((int(typo), "typo"))
    options = [(v, k) for v, k in options if v != value]
    if not options:
        return None
    return options[int(rng.integers(len(options)))]


def inject_manual_errors(
    values: dict[tuple[str, int], int],
    columns: dict[int, list[str]],
    rate: float,
    rng: np.random.Generator,
) -> tuple[dict[tuple[str, int], int], list[ManualError]]:
    """Mistype each count of ``values`` with probability ``rate``.

    ``values`` maps ``(row key, cargo_id)`` to the true count (official vote types only);
    ``columns`` gives each cargo's row keys top to bottom (for adjacent-cell errors).
    Returns the typed values and the list of errors, in the order of ``values``.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"manual error rate must be 0..1, got {rate}")
    typed = dict(values)
    errors: list[ManualError] = []
    if rate == 0.0:
        return typed, errors
    for (key, cargo_id), value in values.items():
        if rng.random() >= rate:
            continue
        order = columns[cargo_id]
        at = order.index(key)
        neighbours = [values[(order[k], cargo_id)] for k in (at - 1, at + 1) if 0 <= k < len(order)]
        wrong = mistype(value, neighbours, rng)
        if wrong is None:
            continue
        typed[(key, cargo_id)] = wrong[0]
        errors.append(ManualError(key, cargo_id, value, wrong[0], wrong[1]))
    return typed, errors
