"""Runtime configuration, read from ``ESCRUTINIO_*`` environment variables and ``.env``.

Every value is validated when the process starts; a bad value stops the CLI with one
line naming the variable and the problem (see ``load_settings``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from pipeline.errors import BadInput

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(BadInput):
    """A configuration value is missing or invalid; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ESCRUTINIO_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Servers. Empty means "start the embedded PostgreSQL / Redis under state_dir".
    database_url: str = ""
    broker_url: str = ""
    result_backend: str = ""
    state_dir: Path = PROJECT_ROOT / ".state"

    # Scans: files outside these roots are refused by the worker. Empty = any path.
    # In the environment: paths separated by os.pathsep (":" on Linux).
    scan_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    chunk_size: int = Field(default=16, ge=1, le=1024)
    max_scan_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    max_scan_pixels: int = Field(default=60_000_000, ge=10_000)

    # Model and inference.
    model: str = "default"
    model_path: Path | None = None
    device: Literal["auto", "cpu", "gpu"] = "cpu"
    intra_op_threads: int = Field(default=0, ge=0)
    inter_op_threads: int = Field(default=0, ge=0)
    confidence_threshold: float = Field(default=0.9, gt=0.0, lt=1.0)

    # Worker reliability (seconds unless stated).
    task_soft_time_limit: int = Field(default=300, ge=1)
    task_time_limit: int = Field(default=360, ge=1)
    visibility_timeout: int = Field(default=900, ge=1)
    max_deliveries: int = Field(default=2, ge=1)
    #: Seconds between the periodic reconciliation runs ``escrutinio beat`` schedules.
    reconcile_interval: int = Field(default=30, ge=1)

    @field_validator("database_url")
    @classmethod
    def _database_is_postgres(cls, value: str) -> str:
        if value and not value.startswith(("postgresql://", "postgresql+psycopg2://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("broker_url", "result_backend")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return value

    @field_validator("scan_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            return [part for part in value.split(os.pathsep) if part]
        return value

    @model_validator(mode="after")
    def _limits_are_ordered(self) -> Settings:
        if self.task_soft_time_limit >= self.task_time_limit:
            raise ValueError(
                "ESCRUTINIO_TASK_SOFT_TIME_LIMIT must be below ESCRUTINIO_TASK_TIME_LIMIT"
            )
        if self.visibility_timeout <= self.task_time_limit:
            raise ValueError(
                "ESCRUTINIO_VISIBILITY_TIMEOUT must be longer than ESCRUTINIO_TASK_TIME_LIMIT, "
                "or Redis redelivers tasks that are still running"
            )
        return self


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings; raise ``SettingsError`` with a one-line message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except SourceError as exc:
        raise SettingsError(f"invalid configuration: {exc}") from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            name = f"ESCRUTINIO_{field.upper()}" if field else "settings"
            problems.append(f"{name}: {error['msg']}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, validated once."""
    return load_settings()
