"""The call-log and review benchmarks still run against today's schema (a new column once broke the
seeder's column list): each on a small data set, its results file read back. Timing is the
benchmarks' business, not this test's: nothing here is timed."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests import REPO_ROOT


def _run(module: str, out: Path, *args: str) -> dict[str, Any]:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            module,
            "--rows",
            "3000",
            "--reps",
            "200",
            "--warmup",
            "1",
            "--out-dir",
            str(out),
            *args,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    (result,) = out.glob("*.json")
    doc: dict[str, Any] = json.loads(result.read_text())
    return doc


def test_the_call_log_benchmark_runs_every_case_on_sqlite_and_postgresql(tmp_path: Path) -> None:
    doc = _run("benchmarks.calllog", tmp_path, "--engines", "sqlite,postgresql", "--port", str(_free_port()))
    assert doc["rows"] == 3000
    for engine in ("sqlite", "postgresql"):
        queries = doc["engines"][engine]["queries"]
        assert len(queries) >= 10, engine
        for name, q in queries.items():
            assert q["reps"] == 200 and 0 < q["p50_ms"] <= q["p99_ms"], (engine, name)
        # the list's first page holds a page of rows: the seeded calls are there and readable
        assert queries["list_first_page"]["rows_returned_mean"] == 50, engine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_review_benchmark_renders_its_pages_from_a_seeded_database(tmp_path: Path) -> None:
    doc = _run("benchmarks.review", tmp_path)
    cases = doc["cases"]
    assert doc["rows"] == 3000 and "list_first_page" in cases and "detail" in cases
    for name, c in cases.items():
        assert c["reps"] == 200 and 0 < c["server"]["p50_ms"] <= c["server"]["p99_ms"], name
    # the list page showed a page of the signed-in tenant's calls
    assert cases["list_first_page"]["rows_shown_mean"] == 50
