"""Generated counts obey the form's rules: column sums, header, NO USAR, plausible ranges."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.forms import list_templates, load_template
from pipeline.synth.counts import generate_counts


@pytest.mark.parametrize("name", list_templates())
def test_every_column_sums_to_the_envelopes_and_the_header_is_consistent(name: str) -> None:
    template = load_template(name)
    rng = np.random.default_rng(7)
    cells = {(c.row.key, c.column.cargo_id) for c in template.value_cells()}
    for _ in range(60):
        mesa = generate_counts(template, rng)
        assert set(mesa.counts) == cells  # one count per handwritten cell, none in NO USAR
        assert 250 <= mesa.electores <= 350
        assert 0.6 * mesa.electores - 1 <= mesa.votantes <= 0.85 * mesa.electores + 1
        assert mesa.diferencia == abs(mesa.votantes - mesa.sobres)
        assert mesa.sobres <= mesa.electores
        for column in template.columns:
            values = {row.votos_tipo: [] for row in template.rows}
            for row in template.rows:
                if (row.key, column.cargo_id) in mesa.counts:
                    values[row.votos_tipo].append(mesa.counts[(row.key, column.cargo_id)])
            assert sum(sum(v) for t, v in values.items() if t != "TOTAL") == mesa.sobres
            assert values["TOTAL"] == [mesa.sobres]
            assert all(v >= 0 for vs in values.values() for v in vs)
        impugnados = {v for (key, _), v in mesa.counts.items() if key == "IMPUGNADO"}
        assert len(impugnados) == 1  # the same in every column, as the form instructs


def test_small_parties_often_get_zero_to_three_and_mesas_differ() -> None:
    template = load_template("arg-2019-paso-caba")
    rng = np.random.default_rng(3)
    mesas = [generate_counts(template, rng) for _ in range(100)]
    party_counts = [
        v
        for m in mesas
        for (key, _), v in m.counts.items()
        if template.row(key).votos_tipo == "POSITIVO"
    ]
    assert np.mean(np.array(party_counts) <= 3) > 0.3
    assert max(party_counts) > 60  # and some lists are large
    leaders = {max(m.counts, key=lambda k: m.counts[k] if k[0] != "TOTAL" else -1) for m in mesas}
    assert len(leaders) > 1
    blanks = [v for m in mesas for (key, _), v in m.counts.items() if key == "EN BLANCO"]
    assert np.mean(blanks) < 0.1 * np.mean([m.sobres for m in mesas])


def test_the_template_shares_drive_the_counts() -> None:
    template = load_template("arg-2023-general")
    rng = np.random.default_rng(2)
    mesas = [generate_counts(template, rng) for _ in range(40)]
    president = template.columns[0].cargo_id

    def mean_votes(key: str) -> float:
        return float(np.mean([m.counts[(key, president)] for m in mesas]))

    by_share = sorted(template.party_rows, key=lambda row: row.share)
    means = [mean_votes(row.key) for row in by_share]
    assert means[0] < means[-1] and means[-1] > 0.25 * np.mean([m.sobres for m in mesas])
