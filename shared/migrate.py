"""Applies the alembic migrations in ../migrations to a database."""

from __future__ import annotations

from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def sqlalchemy_url(dsn: str) -> str:
    """asyncpg-style DSN -> the SQLAlchemy URL alembic needs (psycopg 3 driver)."""
    scheme, sep, rest = dsn.partition("://")
    if not sep or scheme not in ("postgres", "postgresql"):
        raise ValueError(f"not a postgresql:// URL: {dsn!r}")
    return f"postgresql+psycopg://{rest}"


def upgrade(dsn: str, revision: str = "head") -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # alembic's config is ConfigParser: a literal % must be doubled.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(dsn).replace("%", "%%"))
    command.upgrade(config, revision)
