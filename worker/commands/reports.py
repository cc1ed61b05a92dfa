"""``escrutinio reconcile``, ``escrutinio report`` and ``escrutinio review export|import``."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from db.migrate import require_current_schema
from db.reconcile import reconcile
from db.report import build_report, format_report
from db.review import cells_to_review, import_reviews
from db.session import get_engine
from pipeline.errors import BadInput
from worker.embedded import database_url
from worker.settings import get_settings

EXPORT_COLUMNS = (
    "cell", "value", "verdict", "mesa_code", "cargo_id", "votos_tipo", "agrupacion_id",
    "lista_numero", "manual_value", "reading_value", "reading_confidence", "reading_flags",
    "manual_column_sum", "reading_column_sum", "scan_path", "box", "crop",
)  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    rec = subparsers.add_parser(
        "reconcile", help="compare the readings with the typed results (changed mesas only)"
    )
    rec.add_argument("--full", action="store_true", help="every mesa, not only changed ones")
    rec.add_argument("--threshold", type=float, help="confidence below which a reading is unsure")
    rec.add_argument("--json", action="store_true", help="print the counts as JSON")
    rec.set_defaults(func=run_reconcile)

    rep = subparsers.add_parser(
        "report", help="accuracy against the typed results, verdicts, suspected typing errors"
    )
    rep.add_argument("--json", action="store_true", help="print one JSON object")
    rep.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained page")
    rep.add_argument("--threshold", type=float, help="confidence to accept a reading")
    rep.add_argument(
        "--least", type=int, default=20, help="least confident cells listed (with crops)"
    )
    rep.set_defaults(func=run_report)

    review = subparsers.add_parser("review", help="cells for a person: export, import verdicts")
    actions = review.add_subparsers(dest="review_command", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export", help="write DIR/review.csv and DIR/crops/ for the cells needing a person"
    )
    export.add_argument("outdir", type=Path, metavar="DIR")
    export.add_argument("--limit", type=int, help="at most N cells")
    export.add_argument(
        "--include-reviewed", action="store_true", help="also cells already reviewed"
    )
    export.set_defaults(func=run_review_export)
    imp = actions.add_parser(
        "import", help="store a person's values (CSV with columns cell, value)"
    )
    imp.add_argument("file", type=Path, metavar="FILE.csv")
    imp.add_argument("--reviewer", default="", help="who reviewed (stored with the values)")
    imp.set_defaults(func=run_review_import)


def _threshold(value: float | None) -> float:
    threshold = get_settings().confidence_threshold if value is None else value
    if not 0.0 < threshold < 1.0:
        raise BadInput(f"--threshold must be between 0 and 1 (exclusive), got {threshold}")
    return threshold


def run_reconcile(args: argparse.Namespace) -> int:
    threshold = _threshold(args.threshold)
    settings = get_settings()
    with database_url(settings.database_url, settings.state_dir) as url:
        require_current_schema(url)
        stats = reconcile(url, full=args.full, threshold=threshold)
    if args.json:
        print(json.dumps(stats.as_dict()))
    else:
        print(
            f"reconciled {stats.cells} cells of {stats.mesas} mesas in {stats.seconds:.1f} s: "
            f"{stats.inserted} new, {stats.updated} changed, {stats.deleted} removed, "
            f"{stats.unchanged} unchanged"
        )
    return 0


def _crops(cells: list[dict]) -> list[bytes | None]:
    from pipeline.crops import png_bytes, read_crop

    crops = []
    for cell in cells:
        image = read_crop(cell["scan_path"], cell["box"]) if cell.get("scan_path") else None
        crops.append(None if image is None else png_bytes(image))
    return crops


def run_report(args: argparse.Namespace) -> int:
    threshold = _threshold(args.threshold)
    if args.least < 0:
        raise BadInput(f"--least must be 0 or more, got {args.least}")
    if args.html is not None and not args.html.parent.is_dir():
        raise BadInput(f"--html {args.html}: directory {args.html.parent} does not exist")
    settings = get_settings()
    with database_url(settings.database_url, settings.state_dir) as url:
        require_current_schema(url)
        with get_engine(url).begin() as connection:
            report = build_report(connection, threshold=threshold, least_confident=args.least)
    if args.html is not None:
        from pipeline.report_html import render_html

        page = render_html(
            report,
            _crops(report["suspected_manual_errors"]),
            _crops(report["least_confident_cells"]),
        )
        args.html.write_text(page, encoding="utf-8")
    if args.json:
        print(json.dumps(report, default=str))
    else:
        print(format_report(report))
        if args.html is not None:
            print(f"\nwrote {args.html}")
    return 0


def run_review_export(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise BadInput(f"--limit must be at least 1, got {args.limit}")
    if args.outdir.exists() and not args.outdir.is_dir():
        raise BadInput(f"{args.outdir}: exists and is not a directory")
    settings = get_settings()
    with database_url(settings.database_url, settings.state_dir) as url:
        require_current_schema(url)
        with get_engine(url).connect() as connection:
            cells = cells_to_review(connection, args.limit, args.include_reviewed)
    crops_dir = args.outdir / "crops"
    crops_dir.mkdir(parents=True, exist_ok=True)
    with_crop = 0
    with (args.outdir / "review.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for index, (cell, crop) in enumerate(zip(cells, _crops(cells), strict=True), start=1):
            crop_path = ""
            if crop is not None:
                crop_path = f"crops/{index:06d}.png"
                (args.outdir / crop_path).write_bytes(crop)
                with_crop += 1
            writer.writerow(
                {
                    **cell,
                    "value": "",
                    "reading_flags": " ".join(cell["reading_flags"] or []),
                    "box": " ".join(str(v) for v in cell["box"] or []),
                    "crop": crop_path,
                }
            )
    print(
        f"wrote {len(cells)} cells needing a person to {args.outdir / 'review.csv'} "
        f"({with_crop} with a crop in {crops_dir}); fill in the value column and run "
        "`escrutinio review import`"
    )
    return 0


def run_review_import(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise BadInput(f"{args.file}: no such file")
    settings = get_settings()
    with database_url(settings.database_url, settings.state_dir) as url:
        require_current_schema(url)
        with get_engine(url).begin() as connection:
            result = import_reviews(connection, args.file, reviewer=args.reviewer)
    print(
        f"{args.file}: {result.stored} reviewed values stored "
        f"({result.skipped_empty} rows without a value skipped)"
    )
    return 0
