"""How the database's failures are read: the one place outside ``phoneagent.db``'s engine that knows
SQLAlchemy's exception types for the background loops."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError


def transient(exc: BaseException) -> bool:
    """The database is down, locked or dropped the connection: the same work may succeed later."""
    return isinstance(exc, OperationalError)
