"""`escrutinio db upgrade` and `escrutinio import-results` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SAMPLE_TELEGRAM

SAMPLE_CSV = SAMPLE_TELEGRAM.with_suffix(".results.csv")


def escrutinio(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )


def test_upgrade_then_import_twice_against_a_configured_server(empty_database_url):
    env = {"ESCRUTINIO_DATABASE_URL": empty_database_url}
    assert escrutinio("db", "upgrade", env=env).returncode == 0

    first = escrutinio("import-results", str(SAMPLE_CSV), "--json", env=env)
    second = escrutinio("import-results", str(SAMPLE_CSV), "--json", env=env)

    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["inserted"] == 84
    assert json.loads(second.stdout)["unchanged"] == 84
    assert json.loads(second.stdout)["inserted"] == 0


def test_the_embedded_default_needs_no_configuration(tmp_path: Path):
    env = {
        "ESCRUTINIO_DATABASE_URL": "",
        "ESCRUTINIO_STATE_DIR": str(tmp_path / "state"),
    }
    try:
        assert escrutinio("db", "upgrade", env=env).returncode == 0
        result = escrutinio("import-results", str(SAMPLE_CSV), "--json", env=env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["inserted"] == 84
    finally:
        escrutinio("services", "stop", env=env)


def test_importing_before_migrating_says_what_to_do(empty_database_url):
    result = escrutinio(
        "import-results", str(SAMPLE_CSV), env={"ESCRUTINIO_DATABASE_URL": empty_database_url}
    )
    assert result.returncode == 2
    assert "run `escrutinio db upgrade`" in result.stderr


def test_a_bad_file_exits_2_with_one_line_naming_file_and_line(database_url, tmp_path):
    bad = tmp_path / "bad.csv"
    lines = SAMPLE_CSV.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",doce"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = escrutinio("import-results", str(bad), env={"ESCRUTINIO_DATABASE_URL": database_url})

    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert error_lines == [
        f"escrutinio: error: {bad}:4: column votos_cantidad: 'doce' is not an integer"
    ]


def test_a_missing_file_is_named(database_url):
    result = escrutinio(
        "import-results", "/nonexistent.csv", env={"ESCRUTINIO_DATABASE_URL": database_url}
    )
    assert result.returncode == 2
    assert "/nonexistent.csv: no such file" in result.stderr
