"""`escrutinio demo` (what `make demo` runs), small: real synth, worker, database, report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from sqlalchemy import text

from db.session import get_engine
from tests.worker.conftest import PROJECT_ROOT, shipped_model

pytestmark = pytest.mark.slow


def test_demo_reads_every_telegram_reports_and_leaves_no_worker_behind(
    database_url: str, broker_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "ESCRUTINIO_DATABASE_URL": database_url,
        "ESCRUTINIO_BROKER_URL": broker_url,
        "ESCRUTINIO_STATE_DIR": str(tmp_path / "state"),
        "ESCRUTINIO_MODEL": shipped_model(),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    demo = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "demo", "--count", "3", "--workers", "1",
         "--seed", "4", "--outdir", str(tmp_path / "telegrams")],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    out, err = demo.communicate(timeout=600)
    assert demo.returncode == 0, err[-3000:]
    assert "scans: 3 done, 0 failed" in out
    assert "speed:" in out and "accuracy against the true counts:" in out
    assert "suspected data-entry errors:" in out and f'psql "{database_url}"' in out
    with get_engine(database_url).connect() as connection:
        read = connection.execute(
            text("SELECT count(*) FROM recognition WHERE is_current")
        ).scalar_one()
        verdicts = connection.execute(text("SELECT count(*) FROM cell_verdict")).scalar_one()
    assert read == 3 and verdicts > 0
    # Its worker was named demo-<pid of the demo>@host: none of its processes is left.
    name = f"demo-{demo.pid}@"
    leftovers = [
        process.pid
        for process in psutil.process_iter(["cmdline"])
        if any(name in part for part in process.info["cmdline"] or [])
    ]
    assert leftovers == []
