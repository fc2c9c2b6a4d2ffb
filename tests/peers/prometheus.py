"""Prometheus for the monitoring tests: promtool and the server built from their Go module (cached by
pinned version, like the stack's binaries), the Grafana dashboard's queries, and a server run on
loopback with a throwaway configuration and storage, stopped afterwards."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from phoneagent.config import Settings
from phoneagent.stack import install
from phoneagent.stack.paths import StackPaths
from phoneagent.stack.versions import PROMETHEUS, PROMTOOL
from tests.peers.processes import LoggedProcess, assert_all_gone

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "rules_test.yml"
SCRAPE_EXAMPLE = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "phoneagent.json"
# Grafana's own range variable: any window makes a panel's query checkable and runnable
GRAFANA_VARIABLES = {"$__rate_interval": "1m"}
# the series families the dashboard and the alerts are built on
SERIES_NAME = re.compile(r"\b(?:phoneagent|lk_agents|livekit)_[a-z_]+\b")


def _paths() -> StackPaths:
    return StackPaths.from_settings(Settings())  # cached like the stack's binaries, by version


def promtool() -> Path:
    return install.ensure_go_binary(PROMTOOL, _paths())


def prometheus() -> Path:
    return install.ensure_go_binary(PROMETHEUS, _paths())


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool()), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref: str
    expr: str


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row holds its panels


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_queries(board: dict[str, Any]) -> list[PanelQuery]:
    """Every query of every panel, Grafana's variables filled in."""
    found = []
    for panel in _panels(board["panels"]):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            found.append(PanelQuery(panel["title"], target["refId"], expr))
    return found


def queries_as_rules(queries: list[PanelQuery]) -> str:
    """The queries as a recording-rules file, so that `promtool check rules` parses each one."""
    rules = [{"record": f"dashboard:query_{i}", "expr": q.expr} for i, q in enumerate(queries)]
    return yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, sort_keys=False)


def series_names(text: str) -> set[str]:
    return set(SERIES_NAME.findall(text))


class TempPrometheus:
    """A Prometheus server on loopback scraping ``jobs`` (job name -> targets) every ``interval``,
    evaluating ``rule_files``, its storage in ``workdir``."""

    def __init__(
        self,
        workdir: Path,
        port: int,
        jobs: dict[str, list[str]],
        *,
        rule_files: list[Path],
        interval: str = "1s",
        host: str = "127.0.0.1",
    ) -> None:
        self.binary = prometheus()
        self.workdir, self.port, self.host = workdir, port, host
        self.url = f"http://{host}:{port}"
        every = {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval}
        self.config = {
            "global": every,
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]} for job, targets in jobs.items()
            ],
        }
        self.proc: LoggedProcess | None = None

    def start(self, timeout: float = 60.0) -> TempPrometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.proc = LoggedProcess(
            [
                str(self.binary),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address={self.host}:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            log_path=self.workdir / "prometheus.log",
            env={"HOME": str(self.workdir), "PATH": "/usr/bin:/bin"},
        )
        self.proc.wait_for(r"Server is ready to receive web requests", timeout=timeout)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            assert_all_gone(self.proc.seen_pids)

    def api(self, path: str, **params: str) -> Any:
        r = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = r.json()
        if r.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {r.status_code} {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else []
        return result

    def value(self, expr: str) -> float | None:
        """The query's one value now; None when it has no series."""
        result = self.query(expr)
        if len(result) > 1:
            raise AssertionError(f"{expr}: {len(result)} series, expected one: {result}")
        return float(result[0]["value"][1]) if result else None

    def wait_for(
        self, expr: str, ok: Callable[[float], bool], *, timeout: float, what: str, interval: float = 0.25
    ) -> float:
        """Poll ``expr`` until its value satisfies ``ok``; the value, or an error naming the last one."""
        deadline = time.monotonic() + timeout
        last: float | None = None
        while time.monotonic() < deadline:
            last = self.value(expr)
            if last is not None and ok(last):
                return last
            time.sleep(interval)
        raise AssertionError(f"{what}: {expr} was {last} after {timeout} s")
