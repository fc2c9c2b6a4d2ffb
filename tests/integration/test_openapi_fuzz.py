"""Schemathesis against the app's own OpenAPI spec, with the real LiveKit behind it: for thousands of
generated requests (valid and invalid), no 5xx, no undocumented status, no response off its schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.generation.case import Case
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from phoneagent.api.app import create_app
from phoneagent.stack.services import Stack
from tests.db_fixtures import api_settings, new_key, remove_phoneagent_objects

EXAMPLES_PER_OPERATION = 100  # 30 operations, 2 modes: about 4,300 requests (many stop early)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_app(
    stack: Stack, sqlite_template: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FastAPI]:
    import shutil

    path = tmp_path_factory.mktemp("fuzz") / "phoneagent.db"
    shutil.copy(str(sqlite_template), path)
    app = create_app(api_settings(stack, f"sqlite:///{path}"))
    yield app
    app.state.engine.dispose()
    remove_phoneagent_objects(stack)


@pytest.fixture(scope="module")
def auth(fuzz_app: FastAPI) -> dict[str, str]:
    with TestClient(fuzz_app) as c:
        return new_key(c, "fuzz")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_error_and_every_response_matches_the_spec(
    fuzz_app: FastAPI, auth: dict[str, str], mode: GenerationMode
) -> None:
    # driven by hand rather than by schemathesis' pytest plugin, which does not load under pytest 9
    api_schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    failures: list[str] = []
    ran = requests = 0
    for result in api_schema.get_all_operations():
        if isinstance(result, Err):
            raise AssertionError(f"an operation in the API's schema cannot be read: {result.err()}")
        op = result.ok()

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Case[Any]) -> None:
            nonlocal requests
            requests += 1
            case.call_and_validate(headers=auth, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            # an operation with no constrained input (e.g. GET /health, a free-form path id) has no
            # negative case at all; it is covered by the positive run
            assert mode is GenerationMode.NEGATIVE, f"{op.method.upper()} {op.path}: no positive case"
        except Exception as exc:  # noqa: BLE001 - collected and reported below, with the operation
            failures.append(f"{op.method.upper()} {op.path}: {exc}")
        ran += 1
    assert ran >= 17
    print(f"{mode}: {requests} requests over {ran} operations")
    assert requests >= 1000  # thousands of cases in all, not a token few
    assert not failures, "\n\n".join(failures)
