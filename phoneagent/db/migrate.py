"""Apply Alembic migrations programmatically (`phoneagent db upgrade`, `phoneagent dev`, tests).

The migrations ship inside the package (``phoneagent/db/migrations``), so an installed wheel finds
them without a checkout; the repository's ``alembic.ini`` points the ``alembic`` command at the same
directory for developers.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from phoneagent.db.engine import make_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def schema_revisions(url: str) -> tuple[str | None, str]:
    """The database's Alembic revision (None: no schema yet) and the latest one the package ships."""
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic head in {MIGRATIONS}")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    return current, head
