"""End-to-end worker throughput: telegrams/s from `enqueue` to rows in PostgreSQL.

For each number of worker processes (default 1 and 2) a real `celery worker` is started and
left to load its model; then for each chunk size (default 1, 8, 16, 32) COUNT synthetic scans
are registered and enqueued, and the clock stops when every scan is done (its readings
committed) or failed. Reported per run: telegrams/s end to end, the reading-only rate
(first claim to last commit), and the worker's peak RSS (main process + pool, sampled).
Then a projection: how many 2-core machines like this one read 104,000 telegrams in 30
minutes, from the measured rate and, because this machine is shared, also from the CPU
seconds the worker spent per telegram (what idle cores would deliver); and how long
registering 100,000 scan files takes (hash + multi-row inserts).

    .venv/bin/python bench/bench_worker.py                      # embedded servers
    .venv/bin/python bench/bench_worker.py --count 32 --processes 2 --chunks 8

Scans: `escrutinio synth` telegrams of ``--form`` (default the national 2023 form, the form
of the 104,000; a few, seed 11), copied with a PNG text chunk so each file has its own
sha256 while the pixels stay those of a real synthetic telegram.
Servers: ESCRUTINIO_DATABASE_URL / ESCRUTINIO_BROKER_URL, else embedded ones under
/tmp/escrutinio-bench (stopped at the end).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import psutil
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from db.migrate import upgrade  # noqa: E402
from db.session import get_engine  # noqa: E402
from worker.celery_app import MODEL_LOADED_MESSAGE, make_app  # noqa: E402
from worker.embedded import broker_url, database_url  # noqa: E402
from worker.queueing import register_files, send_pending  # noqa: E402
from worker.settings import load_settings  # noqa: E402

# The national election's form: the 104,000 telegrams of the projection are of this form
# (44 value cells); --form arg-2019-paso-caba measures the heavier 2019 CABA primary form
# (90 cells, many lists), the benchmark's form until 2026-12-05.
DEFAULT_FORM = "arg-2023-general"
NATIONAL_TELEGRAMS = 104_000
WINDOW_SECONDS = 30 * 60


def distinct_copies(sources: list[Path], target: Path, count: int) -> list[Path]:
    """``count`` files with distinct bytes and the pixels of ``sources`` (PNG tEXt chunk)."""
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        source = sources[number % len(sources)]
        data = source.read_bytes()
        iend = data.rindex(b"IEND") - 4
        body = b"tEXt" + f"copy\x00{number}".encode()
        chunk = (len(body) - 4).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
        path = target / f"{source.stem}-{number:05d}.png"
        path.write_bytes(data[:iend] + chunk + data[iend:])
        paths.append(path)
    return paths


def synth(out: Path, count: int, form: str) -> list[Path]:
    if not (out / "scans").is_dir():
        subprocess.run(
            [sys.executable, "-m", "worker.cli", "synth", str(out), "--count", str(count),
             "--seed", "11", "--form", form, "--no-progress"],
            cwd=ROOT, check=True,
        )  # fmt: skip
    return sorted((out / "scans").glob("*.png"))


def start_worker(env: dict[str, str], processes: int, log: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "celery", "-A", "worker", "worker", "--queues", "read",
        "--concurrency", str(processes), "--hostname", f"bench-{processes}@%h",
        "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 600
    while b" ready." not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker did not start; see {log}")
        time.sleep(0.5)
    # Ready once every pool process has loaded the model.
    while log.read_bytes().count(MODEL_LOADED_MESSAGE.encode()) < processes:
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the pool did not load the model; see {log}")
        time.sleep(0.5)
    return process


def stop_worker(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def rss_bytes(pid: int) -> tuple[int, int]:
    """(main + pool RSS, largest pool process RSS) in bytes."""
    try:
        main = psutil.Process(pid)
        children = main.children()
        sizes = [child.memory_info().rss for child in children]
        return main.memory_info().rss + sum(sizes), max(sizes, default=0)
    except psutil.NoSuchProcess:
        return 0, 0


def worker_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the worker's main process and its pool so far."""
    total = 0.0
    try:
        main = psutil.Process(pid)
        for process in [main, *main.children()]:
            times = process.cpu_times()
            total += times.user + times.system
    except psutil.NoSuchProcess:
        pass
    return total


def run_once(
    db: str, broker: str, worker: subprocess.Popen, files: list[Path], chunk: int, form: str
):
    engine = get_engine(db)
    cpu_before = worker_cpu_seconds(worker.pid)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE scan, recognition, cell_reading CASCADE"))
    settings = load_settings(database_url=db, broker_url=broker)
    app = make_app(settings, broker)
    peak_total = peak_child = 0
    started = time.perf_counter()
    register_files(engine, files, form)
    send_pending(engine, app, broker, chunk)
    app.close()
    while True:
        total, child = rss_bytes(worker.pid)
        peak_total, peak_child = max(peak_total, total), max(peak_child, child)
        with engine.connect() as connection:
            left = connection.execute(
                text("SELECT count(*) FROM scan WHERE status NOT IN ('done', 'failed')")
            ).scalar_one()
        if left == 0:
            break
        if worker.poll() is not None:
            raise SystemExit("the worker died during the run")
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    cpu_seconds = worker_cpu_seconds(worker.pid) - cpu_before
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT count(*) FILTER (WHERE status = 'done') AS done, "
                "count(*) FILTER (WHERE status = 'failed') AS failed, "
                "extract(epoch FROM max(finished_at) - min(started_at)) AS reading, "
                "(SELECT count(*) FROM cell_reading) AS cells FROM scan"
            )
        ).one()
    return {
        "chunk": chunk,
        "telegrams": len(files),
        "done": row.done,
        "failed": row.failed,
        "cells": row.cells,
        "seconds": round(seconds, 2),
        "telegrams_per_second": round(len(files) / seconds, 3),
        "reading_only_per_second": round(len(files) / float(row.reading), 3)
        if row.reading
        else None,
        # CPU the worker spent per telegram: what an idle machine's cores would deliver,
        # whatever else ran on this (shared) machine meanwhile.
        "worker_cpu_seconds_per_telegram": round(cpu_seconds / len(files), 3),
        "peak_rss_mb": round(peak_total / 2**20),
        "peak_rss_per_process_mb": round(peak_child / 2**20),
    }


