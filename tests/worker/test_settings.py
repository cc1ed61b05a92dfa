"""Settings come from ESCRUTINIO_* variables or .env and are validated at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.settings import SettingsError, load_settings


def test_defaults_need_no_configuration(monkeypatch):
    monkeypatch.delenv("ESCRUTINIO_DATABASE_URL", raising=False)
    settings = load_settings()
    assert settings.database_url == ""  # empty = embedded server
    assert settings.chunk_size >= 1
    assert settings.visibility_timeout > settings.task_time_limit > settings.task_soft_time_limit


def test_environment_variables_are_read(monkeypatch):
    monkeypatch.setenv("ESCRUTINIO_DATABASE_URL", "postgresql://u@db:5432/x")
    monkeypatch.setenv("ESCRUTINIO_CHUNK_SIZE", "32")
    monkeypatch.setenv("ESCRUTINIO_SCAN_ROOTS", "/a:/b")
    settings = load_settings()
    assert settings.database_url == "postgresql://u@db:5432/x"
    assert settings.chunk_size == 32
    assert settings.scan_roots == [Path("/a"), Path("/b")]


def test_a_dotenv_file_in_the_working_directory_is_read(tmp_path):
    (tmp_path / ".env").write_text("ESCRUTINIO_DEVICE=gpu\nESCRUTINIO_CHUNK_SIZE=8\n")
    settings = load_settings()  # the suite runs each test inside its tmp_path
    assert (settings.device, settings.chunk_size) == ("gpu", 8)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("ESCRUTINIO_CHUNK_SIZE", "zero", "ESCRUTINIO_CHUNK_SIZE"),
        ("ESCRUTINIO_CHUNK_SIZE", "0", "ESCRUTINIO_CHUNK_SIZE"),
        ("ESCRUTINIO_DEVICE", "tpu", "ESCRUTINIO_DEVICE"),
        ("ESCRUTINIO_DATABASE_URL", "mysql://x", "ESCRUTINIO_DATABASE_URL"),
        ("ESCRUTINIO_BROKER_URL", "amqp://x", "ESCRUTINIO_BROKER_URL"),
        ("ESCRUTINIO_CONFIDENCE_THRESHOLD", "1.5", "ESCRUTINIO_CONFIDENCE_THRESHOLD"),
        ("ESCRUTINIO_VISIBILITY_TIMEOUT", "10", "ESCRUTINIO_VISIBILITY_TIMEOUT"),
    ],
)
def test_a_bad_value_is_refused_with_the_variable_named(monkeypatch, variable, value, named):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=named):
        load_settings()


def test_the_cli_reports_a_bad_setting_in_one_line(monkeypatch, capsys):
    from worker.cli import main

    monkeypatch.setenv("ESCRUTINIO_CHUNK_SIZE", "-4")
    assert main(["db", "upgrade"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert "ESCRUTINIO_CHUNK_SIZE" in error
