"""Settings, read once from the environment at start-up."""

from __future__ import annotations

import ipaddress
import os
import re
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
    cors_origins: tuple[str, ...] = ()
    cursor_secret: str | None = None
    cursor_ttl_s: int = 86_400
    # Limits and rate limiting (README "Reliability"; service/api/limits.py, ratelimit.py).
    statement_timeout_ms: int = 10_000
    pool_timeout_s: float = 5.0
    max_in_flight: int = 100
    rate_limit_enabled: bool = True
    rate_limit_burst: int = 200
    rate_limit_per_s: float = 50.0
    rate_limit_quota: int = 100_000
    rate_limit_window_s: int = 3600
    trusted_proxies: tuple[str, ...] = ()
    # `papers serve` (README "Running"): the HTTP server and its worker processes.
    server: str = "granian"
    workers: int = 1
    cache_hits: int = 5000
    # On SIGTERM, in-flight requests get this long to finish before the workers are stopped.
    shutdown_grace_s: int = 25

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


_ORIGIN = re.compile(r"^https?://[^/?#\s]+$")


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated browser origins (`scheme://host[:port]`), or `*` for any."""
    origins = tuple(o.strip().rstrip("/") for o in env.get(name, "").split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not _ORIGIN.match(origin):
            raise ConfigError(
                f"{name} must list origins like https://example.org (or *), got {origin!r}"
            )
    return origins


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """A signing secret: unset, or at least 32 characters (long enough for HMAC-SHA256)."""
    raw = env.get(name, "")
    if not raw:
        return None
    if len(raw) < 32:
        raise ConfigError(f"{name} must be at least 32 characters long, got {len(raw)}")
    return raw


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated IP addresses or CIDR networks, each normalised (`10.0.0.0/8`)."""
    networks = []
    for item in (i.strip() for i in env.get(name, "").split(",")):
        if not item:
            continue
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ConfigError(
                f"{name} must list IP addresses or networks like 10.0.0.0/8, got {item!r}"
            ) from None
    return tuple(networks)


def _cpu_count() -> int:
    """CPUs this process may run on (a container's cpuset, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
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
        cors_origins=_origins(env, "PAPERS_CORS_ORIGINS"),
        cursor_secret=_secret(env, "PAPERS_CURSOR_SECRET"),
        cursor_ttl_s=_int(env, "PAPERS_CURSOR_TTL_S", 86_400, 60, 30 * 86_400),
        statement_timeout_ms=_int(env, "PAPERS_STATEMENT_TIMEOUT_MS", 10_000, 100, 3_600_000),
        pool_timeout_s=_float(env, "PAPERS_POOL_TIMEOUT_S", 5.0),
        max_in_flight=_int(env, "PAPERS_MAX_IN_FLIGHT", 100, 1, 100_000),
        rate_limit_enabled=_bool(env, "PAPERS_RATE_LIMIT_ENABLED", True),
        rate_limit_burst=_int(env, "PAPERS_RATE_LIMIT_BURST", 200, 1, 1_000_000),
        rate_limit_per_s=_float(env, "PAPERS_RATE_LIMIT_PER_S", 50.0),
        rate_limit_quota=_int(env, "PAPERS_RATE_LIMIT_QUOTA", 100_000, 1, 1_000_000_000),
        rate_limit_window_s=_int(env, "PAPERS_RATE_LIMIT_WINDOW_S", 3600, 1, 31 * 86_400),
        trusted_proxies=_networks(env, "PAPERS_TRUSTED_PROXIES"),
        server=_choice(env, "PAPERS_SERVER", "granian", ("granian", "uvicorn")),
        workers=_int(env, "PAPERS_WORKERS", _cpu_count(), 1, 1024),
        cache_hits=_int(env, "PAPERS_CACHE_HITS", 5000, 0, 1_000_000),
        shutdown_grace_s=_int(env, "PAPERS_SHUTDOWN_GRACE_S", 25, 1, 1800),
    )