def registration_rate(db: str, work: Path, small_files: int, real_sources: list[Path], form: str):
    """(files/s registering small files, MB/s hashing real-size scans via register_files)."""
    engine = get_engine(db)
    folder = work / "register-small"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(small_files):
        path = folder / f"{number:06d}.png"
        path.write_bytes(os.urandom(4096))
        paths.append(path)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE scan RESTART IDENTITY CASCADE"))
    started = time.perf_counter()
    register_files(engine, paths, form)
    small_seconds = time.perf_counter() - started
    big = distinct_copies(real_sources, work / "register-real", 120)
    megabytes = sum(path.stat().st_size for path in big) / 2**20
    os.sync()
    started = time.perf_counter()
    register_files(engine, big, form)
    big_seconds = time.perf_counter() - started
    shutil.rmtree(folder)
    shutil.rmtree(work / "register-real")
    return small_files / small_seconds, megabytes / big_seconds, megabytes / len(big)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # 64-telegram runs lasted 4-8 s, the idle tail of the last chunks weighing in (14.0-15.5
    # telegrams/s at chunks of 8, against 14.4-15.2 with 256 on the same hour)
    parser.add_argument("--count", type=int, default=256, help="telegrams per run (256)")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    # 16 is ESCRUTINIO_CHUNK_SIZE's default
    parser.add_argument("--chunks", type=int, nargs="+", default=[1, 8, 16, 32])
    parser.add_argument(
        "--register-files", type=int, default=20_000, help="0: skip the registration figures"
    )
    parser.add_argument(
        "--form", default=DEFAULT_FORM, help=f"form of the telegrams ({DEFAULT_FORM})"
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/escrutinio-bench"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "ESCRUTINIO_MODEL" not in os.environ:  # "default" once it ships, else what ships
        from pipeline.model import available_models

        shipped = available_models()
        os.environ["ESCRUTINIO_MODEL"] = "default" if "default" in shipped else shipped[0]
    args.work.mkdir(parents=True, exist_ok=True)
    settings = load_settings()
    sources = synth(args.work / f"telegrams-{args.form}", 8, args.form)
    files = distinct_copies(sources, args.work / "scans", args.count)
    results: dict[str, object] = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"{round(psutil.virtual_memory().total / 2**30, 1)} GiB",
        "load_average_at_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "model": settings.model,
        "form": args.form,
        "runs": [],
    }
    with (
        database_url(settings.database_url, args.work / "state") as db,
        broker_url(settings.broker_url, args.work / "state") as broker,
    ):
        upgrade(db)
        env = {
            **os.environ,
            "ESCRUTINIO_DATABASE_URL": db,
            "ESCRUTINIO_BROKER_URL": broker,
            "ESCRUTINIO_SCAN_ROOTS": str(args.work),
        }
        for processes in args.processes:
            worker = start_worker(env, processes, args.work / f"worker-{processes}.log")
            try:
                for chunk in args.chunks:
                    figures = run_once(db, broker, worker, files, chunk, args.form)
                    run = {"processes": processes, **figures}
                    results["runs"].append(run)
                    print(json.dumps(run), flush=True)
            finally:
                stop_worker(worker)
        per_file = megabytes_per_second = scan_mb = 0.0
        if args.register_files > 0:
            per_file, megabytes_per_second, scan_mb = registration_rate(
                db, args.work, args.register_files, sources, args.form
            )
    best = {}
    for run in results["runs"]:
        best[run["processes"]] = max(best.get(run["processes"], 0), run["telegrams_per_second"])
    two_core_rate = best.get(2) or 2 * best.get(1, 0)
    cpu_per_telegram = min(run["worker_cpu_seconds_per_telegram"] for run in results["runs"])
    idle_two_core_rate = 2 / cpu_per_telegram if cpu_per_telegram else 0
    needed = NATIONAL_TELEGRAMS / WINDOW_SECONDS
    register_seconds = (
        100_000 / per_file + 100_000 * scan_mb / megabytes_per_second if per_file else 0.0
    )
    results["projection"] = {
        "needed_telegrams_per_second": round(needed, 1),
        "per_core_telegrams_per_second": round(two_core_rate / 2, 3),
        "two_core_machine_telegrams_per_second": round(two_core_rate, 3),
        "two_core_machines_for_104000_in_30_min": math.ceil(needed / two_core_rate)
        if two_core_rate
        else None,
        "worker_cpu_seconds_per_telegram": cpu_per_telegram,
        "idle_two_core_machine_telegrams_per_second": round(idle_two_core_rate, 2),
        "idle_two_core_machines_for_104000_in_30_min": math.ceil(needed / idle_two_core_rate)
        if idle_two_core_rate
        else None,
        "register_small_files_per_second": round(per_file),
        "register_hash_mb_per_second": round(megabytes_per_second, 1),
        "scan_file_mb": round(scan_mb, 2),
        "register_100000_scans_minutes": round(register_seconds / 60, 1),
    }
    print(json.dumps(results["projection"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
