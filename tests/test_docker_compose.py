"""docker-compose.yml cannot run here (no Docker engine): check its shape and commands."""

from __future__ import annotations

from pathlib import Path

import yaml

from worker.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_services_users_need_are_defined_with_healthchecks():
    services = _compose()["services"]
    assert {"postgres", "redis", "migrate", "worker", "beat"} <= set(services)
    for name in ("postgres", "redis"):
        assert "healthcheck" in services[name], name


def test_workers_wait_for_the_one_shot_migration():
    services = _compose()["services"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for name in ("worker", "beat"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"


def test_every_service_command_is_a_real_escrutinio_subcommand():
    services = _compose()["services"]
    subcommands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, service in services.items():
        if service.get("image", "").startswith("escrutinio"):
            assert service["command"][0] in subcommands, (name, service["command"])


def test_escrutinio_services_point_at_the_compose_servers():
    services = _compose()["services"]
    environment = services["worker"]["environment"]
    assert "@postgres:5432/" in environment["ESCRUTINIO_DATABASE_URL"]
    assert environment["ESCRUTINIO_BROKER_URL"].startswith("redis://redis:6379")
