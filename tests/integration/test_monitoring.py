"""The alert rules and the Grafana dashboard, checked offline by promtool (built from Prometheus's Go
module): the rules parse, their unit tests (deploy/prometheus/rules_test.yml: each alert fires where it
should, a healthy hour fires none) pass, and every panel's query parses as PromQL. Each check is shown
to refuse what it should: a broken query, a rule whose threshold moved."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.peers.prometheus import (
    RULES,
    RULES_TEST,
    SCRAPE_EXAMPLE,
    PanelQuery,
    dashboard,
    dashboard_queries,
    queries_as_rules,
    run_promtool,
    series_names,
)

pytestmark = pytest.mark.monitoring

ALERTS = {
    "PhoneagentCallsFailing",
    "PhoneagentReplyLatencyHigh",
    "PhoneagentWebhookOutboxStale",
    "PhoneagentWorkerAtCapacity",
    "PhoneagentWorkersFull",
    "PhoneagentDatabaseDown",
    "PhoneagentTargetDown",
}
QUIET = "a healthy hour fires nothing"


def test_promtool_is_built_with_the_pinned_build_tag() -> None:
    done = run_promtool("--version")
    assert done.returncode == 0, done.stderr
    assert "tags:             remove_all_sd" in done.stdout, done.stdout  # GoBinary.tags reached `go build`


def test_the_rules_parse_and_name_every_alert() -> None:
    done = run_promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout, done.stdout
    text = RULES.read_text()
    assert all(f"alert: {name}\n" in text for name in ALERTS)
    # the example scrape configuration loads them too (its job names are the ones the rules match)
    done = run_promtool("check", "config", str(SCRAPE_EXAMPLE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_alert_fires_where_its_unit_tests_say_and_a_healthy_hour_fires_none() -> None:
    done = run_promtool("test", "rules", str(RULES_TEST))
    assert done.returncode == 0, done.stdout + done.stderr
    cases = yaml.safe_load(RULES_TEST.read_text())["tests"]
    checks = [(case["name"], c) for case in cases for c in case["alert_rule_test"]]
    # every alert has a case where it fires and one where it must not, and the quiet hour names each
    assert {c["alertname"] for _, c in checks if c["exp_alerts"]} == ALERTS
    assert {c["alertname"] for _, c in checks if not c["exp_alerts"]} == ALERTS
    assert {c["alertname"] for name, c in checks if name == QUIET} == ALERTS


def test_the_unit_tests_catch_a_rule_that_changed(tmp_path: Path) -> None:
    """The same unit tests against a copy of the rules whose failing-calls threshold moved from a
    fifth to a half: promtool reports the alert that no longer fires."""
    shutil.copy(RULES_TEST, tmp_path / "rules_test.yml")
    text = RULES.read_text()
    assert text.count("> 0.2\n") == 1
    (tmp_path / "rules.yml").write_text(text.replace("> 0.2\n", "> 0.5\n"))
    done = run_promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert done.returncode != 0, done.stdout
    assert "PhoneagentCallsFailing" in done.stdout + done.stderr, done.stdout + done.stderr


def test_every_dashboard_query_parses_as_promql(tmp_path: Path) -> None:
    queries = dashboard_queries(dashboard())
    assert len(queries) >= 20, queries
    rules = tmp_path / "dashboard-rules.yml"
    rules.write_text(queries_as_rules(queries))
    done = run_promtool("check", "rules", str(rules))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout, done.stdout


@pytest.mark.parametrize(
    "broken",
    [
        "sum by (le) (rate(phoneagent_reply_latency_seconds_bucket[1m])",  # a parenthesis short
        "histogram_quantile(0.95, sum by (le) (rate(phoneagent_reply_latency_seconds_bucket)))",  # no range
        "max without(instance) (phoneagent_calls{status=in_progress})",  # an unquoted label value
    ],
)
def test_a_broken_dashboard_query_is_refused(broken: str, tmp_path: Path) -> None:
    queries = [*dashboard_queries(dashboard()), PanelQuery("broken", "Z", broken)]
    rules = tmp_path / "dashboard-rules.yml"
    rules.write_text(queries_as_rules(queries))
    done = run_promtool("check", "rules", str(rules))
    assert done.returncode != 0, done.stdout
    assert f"dashboard:query_{len(queries) - 1}" in done.stdout + done.stderr, done.stdout + done.stderr


def test_the_dashboard_is_one_grafana_board_on_a_chosen_prometheus() -> None:
    board = dashboard()
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), ids
    graphs = [p for p in panels if p["type"] != "row"]
    for panel in graphs:
        # the data source is the board's variable, so the JSON imports into any Grafana
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource"]
    # the series the issue asks for are all on it
    shown = series_names(" ".join(q.expr for q in dashboard_queries(board)))
    assert {
        "phoneagent_calls",
        "phoneagent_calls_ended_total",
        "phoneagent_dialer_queue_depth",
        "phoneagent_webhook_outbox_depth",
        "phoneagent_webhook_outbox_oldest_age_seconds",
        "phoneagent_livekit_webhook_lag_seconds_bucket",
        "phoneagent_worker_event_lag_seconds_bucket",
        "phoneagent_reply_latency_seconds_bucket",
        "phoneagent_reply_stage_seconds_bucket",
        "phoneagent_reply_component_seconds_bucket",
        "phoneagent_worker_active_calls",
        "phoneagent_worker_call_capacity",
        "phoneagent_fallbacks_total",
        "phoneagent_event_spool_depth",
        "livekit_room_total",
        "livekit_sip_calls_active",
        "livekit_sip_invite_error",
        "phoneagent_database_up",
    } <= shown, shown
