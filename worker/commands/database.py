"""``escrutinio db``, ``escrutinio import-results`` and ``escrutinio services``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tqdm import tqdm

from db.importer import import_results
from db.migrate import downgrade, require_current_schema, upgrade
from db.session import get_engine
from pipeline.errors import BadInput
from worker.embedded import EmbeddedPostgres, EmbeddedRedis, broker_url, database_url, stop_all
from worker.settings import get_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    db = subparsers.add_parser("db", help="migrate the database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = db_commands.add_parser("upgrade", help="apply migrations (default: to head)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=run_upgrade)
    down = db_commands.add_parser("downgrade", help="revert migrations to REVISION ('base': all)")
    down.add_argument("revision")
    down.set_defaults(func=run_downgrade)

    imp = subparsers.add_parser(
        "import-results", help="import official results CSV files (the manual entries)"
    )
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE.csv")
    imp.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="import the valid rows and write the rejected ones to --rejects",
    )
    imp.add_argument("--rejects", type=Path, help="where rejected rows go (FILE.rejected.csv)")
    imp.add_argument("--json", action="store_true", help="print the counts as JSON")
    imp.set_defaults(func=run_import)

    services = subparsers.add_parser(
        "services", help="the embedded PostgreSQL and Redis (used when no URL is configured)"
    )
    actions = services.add_subparsers(dest="services_command", required=True, metavar="ACTION")
    actions.add_parser("start", help="start both and keep them running").set_defaults(
        func=run_services_start
    )
    actions.add_parser("stop", help="stop both").set_defaults(func=run_services_stop)
    actions.add_parser("status", help="show whether they run").set_defaults(
        func=run_services_status
    )


def run_upgrade(args: argparse.Namespace) -> int:
    settings = get_settings()
    with database_url(settings.database_url, settings.state_dir) as url:
        upgrade(url, args.revision)
    print(f"database at revision {args.revision}")
    return 0


def run_downgrade(args: argparse.Namespace) -> int:
    settings = get_settings()
    with database_url(settings.database_url, settings.state_dir) as url:
        downgrade(url, args.revision)
    print(f"database at revision {args.revision}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    for path in args.files:
        if not path.is_file():
            raise BadInput(f"{path}: no such file")
    settings = get_settings()
    started = time.perf_counter()
    with database_url(settings.database_url, settings.state_dir) as url:
        require_current_schema(url)
        with (
            get_engine(url).begin() as connection,
            tqdm(unit=" rows", unit_scale=True, desc="import", disable=args.json) as bar,
        ):
            stats = import_results(
                connection,
                args.files,
                skip_bad_rows=args.skip_bad_rows,
                rejects_path=args.rejects,
                progress=bar.update,
            )
    seconds = time.perf_counter() - started
    report = {
        "files": stats.files,
        "rows_read": stats.rows_read,
        "rows_rejected": stats.rows_rejected,
        "inserted": stats.inserted,
        "updated": stats.updated,
        "unchanged": stats.unchanged,
        "rejects_file": str(stats.rejects_file) if stats.rejects_file else None,
        "seconds": round(seconds, 3),
        "rows_per_second": round(stats.rows_read / seconds) if seconds else None,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"read {stats.rows_read} rows in {seconds:.1f} s ({report['rows_per_second']} rows/s): "
            f"{stats.inserted} inserted, {stats.updated} updated, {stats.unchanged} unchanged, "
            f"{stats.rows_rejected} rejected"
            + (f" (see {stats.rejects_file})" if stats.rejects_file else "")
        )
    return 0


def run_services_start(args: argparse.Namespace) -> int:
    settings = get_settings()
    with (
        database_url(settings.database_url, settings.state_dir, keep=True) as db,
        broker_url(settings.broker_url, settings.state_dir, keep=True) as broker,
    ):
        print(f"ESCRUTINIO_DATABASE_URL={db}")
        print(f"ESCRUTINIO_BROKER_URL={broker}")
    return 0


def run_services_stop(args: argparse.Namespace) -> int:
    stop_all(get_settings().state_dir)
    print("embedded services stopped")
    return 0


def run_services_status(args: argparse.Namespace) -> int:
    state_dir = get_settings().state_dir
    postgres, redis = EmbeddedPostgres(state_dir).pid(), EmbeddedRedis(state_dir).pid()
    print(f"postgres: {'running, pid ' + str(postgres) if postgres else 'stopped'}")
    print(f"redis: {'running, pid ' + str(redis) if redis else 'stopped'}")
    return 0
