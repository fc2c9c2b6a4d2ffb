#!/usr/bin/env bash
# The whole test suite on a fresh machine: install what is missing, lint, then every tier
# (unit, integration against the real stack, e2e with real SIP calls); lint = ruff check, ruff format --check, mypy --strict. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
uv run --frozen --no-sync ruff check phoneagent tests benchmarks
uv run --frozen --no-sync ruff format --check phoneagent tests benchmarks
uv run --frozen --no-sync mypy phoneagent tests benchmarks
mkdir -p artifacts
exec uv run --frozen --no-sync pytest -p no:cacheprovider --junitxml=artifacts/junit.xml "$@"
