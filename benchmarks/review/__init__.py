"""Call log review at scale: the list page's server time with N calls (default 1,000,000) in SQLite.

Seeds with benchmarks.calllog's data set and seeder, signs in to the review pages as the large tenant,
and times GET /review/calls (first page, each filter, a transcript search, deep pages) and the call
page, server-side (the app's Server-Timing header), p50/p95/p99 over >= 100 requests per case.

    uv run --frozen --no-sync python -m benchmarks.review [--rows N] [--reps 200]

Results go to benchmarks/results/review-<UTC stamp>.json.
"""
