"""``escrutinio synth OUTDIR --count N``: synthetic filled-in, scanned telegrams + results."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.synth.degrade import QUALITIES
from pipeline.synth.writer import FORMATS, SynthConfig, write_dataset


def register(subparsers: argparse._SubParsersAction) -> None:
    synth = subparsers.add_parser(
        "synth",
        help="generate synthetic telegram scans with their true and typed results",
        description="Writes OUTDIR/scans/<mesa_code>.<ext>, results.csv (the manual entries), "
        "truth.csv, truth_header.csv, manual_errors.csv and truth_transforms.json.",
    )
    synth.add_argument("outdir", type=Path, metavar="OUTDIR")
    synth.add_argument("--count", type=int, required=True, help="number of telegrams")
    synth.add_argument("--form", default="arg-2019-paso-caba", help="template name or JSON file")
    synth.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    synth.add_argument(
        "--digits",
        metavar="FILE.npz",
        help="digit bank (Keras layout or x, y); default ../shared/data/mnist.npz test digits, "
        "else the bundled sample",
    )
    synth.add_argument("--quality", choices=QUALITIES, default="typical", help="scan preset")
    synth.add_argument(
        "--manual-error-rate",
        type=float,
        default=0.0,
        metavar="R",
        help="share of the counts mistyped in results.csv (0..1)",
    )
    synth.add_argument("--format", dest="fmt", choices=sorted(FORMATS), default="png")
    synth.add_argument("--workers", type=int, default=2, help="processes (2)")
    synth.add_argument("--no-progress", action="store_true", help="no progress bar")
    synth.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    config = SynthConfig(
        outdir=args.outdir,
        count=args.count,
        form=args.form,
        seed=args.seed,
        digits=args.digits,
        quality=args.quality,
        manual_error_rate=args.manual_error_rate,
        fmt=args.fmt,
        workers=args.workers,
    )
    summary = write_dataset(config, progress=not args.no_progress)
    print(
        f"{summary.count} telegrams in {summary.outdir} ({summary.seconds:.1f} s, "
        f"{summary.rate:.1f}/s), {summary.manual_errors} manual errors"
    )
    return 0
