"""A database error's text (which reaches logs) never carries the values of the statement: phone
numbers and transcripts stay out of the logs."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from phoneagent.db.engine import make_engine


def test_a_database_error_does_not_show_the_values(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n TEXT UNIQUE)"))
        conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": "+14155550123 my card is 4111"})
    with pytest.raises(IntegrityError) as err, engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": "+14155550123 my card is 4111"})
    assert "UNIQUE constraint failed" in str(err.value)
    assert "4155550123" not in str(err.value) and "4111" not in str(err.value)
    engine.dispose()
