"""``escrutinio demo``: the whole system on synthetic telegrams, end to end, on this machine.

Migrates the database (embedded servers unless URLs are configured), generates N synthetic
telegrams with their typed results and a few injected typing errors, imports the typed
results, enqueues the scans, runs a Celery worker with W processes until every scan is
done or failed, reconciles, and reports speed and accuracy. The servers keep running
afterwards so the results can be queried (``escrutinio services stop`` stops them); the
worker is always stopped, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text
from tqdm import tqdm

from db import scans
from db.importer import import_results
from db.migrate import upgrade
from db.session import get_engine
from pipeline.errors import BadInput, EscrutinioError
from pipeline.model import resolve_model
from worker.embedded import broker_url, database_url
from worker.settings import PROJECT_ROOT, get_settings

DEMO_FORM = "arg-2019-paso-caba"
#: Share of the typed counts the synthetic typist gets wrong.
MANUAL_ERROR_RATE = 0.004


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo", help="run the whole system on synthetic telegrams and report speed and accuracy"
    )
    demo.add_argument("--count", type=int, default=200, help="telegrams (200)")
    demo.add_argument(
        "--workers", type=int, default=max(1, os.cpu_count() or 1), help="worker processes"
    )
    demo.add_argument("--seed", type=int, default=2019, help="seed of the synthetic telegrams")
    demo.add_argument(
        "--outdir", type=Path, help="where the telegrams go (default STATE_DIR/demo/...)"
    )
    demo.add_argument("--timeout", type=float, default=3600, help="give up after S seconds")
    demo.set_defaults(func=run_demo)


def _synthesize(outdir: Path, count: int, seed: int) -> None:
    """Generate the telegrams unless ``outdir`` already holds this dataset."""
    if (outdir / "results.csv").is_file() and len(list((outdir / "scans").glob("*"))) == count:
        print(f"reusing {count} synthetic telegrams in {outdir}")
        return
    from pipeline.synth.writer import SynthConfig, write_dataset

    summary = write_dataset(
        SynthConfig(
            outdir=outdir,
            count=count,
            form=DEMO_FORM,
            seed=seed,
            manual_error_rate=MANUAL_ERROR_RATE,
            workers=max(1, os.cpu_count() or 1),
        )
    )
    print(f"generated {summary.count} telegrams ({summary.manual_errors} typing errors injected)")


def start_worker(db: str, broker: str, processes: int, log: Path) -> subprocess.Popen:
    """A ``celery worker`` on both queues in its own process group, logging to ``log``."""
    env = {**os.environ, "ESCRUTINIO_DATABASE_URL": db, "ESCRUTINIO_BROKER_URL": broker}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    command = [
        sys.executable, "-m", "celery", "-A", "worker", "worker",
        "--queues", "read,reconcile", "--concurrency", str(processes),
        "--hostname", f"demo-{os.getpid()}@%h", "--loglevel", "INFO",
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_worker(process: subprocess.Popen) -> None:
    """Warm shutdown (SIGTERM to the group), then SIGKILL after 30 s."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    except ProcessLookupError:
        pass


def _wait_until_ready(
    worker: subprocess.Popen, log: Path, offset: int, processes: int, timeout: float
) -> None:
    """Until the worker is ready and each pool process has loaded the model."""
    from worker.celery_app import MODEL_LOADED_MESSAGE

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log, "rb") as stream:
            stream.seek(offset)
            text_so_far = stream.read()
        if b" ready." in text_so_far and (
            text_so_far.count(MODEL_LOADED_MESSAGE.encode()) >= processes
        ):
            return
        if worker.poll() is not None:
            raise EscrutinioError(f"the worker exited with {worker.returncode}; see {log}")
        time.sleep(0.5)
    raise EscrutinioError(f"the worker was not ready after {timeout:.0f} s; see {log}")


def _path_prefix(outdir: Path) -> str:
    """A LIKE pattern matching the registered paths of the scans under ``outdir``."""
    folder = str((outdir / "scans").resolve())
    return folder.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"


