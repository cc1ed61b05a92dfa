"""``escrutinio enqueue``, ``worker``, ``status`` and ``retry-failed``."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from tqdm import tqdm

from db import scans
from db.migrate import require_current_schema
from db.session import get_engine
from pipeline.errors import BadInput
from worker.embedded import broker_url, database_url
from worker.settings import get_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    enqueue = subparsers.add_parser(
        "enqueue",
        help="register scan files (by sha256) and queue them for the workers; re-run to resume",
    )
    enqueue.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders")
    enqueue.add_argument("--form", required=True, help="form template of these scans")
    enqueue.add_argument(
        "--chunk", type=int, help="scans per message (default ESCRUTINIO_CHUNK_SIZE)"
    )
    enqueue.add_argument("--json", action="store_true", help="print the counts as JSON")
    enqueue.set_defaults(func=run_enqueue)

    worker = subparsers.add_parser(
        "worker",
        help="start a Celery worker on the read and reconcile queues",
        description="Start a Celery worker (`celery -A worker worker` with these defaults). "
        "Any other `celery worker` option goes after `--`.",
    )
    worker.add_argument(
        "-c", "--concurrency", type=int, default=default_concurrency(),
        help="pool processes (default: one per CPU core, %(default)s here)",
    )  # fmt: skip
    worker.add_argument("-Q", "--queues", default="read,reconcile", help="(%(default)s)")
    worker.add_argument("-l", "--loglevel", default="INFO", help="(%(default)s)")
    worker.add_argument("-n", "--hostname", help="node name (celery's default)")
    worker.add_argument("-P", "--pool", default="prefork", help="(%(default)s)")
    for flag in ("--without-gossip", "--without-mingle", "--without-heartbeat"):
        worker.add_argument(flag, action="store_true", help="as in celery worker")
    worker.add_argument("celery_args", nargs="*", metavar="-- CELERY_OPTION")
    worker.set_defaults(func=run_worker)

    beat = subparsers.add_parser(
        "beat",
        help="schedule the periodic reconciliation (run exactly one beat per deployment)",
        description="Start Celery beat. Other `celery beat` options go after `--`.",
    )
    beat.add_argument(
        "-s", "--schedule", help="schedule state file (default STATE_DIR/celerybeat-schedule)"
    )
    beat.add_argument("-l", "--loglevel", default="INFO", help="(%(default)s)")
    beat.add_argument("celery_args", nargs="*", metavar="-- CELERY_OPTION")
    beat.set_defaults(func=run_beat)

    status = subparsers.add_parser("status", help="scans by status, rate, queue, failures")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=run_status)

    retry = subparsers.add_parser(
        "retry-failed", help="queue failed (and stalled) scans again, with their attempts reset"
    )
    retry.add_argument("--chunk", type=int, help="scans per message")
    retry.set_defaults(func=run_retry_failed)


def _chunk_size(value: int | None) -> int:
    size = get_settings().chunk_size if value is None else value
    if not 1 <= size <= 1024:
        raise BadInput(f"--chunk must be between 1 and 1024, got {size}")
    return size


def run_enqueue(args: argparse.Namespace) -> int:
    from pipeline.forms import load_template
    from worker.celery_app import make_app
    from worker.queueing import register_files, send_pending

    settings = get_settings()
    chunk = _chunk_size(args.chunk)
    load_template(args.form)  # an unknown form is refused before any file is hashed
    try:
        files = scans.find_scan_files(args.paths)
    except FileNotFoundError as exc:
        raise BadInput(str(exc)) from None
    started = time.perf_counter()
    with (
        database_url(settings.database_url, settings.state_dir, keep=True) as db,
        broker_url(settings.broker_url, settings.state_dir, keep=True) as broker,
    ):
        require_current_schema(db)
        engine = get_engine(db)
        with tqdm(total=len(files), unit=" files", desc="register", disable=args.json) as bar:
            registered = register_files(engine, files, args.form, progress=bar.update)
        app = make_app(settings, broker)
        with tqdm(unit=" scans", desc="enqueue", disable=args.json) as bar:
            queued, messages, in_flight = send_pending(
                engine, app, broker, chunk, progress=bar.update
            )
    report = {
        "files": len(files),
        "registered": registered,
        "already_registered": len(files) - registered,
        "queued": queued,
        "messages": messages,
        "left_in_flight": in_flight,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{len(files)} files: {registered} newly registered, "
            f"{report['already_registered']} already known; queued {queued} scans in "
            f"{messages} messages of up to {chunk} ({report['seconds']} s)"
        )
        if in_flight:
            print(
                f"{in_flight} scans are queued with messages still in the broker; "
                "run enqueue again once the queue is empty if they do not finish"
            )
    return 0


def default_concurrency() -> int:
    """One worker process per CPU core (each runs TensorFlow with one intra-op thread)."""
    return max(1, os.cpu_count() or 1)


def run_worker(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.concurrency < 1:
        raise BadInput(f"--concurrency must be at least 1, got {args.concurrency}")
    argv = [
        "worker", "--queues", args.queues, "--loglevel", args.loglevel,
        "--concurrency", str(args.concurrency), "--pool", args.pool,
    ]  # fmt: skip
    if args.hostname:
        argv += ["--hostname", args.hostname]
    for flag in ("without_gossip", "without_mingle", "without_heartbeat"):
        if getattr(args, flag):
            argv.append("--" + flag.replace("_", "-"))
    argv += [arg for arg in args.celery_args if arg != "--"]
    with (
        database_url(settings.database_url, settings.state_dir, keep=True) as db,
        broker_url(settings.broker_url, settings.state_dir, keep=True) as broker,
    ):
        require_current_schema(db)  # a worker on an unmigrated database only fails tasks
        # Pool processes read these (and a restarted process after a crash too).
        os.environ["ESCRUTINIO_DATABASE_URL"] = db
        os.environ["ESCRUTINIO_BROKER_URL"] = broker
        get_settings.cache_clear()
        from worker.celery_app import app, celery_config

        app.conf.update(celery_config(get_settings(), broker))
        app.worker_main(argv)
    return 0


def run_beat(args: argparse.Namespace) -> int:
    settings = get_settings()
    extra = ["--loglevel", args.loglevel]
    if args.schedule:
        extra += ["--schedule", args.schedule]
    extra += [arg for arg in args.celery_args if arg != "--"]
    with broker_url(settings.broker_url, settings.state_dir, keep=True) as broker:
        os.environ["ESCRUTINIO_BROKER_URL"] = broker
        get_settings.cache_clear()
        from worker.celery_app import app, celery_config

        settings = get_settings()
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        app.conf.update(celery_config(settings, broker))
        app.start(["beat", *extra])
    return 0


def collect_status(db: str, broker: str | None) -> dict[str, object]:
    """The numbers ``escrutinio status`` prints (also used by ``demo``)."""
    from worker.queueing import broker_backlog

    with get_engine(db).connect() as connection:
        state = scans.queue_status(connection)
    waiting, unacked = broker_backlog(broker) if broker else (None, None)
    return {
        "scans": {
            name: state.scans.get(name, 0)
            for name in ("registered", "queued", "processing", "done", "failed")
        },
        "stalled": state.stalled,
        "queue_depth": waiting,
        "unacknowledged": unacked,
        "done_last_minute": state.done_last_minute,
        "rate_per_second": state.rate_per_second,
        "failures": [{"reason": reason, "count": count} for reason, count in state.failures],
    }


def run_status(args: argparse.Namespace) -> int:
    settings = get_settings()
    with (
        database_url(settings.database_url, settings.state_dir, keep=True) as db,
        broker_url(settings.broker_url, settings.state_dir, keep=True) as broker,
    ):
        require_current_schema(db)
        report = collect_status(db, broker)
    if args.json:
        print(json.dumps(report))
        return 0
    counts = report["scans"]
    print("scans: " + ", ".join(f"{name} {count}" for name, count in counts.items()))
    if report["stalled"]:
        print(f"stalled (processing, no live worker): {report['stalled']} - see retry-failed")
    print(
        f"queue: {report['queue_depth']} messages waiting, "
        f"{report['unacknowledged']} being processed"
    )
    print(
        f"rate: {report['rate_per_second']} scans/s over the last minute "
        f"({report['done_last_minute']} done)"
    )
    if report["failures"]:
        print("failures:")
        for failure in report["failures"]:
            print(f"  {failure['count']:>6}  {failure['reason']}")
    return 0


def run_retry_failed(args: argparse.Namespace) -> int:
    from worker.celery_app import make_app
    from worker.queueing import send_pending

    settings = get_settings()
    chunk = _chunk_size(args.chunk)
    with (
        database_url(settings.database_url, settings.state_dir, keep=True) as db,
        broker_url(settings.broker_url, settings.state_dir, keep=True) as broker,
    ):
        require_current_schema(db)
        engine = get_engine(db)
        with engine.begin() as connection:
            reset = scans.reset_for_retry(connection)
        queued, messages, _ = send_pending(engine, make_app(settings, broker), broker, chunk)
    print(f"{reset} failed or stalled scans reset; queued {queued} scans in {messages} messages")
    return 0
