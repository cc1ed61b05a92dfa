"""Plausible vote counts for one mesa, obeying the form's rules.

Rules the generated counts satisfy (and tests check):

- ``votantes`` (electores que han votado) is 60-85% of ``electores`` (250-350 registered);
  ``sobres`` equals ``votantes`` or is off by one or two; ``diferencia = |votantes - sobres|``;
- in every office column, the counts of all rows sum to ``sobres`` (the form's rule), and the
  ``TOTAL`` row holds that sum;
- ``IMPUGNADO`` (identity challenged) is the same in every column, as the form instructs;
- NO USAR cells get no count.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from pipeline.forms import FormTemplate


@dataclass(frozen=True)
class MesaCounts:
    """The true counts of one mesa: ``counts[(row key, cargo_id)]`` for every value cell.

    Includes the ``TOTAL`` row when the form has one. ``electores`` is the number of
    registered voters (``mesa_electores``), ``votantes``/``sobres``/``diferencia`` the header.
    """

    electores: int
    votantes: int
    sobres: int
    diferencia: int
    counts: dict[tuple[str, int], int]


def party_popularity(template: FormTemplate) -> dict[str, float]:
    """Expected share of the positive votes of each list of a template (sums to 1).

    The template's ``share`` of each list where given (lists without one get a small
    share); otherwise a fixed, heavy-tailed draw (a few large lists, many small ones) seeded
    by the template name, so every mesa of a dataset shares the same political landscape and
    mesas vary around it.
    """
    rows = template.party_rows
    if any(row.share is not None for row in rows):
        weights = np.array([row.share if row.share is not None else 0.003 for row in rows])
    else:
        seed = int.from_bytes(hashlib.sha256(template.name.encode()).digest()[:8], "little")
        weights = np.exp(np.random.default_rng(seed).normal(0.0, 1.6, size=len(rows)))
    weights = np.maximum(weights, 0.001)
    weights = weights / weights.sum()
    return {row.key: float(w) for row, w in zip(rows, weights, strict=True)}


def generate_counts(template: FormTemplate, rng: np.random.Generator) -> MesaCounts:
    """Counts for one mesa of ``template`` drawn with ``rng`` (see the module rules)."""
    electores = int(rng.integers(250, 351))
    votantes = int(round(electores * rng.uniform(0.60, 0.85)))
    sobres = votantes
    if rng.random() < 0.08:
        sobres = max(1, min(electores, votantes + int(rng.choice([-2, -1, 1]))))
    diferencia = abs(votantes - sobres)

    popularity = party_popularity(template)
    keys = list(popularity)
    mesa_share = rng.dirichlet(np.array([popularity[k] for k in keys]) * 40.0 + 1e-3)
    impugnado = int(rng.random() < 0.04)

    counts: dict[tuple[str, int], int] = {}
    for index, column in enumerate(template.columns):
        other = {
            "NULO": int(rng.poisson(1.2)),
            "RECURRIDO": int(rng.random() < 0.12),
            "IMPUGNADO": impugnado,
            "COMANDO": int(rng.random() < 0.03),
            # Blank votes grow for offices further down the ballot.
            "EN BLANCO": int(rng.poisson(sobres * (0.01 + 0.012 * index))),
        }
        rows_here = [
            row
            for row in template.rows
            if row.votos_tipo != "TOTAL" and not template.is_no_usar(row, column)
        ]
        for row in rows_here:
            if row.votos_tipo != "POSITIVO":
                counts[(row.key, column.cargo_id)] = other.get(row.votos_tipo, 0)
        non_positive = sum(
            counts[(r.key, column.cargo_id)] for r in rows_here if r.votos_tipo != "POSITIVO"
        )
        if non_positive > sobres:  # tiny mesa: drop the blank votes first
            for r in rows_here:
                if r.votos_tipo != "POSITIVO":
                    counts[(r.key, column.cargo_id)] = 0
            non_positive = 0
        running = [r for r in rows_here if r.votos_tipo == "POSITIVO"]
        positive = sobres - non_positive
        if running:
            # Ticket splitting: each office's shares vary a little around the mesa's.
            base = np.array([mesa_share[keys.index(r.key)] for r in running]) + 1e-4
            shares = rng.dirichlet(base / base.sum() * 300.0)
            votes = rng.multinomial(positive, shares)
            for row, v in zip(running, votes, strict=True):
                counts[(row.key, column.cargo_id)] = int(v)
        elif rows_here:
            # No list runs for this office: everything goes to the blank row if there is one.
            blank = next((r for r in rows_here if r.votos_tipo == "EN BLANCO"), rows_here[0])
            counts[(blank.key, column.cargo_id)] += positive
        for row in template.rows:
            if row.votos_tipo == "TOTAL" and not template.is_no_usar(row, column):
                counts[(row.key, column.cargo_id)] = sobres
    return MesaCounts(electores, votantes, sobres, diferencia, counts)
