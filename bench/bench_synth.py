"""Generation rate of ``escrutinio synth`` (telegrams per second).

Usage::

    .venv/bin/python bench/bench_synth.py [--count 200] [--seed 1] [--quality typical]
        [--format png] [--form arg-2019-paso-caba] [--workers 2]

Writes the dataset into a temporary directory (removed afterwards) exactly as
``escrutinio synth OUT --count N --seed S`` does, and prints the wall time, the rate, the
CPU time per telegram (parent + workers), the rate that CPU time allows on otherwise idle
cores, and the size of the scans.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.synth.writer import SynthConfig, write_dataset  # noqa: E402


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quality", default="typical")
    parser.add_argument("--format", dest="fmt", default="png")
    parser.add_argument("--form", default="arg-2019-paso-caba")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        config = SynthConfig(
            outdir=Path(tmp) / "out",
            count=args.count,
            form=args.form,
            seed=args.seed,
            quality=args.quality,
            fmt=args.fmt,
            workers=args.workers,
        )
        cpu_before, started = cpu_seconds(), time.perf_counter()
        summary = write_dataset(config, progress=False)
        wall = time.perf_counter() - started
        cpu = cpu_seconds() - cpu_before
        scans = list((config.outdir / "scans").iterdir())
        megabytes = sum(p.stat().st_size for p in scans) / 1e6
    print(
        f"synth {args.count} telegrams, form {args.form}, quality {args.quality}, "
        f"format {args.fmt}, {args.workers} workers"
    )
    print(f"wall time          {wall:.1f} s")
    print(f"generation rate    {summary.count / wall:.2f} telegrams/s")
    print(f"cpu per telegram   {cpu / summary.count * 1000:.0f} ms")
    print(f"scans              {megabytes:.0f} MB ({megabytes / summary.count:.2f} MB each)")
    print(f"10,000 telegrams   ~{10_000 / (summary.count / wall) / 60:.1f} min at this rate")
    # On a shared machine the wall time measures the neighbours; the CPU time does not.
    free_rate = args.workers / (cpu / summary.count)
    print(
        f"with {args.workers} free cores ~{free_rate:.1f} telegrams/s "
        f"({args.count / free_rate:.0f} s for {args.count}, "
        f"{10_000 / free_rate / 60:.0f} min for 10,000)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
