"""Migrations keep what is already stored: the SQLite search index rebuilt by 0003 finds old transcripts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from sqlalchemy import text

from phoneagent.calls.query import CallFilter, list_calls
from phoneagent.db.engine import make_engine, session_factory
from phoneagent.db.migrate import alembic_config, upgrade


def test_0003_rebuilds_the_sqlite_search_index_from_existing_transcripts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0002")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('ten_a', 'a', '2026-10-01')"))
        for i, (when, body) in enumerate(
            [("2026-11-01 10:00:00.000001", "please book a table"), ("2026-11-01 10:00:00.000001", "book it")]
        ):
            conn.execute(
                text(
                    "INSERT INTO calls (id, tenant_id, direction, status, from_number, to_number, created_at,"
                    " cost_telephony_microusd, cost_speech_microusd, cost_llm_microusd, metadata)"
                    " VALUES (:id, 'ten_a', 'inbound', 'ended', '', '', :at, 0, 0, 0, '{}')"
                ),
                {"id": f"call_{i}", "at": when},
            )
            conn.execute(
                text("INSERT INTO call_search (call_id, tenant_id, body) VALUES (:id, 'ten_a', :body)"),
                {"id": f"call_{i}", "body": body},
            )
    engine.dispose()

    upgrade(url)

    engine = make_engine(url)
    with session_factory(engine)() as session:
        rows, _ = list_calls(session, "ten_a", CallFilter(q="book"), limit=10, cursor=None)
        assert sorted(c.id for c in rows) == ["call_0", "call_1"]
        assert all(c.created_at == datetime(2026, 11, 1, 10, 0, 0, 1, tzinfo=UTC) for c in rows)
        rows, _ = list_calls(session, "ten_a", CallFilter(q="table"), limit=10, cursor=None)
        assert [c.id for c in rows] == ["call_0"]
        assert list_calls(session, "ten_b", CallFilter(q="book"), limit=10, cursor=None)[0] == []
    engine.dispose()


_OLD_TRUNKS = (
    "INSERT INTO inbound_trunks (id, tenant_id, name, provider, numbers, allowed_addresses, auth_username,"
    " auth_password, created_at, updated_at) VALUES ('itr_1', 'ten_a', 'old', 'generic', '[]', '[]', '', '',"
    " '2026-10-01', '2026-10-01')",
    "INSERT INTO outbound_trunks (id, tenant_id, name, provider, address, transport, numbers, auth_username,"
    " auth_password, max_concurrent_calls, created_at, updated_at) VALUES ('otr_1', 'ten_a', 'old',"
    " 'generic', 'sip.example.com', 'udp', '[]', '', '', 10, '2026-10-01', '2026-10-01')",
)


def test_0012_gives_every_existing_trunk_plain_rtp_and_goes_back_down(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0011")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('ten_a', 'a', '2026-10-01')"))
        for statement in _OLD_TRUNKS:
            conn.execute(text(statement))
    engine.dispose()

    upgrade(url)

    engine = make_engine(url)
    with engine.begin() as conn:
        modes = [
            *conn.execute(text("SELECT media_encryption FROM inbound_trunks")).scalars(),
            *conn.execute(text("SELECT media_encryption FROM outbound_trunks")).scalars(),
        ]
    engine.dispose()
    assert modes == ["disable", "disable"]
    command.downgrade(alembic_config(url), "0011")
    engine = make_engine(url)
    with engine.begin() as conn:
        columns = {row[1] for row in conn.execute(text("PRAGMA table_info(outbound_trunks)"))}
    engine.dispose()
    assert "media_encryption" not in columns and "address" in columns
