"""Settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the service and the CLI need to know about their surroundings."""

    database_url: str | None = None
    meili_url: str | None = None
    meili_search_key: str | None = None
    meili_admin_key: str | None = None
    meili_timeout_s: float = 2.0
    data_dir: Path = Path(".data")
    seeds_dir: Path = PROJECT_ROOT / "seeds"
    host: str = "127.0.0.1"
    port: int = 8000
    pool_min_size: int = 1
    pool_max_size: int = 10
    log_level: str = "INFO"

    @property
    def pgdata(self) -> Path:
        """Where the embedded PostgreSQL keeps its files."""
        return self.data_dir / "pg"

    @property
    def taxonomy_path(self) -> Path:
        """The curated topic taxonomy."""
        return self.seeds_dir / "topics.toml"


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.startswith(tuple(f"{s}://" for s in schemes)):
        raise ConfigError(f"{name} must start with one of {', '.join(s + '://' for s in schemes)}")
    return raw


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from environment variables, failing fast with the variable's name."""
    env = os.environ if env is None else env
    log_level = env.get("PAPERS_LOG_LEVEL", "INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(
            f"PAPERS_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}"
        )
    pool_min = _int(env, "PAPERS_POOL_MIN_SIZE", 1, 0, 1000)
    pool_max = _int(env, "PAPERS_POOL_MAX_SIZE", 10, 1, 1000)
    if pool_min > pool_max:
        raise ConfigError("PAPERS_POOL_MIN_SIZE must not exceed PAPERS_POOL_MAX_SIZE")
    seeds = env.get("PAPERS_SEEDS_DIR")
    return Settings(
        database_url=_url(env, "DATABASE_URL", ("postgresql", "postgres")),
        meili_url=_url(env, "MEILI_URL", ("http", "https")),
        meili_search_key=env.get("MEILI_SEARCH_KEY") or None,
        meili_admin_key=env.get("MEILI_ADMIN_KEY") or None,
        meili_timeout_s=_float(env, "PAPERS_MEILI_TIMEOUT_S", 2.0),
        data_dir=Path(env.get("PAPERS_DATA_DIR") or ".data"),
        seeds_dir=Path(seeds) if seeds else PROJECT_ROOT / "seeds",
        host=env.get("PAPERS_HOST") or "127.0.0.1",
        port=_int(env, "PAPERS_PORT", 8000, 1, 65535),
        pool_min_size=pool_min,
        pool_max_size=pool_max,
        log_level=log_level,
    )
