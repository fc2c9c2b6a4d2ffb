"""Tiers by directory: tests/unit (fast, no processes), tests/integration (real stack, real DB),
tests/e2e (real SIP calls), tests/security (generated attacks on the real control plane). `pytest -m
unit` runs the fast tier alone."""

from __future__ import annotations

from pathlib import Path

import pytest

_TIERS = ("unit", "integration", "e2e", "security")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in _TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


pytest_plugins = ["tests.stack_fixtures", "tests.db_fixtures", "tests.review_fixtures"]