def _wait_for_scans(
    db: str, outdir: Path, total: int, worker: subprocess.Popen, log: Path, timeout: float
) -> None:
    engine = get_engine(db)
    deadline = time.monotonic() + timeout
    with tqdm(total=total, unit=" scans", desc="read") as bar:
        while True:
            with engine.connect() as connection:
                counts = dict(
                    connection.execute(
                        text(
                            "SELECT status, count(*) FROM scan WHERE path LIKE :prefix "
                            "GROUP BY status"
                        ),
                        {"prefix": _path_prefix(outdir)},
                    ).all()
                )
            finished = counts.get("done", 0) + counts.get("failed", 0)
            bar.n = finished
            bar.set_postfix(failed=counts.get("failed", 0), refresh=False)
            bar.refresh()
            if finished >= total:
                return
            if worker.poll() is not None:
                raise EscrutinioError(f"the worker exited with {worker.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise EscrutinioError(f"not finished after {timeout:.0f} s; see {log}")
            time.sleep(0.5)


def _injected_errors(outdir: Path) -> set[tuple]:
    with open(outdir / "manual_errors.csv", newline="", encoding="utf-8") as stream:
        return {
            (row["mesa_id"], int(row["cargo_id"]), row["votos_tipo"],
             int(row["agrupacion_id"]) if row["agrupacion_id"] else None,
             row["lista_numero"] if row["votos_tipo"] == "POSITIVO" else None)
            for row in csv.DictReader(stream)
        }  # fmt: skip


def demo_report(db: str, outdir: Path, seconds: float, since) -> dict[str, object]:
    """Speed, cells read, accuracy (vs the typed entries and vs the synthetic truth)."""
    settings = get_settings()
    from pipeline.synth.writer import read_truth

    # A blank cell counts (and is typed) as 0 votes.
    truth = {key: count or 0 for key, count in read_truth(outdir)[0].items()}
    scope = {"prefix": _path_prefix(outdir), "mesas": sorted({key[0] for key in truth})}
    with get_engine(db).connect() as connection:
        counts = dict(
            connection.execute(
                text("SELECT status, count(*) FROM scan WHERE path LIKE :prefix GROUP BY status"),
                scope,
            ).all()
        )
        cells = connection.execute(
            text(
                "SELECT r.mesa_code, c.cargo_id, c.votos_tipo, c.agrupacion_id, c.lista_numero, "
                "c.value, c.confidence, c.flags FROM cell_reading c "
                "JOIN recognition r ON r.id = c.recognition_id AND r.is_current "
                "JOIN scan s ON s.id = r.scan_id "
                "WHERE c.votos_tipo <> 'TOTAL' AND s.path LIKE :prefix"
            ),
            scope,
        ).all()
        read_now = connection.execute(
            text(
                "SELECT count(*) FROM scan WHERE path LIKE :prefix AND status = 'done' "
                "AND finished_at >= :since"
            ),
            {**scope, "since": since},
        ).scalar_one()
        verdicts = dict(
            connection.execute(
                text(
                    "SELECT verdict, count(*) FROM cell_verdict "
                    "WHERE mesa_code = ANY(:mesas) GROUP BY verdict"
                ),
                scope,
            ).all()
        )
        suspected = {
            tuple(row)
            for row in connection.execute(
                text(
                    "SELECT mesa_code, cargo_id, votos_tipo, agrupacion_id, lista_numero "
                    "FROM cell_verdict WHERE verdict = 'MANUAL_SUSPECT' "
                    "AND mesa_code = ANY(:mesas)"
                ),
                scope,
            )
        }
        manual = {
            tuple(row[:5]): row[5]
            for row in connection.execute(
                text(
                    "SELECT m.mesa_code, o.cargo_id, e.votos_tipo, p.agrupacion_id, "
                    "l.lista_numero, e.votos_cantidad FROM manual_entry e "
                    "JOIN mesa m ON m.id = e.mesa_id JOIN office o ON o.id = e.office_id "
                    "LEFT JOIN party_list l ON l.id = e.list_id "
                    "LEFT JOIN party p ON p.id = l.party_id WHERE m.mesa_code = ANY(:mesas)"
                ),
                scope,
            )
        }
    injected = _injected_errors(outdir)
    keyed = [(tuple(row[:5]), row.value, row.confidence, row.flags) for row in cells]
    vs_truth = [value == truth[key] for key, value, _, _ in keyed if key in truth]
    vs_manual = [value == manual[key] for key, value, _, _ in keyed if key in manual]
    flagged = sum(
        1
        for _, value, confidence, flags in keyed
        if value is None or confidence < settings.confidence_threshold or flags
    )
    return {
        "scans": counts,
        "seconds": round(seconds, 1),
        "read_in_this_run": read_now,
        "scans_per_second": round(read_now / seconds, 2) if read_now and seconds else None,
        "cells_read": len(keyed),
        "accuracy_vs_truth": round(sum(vs_truth) / len(vs_truth), 4) if vs_truth else None,
        "agreement_with_manual_entries": round(sum(vs_manual) / len(vs_manual), 4)
        if vs_manual
        else None,
        "flagged_cells": flagged,
        "verdicts": verdicts,
        "suspected_entry_errors": len(suspected),
        "injected_entry_errors": len(injected),
        "injected_errors_caught": len(injected & suspected),
    }


def _print_report(report: dict[str, object], db: str) -> None:
    scans = report["scans"]
    print()
    print(f"scans: {scans.get('done', 0)} done, {scans.get('failed', 0)} failed")
    if report["read_in_this_run"]:
        print(
            f"speed: {report['scans_per_second']} scans/s ({report['read_in_this_run']} read in "
            f"{report['seconds']} s from enqueue to the last reading, worker already running)"
        )
    else:
        print("speed: no scan needed reading in this run (all read by an earlier one)")
    print(f"cells read: {report['cells_read']} (column totals not counted)")
    print(f"accuracy against the true counts: {report['accuracy_vs_truth']}")
    print(f"agreement with the typed entries: {report['agreement_with_manual_entries']}")
    print(f"flagged cells (low confidence, unread or review flags): {report['flagged_cells']}")
    if report["verdicts"]:
        print("verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(report["verdicts"].items())))
    print(
        f"suspected data-entry errors: {report['suspected_entry_errors']} "
        f"({report['injected_errors_caught']} of the {report['injected_entry_errors']} "
        "injected ones)"
    )
    print()
    print("query the results:")
    print(f'  psql "{db}"')
    print("    SELECT verdict, count(*) FROM cell_verdict GROUP BY verdict;")
    print("    SELECT * FROM v_suspected_entry_errors LIMIT 10;")
    print("    SELECT * FROM v_low_confidence_cells ORDER BY confidence LIMIT 10;")
    print("    SELECT * FROM v_accuracy_by_office;")
    print("stop the embedded servers with: escrutinio services stop")


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def run_demo(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise BadInput(f"--count must be at least 1, got {args.count}")
    if args.workers < 1:
        raise BadInput(f"--workers must be at least 1, got {args.workers}")
    from worker.celery_app import make_app
    from worker.queueing import register_files, send_pending

    # `kill` (SIGTERM) unwinds like Ctrl-C, so the worker is stopped on the way out.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    settings = get_settings()
    resolve_model(str(settings.model_path or settings.model))  # a missing model stops us here
    outdir = args.outdir or settings.state_dir / "demo" / f"seed{args.seed}-n{args.count}"
    with (
        database_url(settings.database_url, settings.state_dir, keep=True) as db,
        broker_url(settings.broker_url, settings.state_dir, keep=True) as broker,
    ):
        upgrade(db)
        print(f"database migrated: {db}")
        _synthesize(outdir, args.count, args.seed)
        engine = get_engine(db)
        with engine.begin() as connection:
            stats = import_results(connection, [outdir / "results.csv"])
        print(f"typed results imported: {stats.rows_read} rows")
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        log = settings.state_dir / "demo-worker.log"
        offset = log.stat().st_size if log.exists() else 0
        worker = start_worker(db, broker, args.workers, log)
        try:
            _wait_until_ready(worker, log, offset, args.workers, timeout=600)
            print(f"worker ready ({args.workers} processes, log {log})")
            started = time.monotonic()
            with engine.connect() as connection:
                since = connection.execute(text("SELECT now()")).scalar_one()
            files = sorted((outdir / "scans").iterdir())
            if register_files(engine, files, DEMO_FORM) == 0:
                print("these scans were registered by an earlier run: failed ones are retried")
            with engine.begin() as connection:
                scans.reset_for_retry(connection)
            # Several chunks per process keep every process busy to the end.
            chunk = max(1, min(settings.chunk_size, math.ceil(len(files) / (4 * args.workers))))
            app = make_app(settings, broker)
            try:
                send_pending(engine, app, broker, chunk)
            finally:
                app.close()
            with engine.connect() as connection:
                total = connection.execute(
                    text("SELECT count(*) FROM scan WHERE path LIKE :prefix"),
                    {"prefix": _path_prefix(outdir)},
                ).scalar_one()
            _wait_for_scans(db, outdir, total, worker, log, args.timeout)
            seconds = time.monotonic() - started
        finally:
            stop_worker(worker)
        try:
            from db.reconcile import reconcile
        except ImportError:
            print("no reconciliation module: skipping the comparison with the typed entries")
        else:
            result = reconcile(db, full=True, threshold=settings.confidence_threshold)
            print(f"reconciled {result.cells} cells of {result.mesas} mesas")
        report = demo_report(db, outdir, seconds, since)
        _print_report(report, db)
    return 0
