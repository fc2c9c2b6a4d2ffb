"""Benchmarks: each subpackage runs with `python -m benchmarks.<name>` (see BENCHMARKS.md)."""

from pathlib import Path

# the checkout the benchmarks run from (results, git state); the installed package knows no checkout
REPO_ROOT = Path(__file__).resolve().parents[1]
