"""Run alembic migrations programmatically (settings live under [tool.alembic])."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from service.config import PROJECT_ROOT

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


def alembic_config(database_url: str) -> Config:
    """An alembic Config bound to this project's migrations and the given database."""
    config = Config(toml_file=str(PROJECT_ROOT / "pyproject.toml"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database up to `revision`. Blocking: call it outside the event loop."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """Migrate the database down to `revision`. Blocking: call it outside the event loop."""
    command.downgrade(alembic_config(database_url), revision)
