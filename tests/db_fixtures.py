"""Databases for the tests: every DB test runs on SQLite and on PostgreSQL (a throwaway cluster).

Migrations run once per engine into a template; each test gets a fresh copy (a file copy on SQLite,
CREATE DATABASE ... TEMPLATE on PostgreSQL).
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from starlette.datastructures import State

from phoneagent.api.app import create_app
from phoneagent.config import Settings
from phoneagent.db.engine import make_engine, session_factory
from phoneagent.db.migrate import upgrade
from phoneagent.provisioning.keys import create_key
from phoneagent.stack.services import Stack
from phoneagent.telephony.sip import LiveKitSip
from tests.peers.postgres import TempPostgres
from tests.stack_fixtures import PORT_OFFSET

PG_PORT = 25433 + PORT_OFFSET
_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[TempPostgres]:
    pg = TempPostgres(PG_PORT).start()
    upgrade(pg.create_database("phoneagent_template"))
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "phoneagent.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    pg: TempPostgres = request.getfixturevalue("postgres")
    return pg.create_database(f"t{next(_counter)}", template="phoneagent_template")


@pytest.fixture
def db(db_url: str) -> Iterator[Session]:
    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        yield session
    engine.dispose()


def api_settings(stack: Stack, db_url: str) -> Settings:
    # no background work (dialer, sweeper, webhooks) unless a test asks for it: seeded rows stay put
    return stack.settings.model_copy(update={"database_url": db_url, "background": False})


@contextmanager
def client_with(stack: Stack, db_url: str, **settings: Any) -> Iterator[TestClient]:
    """The control plane (TestClient) with these settings changed from the suite's."""
    app = create_app(api_settings(stack, db_url).model_copy(update=settings))
    with TestClient(app) as c:
        yield c
    app.state.engine.dispose()
    remove_phoneagent_objects(stack)


@pytest.fixture
def client(stack: Stack, db_url: str) -> Iterator[TestClient]:
    with client_with(stack, db_url) as c:
        yield c


def agent_and_trunk(
    client: TestClient, h: dict[str, str], address: str = "127.0.0.1:5999"
) -> tuple[str, str]:
    """An agent profile and an outbound trunk (to a number that answers nothing) of the key's tenant."""
    agent = client.post("/agents", headers=h, json={"name": "caller"})
    out = {"name": "out", "address": address, "numbers": ["+14155550100"]}
    trunk = client.post("/trunks/outbound", headers=h, json=out)
    assert agent.status_code == 201 and trunk.status_code == 201, (agent.text, trunk.text)
    return agent.json()["id"], trunk.json()["id"]


def remove_phoneagent_objects(stack: Stack) -> None:
    """LiveKit outlives each test's database: remove what the test's API made (tagged as ours)."""
    lk = LiveKitSip(stack.settings)
    objs = lk.list_all()
    for obj in sorted(objs, key=lambda o: o.kind != "rule"):  # rules before the trunks they name
        if obj.owner is not None:
            (lk.delete_rule if obj.kind == "rule" else lk.delete_trunk)(obj.id)


def app_state(client: TestClient) -> State:
    """The app's state (its engine and session factory) behind a test client."""
    return cast(FastAPI, client.app).state


def new_key(client: TestClient, tenant: str) -> dict[str, str]:
    with app_state(client).sessions() as session:
        token, _ = create_key(session, tenant_name=tenant)
    return {"Authorization": f"Bearer {token}"}
