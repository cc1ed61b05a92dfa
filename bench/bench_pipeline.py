"""Telegram reading end to end: accuracy on synthetic telegrams and the real sample, and speed.

Usage::

    .venv/bin/python bench/bench_pipeline.py [--count 300] [--seed 1]
        [--settings mnist-typical,usps-typical,mnist-hard] [--real] [--speed 96]
        [--model default] [--chunk 16] [--json]

For each setting, ``--count`` synthetic ``arg-2023-general`` telegrams are written with
``escrutinio synth``'s own ``write_dataset`` (fixed seed, PNG scans, the digit bank of the
setting) into a temporary directory, then read from the files exactly as ``escrutinio read``
does (``load_scan`` + ``read_telegrams`` in chunks of ``--chunk``), and compared with
``truth.csv`` / ``truth_header.csv``:

- cells exact before the sum rule and after it (a blank cell counts as read right when it
  reads EMPTY);
- accepted: cells read as a number or as blank with no review flag
  (``pipeline.decode.REVIEW_FLAGS``; until 2026-12-05 a TOTAL read blank was left out),
  their share of all cells and how many of them are right;
- header values exact; pages that failed (and why).

``--real`` reads ../shared/data/telegrams/2019-paso-caba-0101406691X.jpeg with its form and
compares with its .results.csv (every column totals 257; header 257 / 257 / 0).
``--speed N`` times ``read`` (image file in, TelegramReading out) on N typical telegrams with 1
process and with 2 processes (each its own model, 1 TF thread), and prints where the time
goes (cProfile of the 1-process run, by pipeline stage). N must be a multiple of 2 x
``--chunk`` so that both processes get the same number of full chunks.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import json
import multiprocessing
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.decode import REVIEW_FLAGS  # noqa: E402
from pipeline.forms import load_template  # noqa: E402
from pipeline.read import load_scan, read_telegrams  # noqa: E402
from pipeline.synth.writer import SynthConfig, read_truth, write_dataset  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FORM = "arg-2023-general"
SETTINGS = {
    "mnist-typical": (SHARED / "mnist.npz", "typical"),
    "usps-typical": (SHARED / "usps.npz", "typical"),
    "mnist-hard": (SHARED / "mnist.npz", "hard"),
    "mnist-clean": (SHARED / "mnist.npz", "clean"),
}
REVIEW = {str(flag) for flag in REVIEW_FLAGS}
LIMIT = 10**9


def classifier(model: str):
    from pipeline.model import get_classifier

    return get_classifier(model, device="cpu", intra_op_threads=1, inter_op_threads=1)


def make_dataset(directory: Path, count: int, seed: int, digits: Path, quality: str) -> Path:
    config = SynthConfig(
        outdir=directory,
        count=count,
        form=FORM,
        seed=seed,
        digits=str(digits),
        quality=quality,
        fmt="png",
        workers=2,
    )
    write_dataset(config, progress=False)
    return directory


def _right(value, flags, truth) -> bool:
    return value == truth or (truth is None and "EMPTY" in flags and value in (0, None))


def _accepted(value, flags) -> bool:
    """Taken without review: no review flag, and a number or a blank (a TOTAL left blank reads
    value None with EMPTY, ``pipeline.read.assemble_reading``; ILLEGIBLE is a review flag)."""
    return not (set(flags) & REVIEW) and (value is not None or "EMPTY" in flags)


def error_kind(text: str | None, truth: int | None) -> str:
    """What went wrong in a cell read as the digit string ``text`` ("" EMPTY, None ILLEGIBLE)
    where ``truth`` is written (None: blank): too few digits (touching or overlapping digits
    read as one, a digit lost, a written number read EMPTY), too many (a digit cut in two, a
    mark or a neighbour's ink read as a digit), one or more digits misread in a number of the
    right length, or no value at all (ILLEGIBLE)."""
    if text is None:
        return "no value"
    read, written = text, "" if truth is None else str(truth)
    if len(read) < len(written):
        return "too few digits"
    if len(read) > len(written):
        return "too many digits"
    wrong = sum(a != b for a, b in zip(read, written, strict=True))
    return "one digit misread" if wrong == 1 else "several digits misread"


def read_dataset(directory: Path, template, clf, chunk: int):
    """(scan path, TelegramReading, PageDetails) of every scan of a synthetic dataset, read
    from the files in chunks as ``escrutinio read`` does (mesa ids from the file names)."""
    scans = sorted((directory / "scans").glob("*.png"))
    for start in range(0, len(scans), chunk):
        paths = scans[start : start + chunk]
        images = [load_scan(p, LIMIT, LIMIT) for p in paths]
        details: list = []
        readings = read_telegrams(
            images, template, clf, [str(p) for p in paths], [p.stem for p in paths], details
        )
        yield from zip(paths, readings, details, strict=True)


def score_dataset(directory: Path, model: str, chunk: int) -> dict:
    template = load_template(FORM)
    clf = classifier(model)
    truth_cells, truth_header = read_truth(directory)
    counts: Counter = Counter()
    errors: Counter = Counter()
    kinds: Counter = Counter()  # of the cells read wrong before the sum rule
    started = time.perf_counter()
    for path, reading, detail in read_dataset(directory, template, clf, chunk):
        counts["pages"] += 1
        if reading.error:
            errors[reading.error.split(":")[0] + ": " + reading.error.split(":", 1)[1][:70]] += 1
            counts["cells"] += len(template.value_cells())
            continue
        for cell in reading.cells:
            key = (
                path.stem,
                cell.cargo_id,
                cell.votos_tipo,
                cell.agrupacion_id,
                cell.lista_numero,
            )
            truth = truth_cells[key]
            before = detail.before_rules[f"{cell.row_key}|{cell.cargo_id}"]
            counts["cells"] += 1
            right_before = _right(before.value, {str(f) for f in before.flags}, truth)
            counts["exact_before"] += right_before
            if not right_before:
                kinds[error_kind(before.text, truth)] += 1
            right = _right(cell.value, cell.flags, truth)
            counts["exact_after"] += right
            accepted = _accepted(cell.value, cell.flags)
            counts["accepted"] += accepted
            counts["accepted_right"] += accepted and right
            counts["corrected"] += "CORRECTED_BY_SUM" in cell.flags
            counts["corrected_right"] += "CORRECTED_BY_SUM" in cell.flags and right
        header_truth = truth_header[path.stem]
        for name, value in reading.header.items():
            counts["header"] += 1
            counts["header_exact"] += value.value == header_truth[name]
            ok = _accepted(value.value, value.flags)
            counts["header_accepted"] += ok
            counts["header_accepted_right"] += ok and value.value == header_truth[name]
    seconds = time.perf_counter() - started
    cells = max(1, counts["cells"])
    return {
        "pages": counts["pages"],
        "failed_pages": sum(errors.values()),
        "failures": dict(errors),
        "cells": counts["cells"],
        "exact_before_sum_rule": counts["exact_before"] / cells,
        "exact_after_sum_rule": counts["exact_after"] / cells,
        "accepted_share": counts["accepted"] / cells,
        "accepted_correct": counts["accepted_right"] / max(1, counts["accepted"]),
        "errors_before_sum_rule": dict(kinds.most_common()),
        "corrected_by_sum": counts["corrected"],
        "corrections_right": counts["corrected_right"],
        "header_exact": counts["header_exact"] / max(1, counts["header"]),
        "header_accepted_correct": counts["header_accepted_right"]
        / max(1, counts["header_accepted"]),
        "seconds": seconds,
        "telegrams_per_second_1_process": counts["pages"] / seconds,
    }


def score_real(model: str) -> dict:
    base = SHARED / "telegrams" / "2019-paso-caba-0101406691X"
    template = load_template("arg-2019-paso-caba")
    reading = read_telegrams(
        [load_scan(base.with_suffix(".jpeg"), LIMIT, LIMIT)], template, classifier(model)
    )[0]
    if reading.error:
        return {"error": reading.error}
    truth = {}
    with base.with_suffix(".results.csv").open(encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            positive = row["votos_tipo"] == "POSITIVO"
            key = (
                int(row["cargo_id"]),
                row["votos_tipo"],
                int(row["agrupacion_id"]) if positive else None,
                row["lista_numero"] if positive else None,
            )
            truth[key] = int(row["votos_cantidad"])
    exact = flagged_wrong = wrong_accepted = 0
    wrong = []
    for cell in reading.cells:
        expected = (
            257
            if cell.votos_tipo == "TOTAL"
            else truth[(cell.cargo_id, cell.votos_tipo, cell.agrupacion_id, cell.lista_numero)]
        )
        flagged = not _accepted(cell.value, cell.flags)
        if cell.value == expected:
            exact += 1
        elif flagged:
            flagged_wrong += 1
        else:
            wrong_accepted += 1
            wrong.append((cell.row_key, cell.cargo_id, expected, cell.value))
    header = {}
    for name, expected in {"votantes": 257, "sobres": 257, "diferencia": 0}.items():
        value = reading.header[name]
        header[name] = {"read": value.value, "flags": value.flags, "right": value.value == expected}
    return {
        "fit_score": reading.fit_score,
        "cells": len(reading.cells),
        "exact": exact,
        "wrong_but_flagged": flagged_wrong,
        "wrong_accepted": wrong_accepted,
        "wrong_accepted_cells": wrong,
        "accepted": sum(1 for c in reading.cells if _accepted(c.value, c.flags)),
        "header": header,
    }


# --------------------------------------------------------------------------- speed

_WORKER: dict = {}


def _init(model: str) -> None:
    import cv2

    cv2.setNumThreads(1)
    _WORKER["template"] = load_template(FORM)
    _WORKER["classifier"] = classifier(model)


def _warm(_: int) -> int:
    time.sleep(1.0)  # so that each worker takes one warm-up task
    return os.getpid()


def _read_chunk(paths: list[str]) -> int:
    images = [load_scan(Path(p), LIMIT, LIMIT) for p in paths]
    readings = read_telegrams(images, _WORKER["template"], _WORKER["classifier"], paths)
    return sum(1 for r in readings if r.error is None)


STAGES = (
    "load_scan",
    "register_scan",
    "cut_fields",
    "segment_fields",
    "classify_digits",
    "reframe_digit",
    "predict_proba",
    "choose_splits",
    "decode_fields",
    "apply_rules",
    "assemble_reading",
)


def speed(directory: Path, model: str, chunk: int) -> dict:
    scans = [str(p) for p in sorted((directory / "scans").glob("*.png"))]
    chunks = [scans[i : i + chunk] for i in range(0, len(scans), chunk)]
    _init(model)
    _read_chunk(chunks[0][:2])  # warm up (traces the inference graphs)
    started = time.perf_counter()
    for paths in chunks:
        _read_chunk(paths)
    one = len(scans) / (time.perf_counter() - started)
    profile = cProfile.Profile()
    profile.enable()
    for paths in chunks:
        _read_chunk(paths)
    profile.disable()
    stats = pstats.Stats(profile)
    total = sum(v[3] for k, v in stats.stats.items() if k[2] == "_read_chunk")
    stages = {}
    for (_, _, name), value in stats.stats.items():
        if name in STAGES:
            stages[name] = stages.get(name, 0.0) + value[3]
    # spawn: a forked child of a process running TensorFlow would hang in its thread pools
    context = multiprocessing.get_context("spawn")
    with context.Pool(2, initializer=_init, initargs=(model,)) as pool:
        pool.map(_warm, range(2), chunksize=1)
        pool.map(_read_chunk, [c[:2] for c in chunks[:2]], chunksize=1)
        started = time.perf_counter()
        pool.map(_read_chunk, chunks, chunksize=1)
        two = len(scans) / (time.perf_counter() - started)
    return {
        "telegrams": len(scans),
        "chunk": chunk,
        "telegrams_per_second_1_process": one,
        "telegrams_per_second_2_processes": two,
        "profile_seconds_per_telegram": {
            k: v / len(scans) for k, v in sorted(stages.items(), key=lambda kv: -kv[1])
        },
        "profile_total_seconds_per_telegram": total / len(scans),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--settings", default="mnist-typical,usps-typical,mnist-hard")
    parser.add_argument("--real", action="store_true")
    parser.add_argument("--speed", type=int, default=0, metavar="N")
    parser.add_argument("--model", default=os.environ.get("ESCRUTINIO_MODEL", "default"))
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.chunk < 1:
        parser.error("--chunk must be at least 1")
    if args.speed % (2 * args.chunk):
        # Two processes finish together only on an even number of full chunks: 3 chunks of
        # 16 kept one process idle for a third of the run (9 telegrams/s where 12 was true).
        parser.error(f"--speed must be a multiple of 2 x --chunk ({2 * args.chunk})")
    results: dict = {"model": args.model, "count": args.count, "seed": args.seed}
    names = [s for s in args.settings.split(",") if s]
    for name in names:
        if name not in SETTINGS:
            parser.error(f"unknown setting {name!r} (known: {', '.join(SETTINGS)})")
    for name in names:
        digits, quality = SETTINGS[name]
        with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
            started = time.perf_counter()
            make_dataset(Path(tmp) / "data", args.count, args.seed, digits, quality)
            generated = time.perf_counter() - started
            result = score_dataset(Path(tmp) / "data", args.model, args.chunk)
            result["generation_seconds"] = generated
        results[name] = result
        print(f"{name}: {json.dumps(result)}", file=sys.stderr, flush=True)
    if args.real:
        results["real-2019-sample"] = score_real(args.model)
    if args.speed:
        with tempfile.TemporaryDirectory(prefix="bench_pipeline_speed_") as tmp:
            make_dataset(
                Path(tmp) / "data",
                args.speed,
                args.seed + 1000,
                SETTINGS["mnist-typical"][0],
                "typical",
            )
            results["speed"] = speed(Path(tmp) / "data", args.model, args.chunk)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print(report(results))
    return 0


def report(results: dict) -> str:
    lines = [
        f"model {results['model']}, {results['count']} telegrams per setting, "
        f"seed {results['seed']}"
    ]
    for name, r in results.items():
        if not isinstance(r, dict) or "exact_after_sum_rule" not in r:
            continue
        lines.append(
            f"{name:>14}: exact {r['exact_before_sum_rule']:.4f} before / "
            f"{r['exact_after_sum_rule']:.4f} after the sum rule; accepted "
            f"{r['accepted_share']:.4f} of cells, {r['accepted_correct']:.4f} correct; header "
            f"exact {r['header_exact']:.4f}; corrections {r['corrections_right']}/"
            f"{r['corrected_by_sum']} right; failed pages {r['failed_pages']}/{r['pages']} "
            f"{r['failures'] or ''}; {r['telegrams_per_second_1_process']:.2f} telegrams/s "
            "(1 process)"
        )
        kinds = r.get("errors_before_sum_rule") or {}
        lines.append(
            f"{'':>14}  cells wrong before the sum rule: "
            + (", ".join(f"{k} {v}" for k, v in kinds.items()) or "none")
        )
    real = results.get("real-2019-sample")
    if real:
        lines.append(f"real 2019 sample: {json.dumps(real)}")
    if "speed" in results:
        s = results["speed"]
        lines.append(
            f"speed ({s['telegrams']} typical telegrams, chunks of {s['chunk']}): "
            f"{s['telegrams_per_second_1_process']:.2f} telegrams/s with 1 process, "
            f"{s['telegrams_per_second_2_processes']:.2f} with 2"
        )
        lines.append(
            "profile (s per telegram, cumulative, nested stages overlap): "
            + ", ".join(f"{k} {v:.4f}" for k, v in s["profile_seconds_per_telegram"].items())
            + f"; total {s['profile_total_seconds_per_telegram']:.4f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
