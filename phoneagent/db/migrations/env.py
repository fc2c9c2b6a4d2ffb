"""Alembic environment: the URL comes from phoneagent's settings (or the caller's config attribute)."""

from __future__ import annotations

from alembic import context

from phoneagent.config import get_settings
from phoneagent.db import models  # noqa: F401  (registers the tables)
from phoneagent.db.base import Base
from phoneagent.db.engine import database_url, make_engine

config = context.config
url = config.attributes.get("url") or database_url(get_settings())

engine = make_engine(url)
try:
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=True,
            # the full-text tables are made by hand (FTS5 / tsvector): autogenerate must not drop them
            include_name=lambda name, kind, _parent: (
                not (kind == "table" and str(name).startswith("call_search"))
            ),
        )
        with context.begin_transaction():
            context.run_migrations()
finally:
    engine.dispose()  # no idle connection left behind (a template database must have none)
