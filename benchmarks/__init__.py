"""Benchmarks: each subpackage runs with `python -m benchmarks.<name>` (see BENCHMARKS.md)."""
