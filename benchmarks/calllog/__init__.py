"""Call log at scale: seed N calls (default 1,000,000) with transcripts into SQLite and a throwaway
PostgreSQL, then time the project's own `list_calls` / `call_detail` under every filter.

Run from the repository root:

    uv run --frozen --no-sync python -m benchmarks.calllog [--rows N] [--engines sqlite,postgresql]

Results go to benchmarks/results/calllog-<UTC stamp>.json (+ .svg chart, + .md table).
"""
