"""Cell by cell: what one version of the code reads on a synthetic dataset, and what changed.

    .venv/bin/python bench/bench_cells.py dump --setting mnist-typical --seed 7 --count 100 \\
        --out before.jsonl [--model default] [--data DIR]
    .venv/bin/python bench/bench_cells.py compare before.jsonl after.jsonl

``dump`` writes the dataset ``bench_pipeline.py`` scores (the same ``make_dataset``, kept in
``--data``, by default /tmp/escrutinio-cells/SETTING-SEED-COUNT, so a second dump reads the
same files), reads it as ``escrutinio read`` does and writes one JSON line per value cell:
its key, the truth, the reading before the sum rule and after it, whether each is right and
whether the cell is accepted (``bench_pipeline._right`` / ``_accepted``), and the page's scan
parameters (dpi, mode). A page the pipeline refuses gives one line with its ``error``.

``compare`` prints both files' totals (wrong before / after the sum rule, accepted, wrong
accepted) and the cells whose reading after the sum rule changed: how many, by row kind
(TOTAL or other), right or wrong now, accepted or reviewed, and every cell the second file
accepts wrongly that the first did not. To compare two versions of the code, dump with each
(a ``git worktree`` of the other commit, its ``.venv`` a link to this one and, for a commit
older than this script or than ``bench_pipeline._accepted`` (22c0c5d), this file copied into
its ``bench/``) and compare. 100 telegrams take about 20 s to dump on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_pipeline import (  # noqa: E402
    FORM,
    SETTINGS,
    _accepted,
    _right,
    classifier,
    make_dataset,
    read_dataset,
)

from pipeline.forms import load_template  # noqa: E402
from pipeline.synth.writer import read_truth  # noqa: E402

SCAN_FIELDS = ("dpi", "mode", "jpeg_quality", "blur_sigma", "noise_sigma")
CHUNK = 16


def dump(setting: str, seed: int, count: int, model: str, data: Path, out: Path) -> None:
    if not (data / "truth.csv").exists():
        digits, quality = SETTINGS[setting]
        make_dataset(data, count, seed, digits, quality)
    template = load_template(FORM)
    clf = classifier(model)
    truth, _ = read_truth(data)
    scans = json.loads((data / "truth_transforms.json").read_text())["telegrams"]
    with out.open("w") as lines:
        for path, reading, detail in read_dataset(data, template, clf, CHUNK):
            page = {"page": path.stem, **{k: scans[path.stem]["scan"][k] for k in SCAN_FIELDS}}
            if reading.error:
                lines.write(json.dumps({**page, "error": reading.error}) + "\n")
                continue
            for cell in reading.cells:
                key = (cell.cargo_id, cell.votos_tipo, cell.agrupacion_id, cell.lista_numero)
                expected = truth[(path.stem, *key)]
                before = detail.before_rules[f"{cell.row_key}|{cell.cargo_id}"]
                before_flags = sorted(str(flag) for flag in before.flags)
                record = {
                    **page,
                    "error": None,
                    "key": key,
                    "truth": expected,
                    "before_text": before.text,
                    "before_value": before.value,
                    "before_confidence": round(float(before.confidence), 4),
                    "before_flags": before_flags,
                    "value": cell.value,
                    "confidence": round(cell.confidence, 4),
                    "flags": cell.flags,
                    "right_before": _right(before.value, set(before_flags), expected),
                    "right": _right(cell.value, cell.flags, expected),
                    "accepted": _accepted(cell.value, cell.flags),
                }
                lines.write(json.dumps(record) + "\n")


def load(path: Path) -> tuple[dict[tuple, dict], int]:
    """(cells by (page, key), pages refused) of a ``dump`` file."""
    cells, refused = {}, 0
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record["error"]:
            refused += 1
        else:
            cells[(record["page"], *record["key"])] = record
    return cells, refused


def totals(cells: dict[tuple, dict], refused: int) -> str:
    values = list(cells.values())
    wrong_before = sum(not c["right_before"] for c in values)
    wrong_after = sum(not c["right"] for c in values)
    accepted = [c for c in values if c["accepted"]]
    wrong_accepted = sum(not c["right"] for c in accepted)
    return (
        f"cells {len(values)}, pages refused {refused}; wrong before the sum rule "
        f"{wrong_before}, after {wrong_after}; accepted {len(accepted)}, "
        f"wrong accepted {wrong_accepted}"
    )


def compare(first: Path, second: Path) -> None:
    old, old_refused = load(first)
    new, new_refused = load(second)
    print(f"{first}: {totals(old, old_refused)}")
    print(f"{second}: {totals(new, new_refused)}")
    kinds: Counter = Counter()
    newly_wrong_accepted = []
    for key in old.keys() & new.keys():
        a, b = old[key], new[key]
        if (a["value"], a["flags"]) == (b["value"], b["flags"]):
            continue
        kinds[
            (
                "TOTAL" if b["key"][1] == "TOTAL" else "row",
                "right" if b["right"] else "wrong",
                "accepted" if b["accepted"] else "reviewed",
                "was right" if a["right"] else "was wrong",
            )
        ] += 1
        if b["accepted"] and not b["right"] and not (a["accepted"] and not a["right"]):
            newly_wrong_accepted.append(b)
    print(f"cells read differently after the sum rule: {sum(kinds.values())}")
    for kind, count in kinds.most_common():
        print(f"  {count:5d}  {' / '.join(kind)}")
    for cell in newly_wrong_accepted:
        print(
            f"newly accepted wrong: {cell['page']} {cell['key']} truth {cell['truth']}, "
            f"read {cell['value']} at {cell['confidence']} {cell['flags']}"
        )
    if old.keys() != new.keys():
        print(f"cells in one file only: {len(old.keys() ^ new.keys())} (pages refused differ)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dumping = commands.add_parser("dump", help="read a dataset, one JSON line per cell")
    dumping.add_argument("--setting", required=True, choices=sorted(SETTINGS))
    dumping.add_argument("--seed", type=int, default=7)
    dumping.add_argument("--count", type=int, default=100)
    dumping.add_argument("--model", default=os.environ.get("ESCRUTINIO_MODEL", "default"))
    dumping.add_argument("--data", type=Path, help="dataset folder (made if missing)")
    dumping.add_argument("--out", type=Path, required=True)
    comparing = commands.add_parser("compare", help="two dumps of one dataset")
    comparing.add_argument("first", type=Path)
    comparing.add_argument("second", type=Path)
    args = parser.parse_args()
    if args.command == "dump":
        data = args.data or Path(f"/tmp/escrutinio-cells/{args.setting}-{args.seed}-{args.count}")
        dump(args.setting, args.seed, args.count, args.model, data, args.out)
    else:
        compare(args.first, args.second)
    return 0


if __name__ == "__main__":
    sys.exit(main())
