"""Apply Alembic migrations programmatically (`phoneagent db upgrade`, `phoneagent dev`, tests).

The migrations ship inside the package (``phoneagent/db/migrations``), so an installed wheel finds
them without a checkout; the repository's ``alembic.ini`` points the ``alembic`` command at the same
directory for developers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

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


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # the database's Alembic revision; None: no schema yet
    head: str  # the latest this package ships
    ahead: bool  # the database is at a revision this package does not know: a newer version migrated it

    @property
    def usable(self) -> bool:
        """This version can run on it: the latest schema, or a newer one (a rollback, or an old
        replica restarted during an upgrade: migrations only add what older versions ignore)."""
        return self.current == self.head or self.ahead


def schema_state(url: str) -> SchemaState:
    """Where the database's schema stands against the migrations this package ships."""
    scripts = ScriptDirectory.from_config(alembic_config(url))
    head = scripts.get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic head in {MIGRATIONS}")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    try:
        ahead = current is not None and scripts.get_revision(current) is None
    except CommandError:  # Alembic's "Can't locate revision"
        ahead = True
    return SchemaState(current=current, head=head, ahead=ahead)
