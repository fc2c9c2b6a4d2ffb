"""Which database errors the API answers 503 (try again) and which stay 500 (an operator's problem)."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from phoneagent.api.app import database_unavailable

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused")), True),
        (OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked")), True),
        (OperationalError("SELECT 1", {}, sqlite3.OperationalError("unable to open database file")), True),
        (InterfaceError("SELECT 1", {}, Exception("connection already closed")), True),
        (OperationalError("SELECT 1", {}, sqlite3.OperationalError("no such table: calls")), False),
        (OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full")), False),
        (OperationalError("SELECT 1", {}, psycopg.errors.UndefinedTable("relation does not exist")), False),
    ],
)
def test_only_a_database_out_of_reach_is_worth_a_retry(error: DBAPIError, unavailable: bool) -> None:
    assert database_unavailable(error) is unavailable


def test_a_cut_connection_is_worth_a_retry_whatever_its_words() -> None:
    error = OperationalError("SELECT 1", {}, sqlite3.OperationalError("disk I/O error"))
    error.connection_invalidated = True
    assert database_unavailable(error)
