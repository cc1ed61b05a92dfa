"""``escrutinio synth`` and ``escrutinio forms``: the files, their consistency, determinism."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from pipeline.synth.writer import ERROR_COLUMNS, HEADER_COLUMNS, OFFICIAL_COLUMNS
from worker.cli import main

FILES = (
    "results.csv",
    "truth.csv",
    "truth_header.csv",
    "manual_errors.csv",
    "truth_transforms.json",
)


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def digest(outdir: Path) -> dict[str, str]:
    files = [outdir / name for name in FILES] + sorted((outdir / "scans").iterdir())
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    outdir = tmp_path_factory.mktemp("synth") / "out"
    status = main(
        ["synth", str(outdir), "--count", "4", "--seed", "3", "--quality", "clean"]
        + ["--manual-error-rate", "0.05", "--workers", "1", "--no-progress"]
    )
    assert status == 0
    return outdir


def test_synth_writes_the_listed_files_in_the_official_format(dataset: Path) -> None:
    for name in FILES:
        assert (dataset / name).is_file()
    scans = sorted(p.name for p in (dataset / "scans").iterdir())
    assert len(scans) == 4 and all(s.endswith(".png") for s in scans)
    columns, results = read_csv(dataset / "results.csv")
    assert tuple(columns) == OFFICIAL_COLUMNS and len(columns) == 23
    columns, truth = read_csv(dataset / "truth.csv")
    assert tuple(columns) == OFFICIAL_COLUMNS
    assert tuple(read_csv(dataset / "truth_header.csv")[0]) == HEADER_COLUMNS
    assert tuple(read_csv(dataset / "manual_errors.csv")[0]) == ERROR_COLUMNS
    assert {r["votos_tipo"] for r in results} <= {
        "POSITIVO",
        "EN BLANCO",
        "NULO",
        "RECURRIDO",
        "IMPUGNADO",
        "COMANDO",
    }
    assert "TOTAL" in {r["votos_tipo"] for r in truth}
    codes = {r["mesa_id"] for r in truth}
    assert {f"{c}.png" for c in codes} == set(scans)
    for row in truth:  # mesa codes are valid and agree with the id columns
        code = row["mesa_id"]
        assert re.fullmatch(r"\d{10}X", code)
        assert int(code[:2]) == int(row["distrito_id"]) and int(code[2:5]) == int(row["seccion_id"])
        assert re.fullmatch(r"\d{5}", row["circuito_id"])
        assert row["mesa_tipo"] == "NATIVOS" and 250 <= int(row["mesa_electores"]) <= 350


def test_truth_obeys_the_sum_rule_and_the_header(dataset: Path) -> None:
    _, truth = read_csv(dataset / "truth.csv")
    _, headers = read_csv(dataset / "truth_header.csv")
    header = {h["mesa_id"]: h for h in headers}
    sums: dict[tuple[str, str], int] = defaultdict(int)
    totals: dict[tuple[str, str], str] = {}
    for row in truth:
        key = (row["mesa_id"], row["cargo_id"])
        if row["votos_tipo"] == "TOTAL":
            totals[key] = row["votos_cantidad"]
        else:
            sums[key] += int(row["votos_cantidad"] or 0)  # blank cells mean 0
    for (mesa, cargo), total in sums.items():
        h = header[mesa]
        assert total == int(h["sobres"])
        assert totals[(mesa, cargo)] in ("", h["sobres"])  # the total, if written
        assert int(h["diferencia"]) == abs(int(h["votantes"]) - int(h["sobres"]))


def test_results_differ_from_truth_exactly_in_the_listed_manual_errors(dataset: Path) -> None:
    key_columns = ("mesa_id", "cargo_id", "votos_tipo", "agrupacion_id", "lista_numero")
    _, truth = read_csv(dataset / "truth.csv")
    _, results = read_csv(dataset / "results.csv")
    _, errors = read_csv(dataset / "manual_errors.csv")
    true_values = {
        tuple(r[c] for c in key_columns): int(r["votos_cantidad"] or 0)
        for r in truth
        if r["votos_tipo"] != "TOTAL"
    }
    typed = {tuple(r[c] for c in key_columns): int(r["votos_cantidad"]) for r in results}
    assert typed.keys() == true_values.keys()
    differing = {k: (true_values[k], v) for k, v in typed.items() if v != true_values[k]}
    listed = {
        tuple(e[c] for c in key_columns): (int(e["votos_telegrama"]), int(e["votos_cargados"]))
        for e in errors
    }
    assert len(listed) == len(errors) > 0
    assert differing == listed


def test_same_seed_is_byte_identical_whatever_the_workers_and_another_seed_differs(
    capsys, tmp_path: Path
) -> None:
    common = ["--count", "4", "--quality", "typical", "--manual-error-rate", "0.1", "--no-progress"]
    assert run(capsys, "synth", tmp_path / "a", "--seed", "8", "--workers", "1", *common)[0] == 0
    assert run(capsys, "synth", tmp_path / "b", "--seed", "8", "--workers", "2", *common)[0] == 0
    assert run(capsys, "synth", tmp_path / "c", "--seed", "9", "--workers", "1", *common)[0] == 0
    a, b, c = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert a == b
    assert a["truth.csv"] != c["truth.csv"] and set(a) != set(c)
    transforms = json.loads((tmp_path / "a" / "truth_transforms.json").read_text())
    assert len(transforms["telegrams"]) == 4
    for entry in transforms["telegrams"].values():
        assert len(entry["homography"]) == 3 and (tmp_path / "a" / entry["file"]).is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "0"], "--count"),
        (["--count", "2", "--manual-error-rate", "1.5"], "--manual-error-rate"),
        (["--count", "2", "--form", "arg-1983-general"], "unknown form template"),
        (["--count", "2", "--digits", "/nonexistent/digits.npz"], "digits.npz"),
        (["--count", "2", "--seed", "-1"], "--seed"),
        (["--count", "2", "--workers", "0"], "--workers"),
    ],
)
def test_bad_arguments_get_one_clear_error_line(capsys, tmp_path: Path, args, message) -> None:
    status, _, err = run(capsys, "synth", tmp_path / "out", *args)
    assert status == 2
    assert err.startswith("escrutinio: error:") and message in err
    assert not (tmp_path / "out" / "results.csv").exists()


def test_an_output_directory_with_scans_is_refused(capsys, dataset: Path) -> None:
    status, _, err = run(capsys, "synth", dataset, "--count", "1", "--no-progress")
    assert status == 2 and "already holds scans" in err


def test_forms_list_and_show(capsys, tmp_path: Path) -> None:
    status, out, _ = run(capsys, "forms", "list")
    assert status == 0 and "arg-2019-paso-caba" in out and "arg-2023-general" in out
    image = tmp_path / "blank.png"
    status, out, _ = run(
        capsys, "forms", "show", "arg-2019-paso-caba", "--render", image, "--dpi", "60"
    )
    assert status == 0 and image.is_file()
    assert "135:A" in out and "JEFE DE GOBIERNO" in out and "NO USAR" in out
    assert "counts at most 400" in out
    status, _, err = run(capsys, "forms", "show", "nonexistent")
    assert status == 2 and "unknown form template" in err
