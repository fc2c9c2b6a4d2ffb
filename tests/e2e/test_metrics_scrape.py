"""A real Prometheus (built from its Go module) scrapes the live stack every second during a real call:
the control plane's ``/metrics``, the worker's metrics port and livekit-server's Prometheus port, as
the jobs of deploy/prometheus/prometheus.yml, with the alert rules of deploy/prometheus/rules.yml
loaded. PromQL through Prometheus's HTTP API sees the call while it lasts (a call in progress, a job on
the worker, a room on livekit-server) and, after it, the ended-calls counter and the reply-latency
histogram grown. Every target is up, every rule evaluates without error, every dashboard query runs,
and every series the dashboard and the rules name exists (but those this call cannot make)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from phoneagent.stack.services import Stack
from tests.peers.prometheus import (
    RULES,
    SCRAPE_EXAMPLE,
    TempPrometheus,
    dashboard,
    dashboard_queries,
    series_names,
)
from tests.peers.sip_phone import BaresipPhone, wait_until
from tests.peers.voices import caller_wav
from tests.peers.wav import speech_seconds, trailing_silence_seconds
from tests.stack_fixtures import PORT_OFFSET, TEST_PORTS, ControlPlane, WorkerProcess

pytestmark = pytest.mark.monitoring

PHONE_RTP = (44400 + PORT_OFFSET, 44419 + PORT_OFFSET)
# named by the dashboard but not made here: livekit-sip's Prometheus port stays off in the loopback
# stack (it binds every interface)
NOT_MADE_HERE = {"livekit_sip_calls_active", "livekit_sip_invite_error"}
LIVE = 'max without(instance) (phoneagent_calls{status="in_progress"})'
ENDED = "sum(max without(instance) (phoneagent_calls_ended_total))"
REPLIES = "sum(phoneagent_reply_latency_seconds_count)"
ACTIVE = "sum(phoneagent_worker_active_calls)"


@pytest.fixture
def scraper(
    stack: Stack, control_plane: ControlPlane, worker: WorkerProcess, tmp_path: Path
) -> Iterator[TempPrometheus]:
    s = stack.settings
    ports = {
        "phoneagent-api": s.api_port,
        "phoneagent-worker": s.worker_metrics_port,
        "livekit-server": s.livekit_prometheus_port,
    }
    example_jobs = {job["job_name"] for job in yaml.safe_load(SCRAPE_EXAMPLE.read_text())["scrape_configs"]}
    assert set(ports) <= example_jobs, example_jobs  # the jobs the dashboard and the rules expect
    jobs = {job: [f"{s.bind_host}:{port}"] for job, port in ports.items()}
    prom = TempPrometheus(tmp_path / "prometheus", TEST_PORTS["prometheus_port"], jobs, rule_files=[RULES])
    prom.start()
    try:
        yield prom
    finally:
        prom.stop()


def test_prometheus_sees_a_call_live_and_after_it_ends(
    stack: Stack, scraper: TempPrometheus, voice: object, tmp_path: Path
) -> None:
    s, prom = stack.settings, scraper
    prom.wait_for("count(up == 1)", lambda v: v == 3, timeout=30, what="the three targets scraped")
    # relative to before the call: the session's control plane and worker may have served others
    ended_before = prom.value(ENDED) or 0.0
    replies_before = prom.value(REPLIES) or 0.0
    live_before = prom.value(LIVE) or 0.0
    active_before = prom.value(ACTIVE) or 0.0
    question = caller_wav(tmp_path / "q.wav", "What are your opening hours on Saturday?", voice)
    phone = BaresipPhone(tmp_path / "phone", rtp_ports=PHONE_RTP).start()
    try:
        phone.dial(f"sip:{s.dev_number}@{s.bind_host}:{s.sip_port}", timeout=30)
        # while the call lasts: the control plane's record, the worker's job, livekit-server's room
        prom.wait_for(LIVE, lambda v: v >= live_before + 1, timeout=30, what="a call in progress")
        prom.wait_for(ACTIVE, lambda v: v >= active_before + 1, timeout=30, what="the worker's call")
        prom.wait_for("sum(lk_agents_active_job_count)", lambda v: v >= 1, timeout=30, what="agent job")
        prom.wait_for("sum(livekit_room_total)", lambda v: v >= 1, timeout=30, what="a room on livekit")
        capacity = prom.value("sum(phoneagent_worker_call_capacity)")
        assert capacity is not None and capacity >= 1, capacity

        phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.2, timeout=90)  # the greeting
        mark = phone.received_audio().size
        phone.play(question)

        def replied() -> bool:
            tail = phone.received_audio()[mark:]
            return speech_seconds(tail) >= 1.0 and trailing_silence_seconds(tail) >= 1.2

        wait_until(replied, timeout=60, what="the agent's reply at the caller")
        # the reply's latency reached the histogram (the worker's job process, summed at its port)
        prom.wait_for(REPLIES, lambda v: v > replies_before, timeout=30, what="the reply counted")
        since = phone.hangup()
        assert phone.bye_confirmed(since=since, timeout=15)
    finally:
        phone.close()

    prom.wait_for(ENDED, lambda v: v > ended_before, timeout=30, what="the call counted as ended")
    prom.wait_for(LIVE, lambda v: v == live_before, timeout=30, what="the call no longer in progress")
    prom.wait_for(ACTIVE, lambda v: v == active_before, timeout=30, what="the worker's call over")
    p95 = prom.value(
        "histogram_quantile(0.95, sum by (le) (rate(phoneagent_reply_latency_seconds_bucket[5m])))"
    )
    stages = prom.query(
        "histogram_quantile(0.95, sum by (stage, le) (rate(phoneagent_reply_stage_seconds_bucket[5m])))"
    )
    by_stage = {r["metric"]["stage"]: float(r["value"][1]) for r in stages}
    print(f"reply latency p95 {p95} s; p95 by stage {by_stage}")
    assert p95 is not None and 0 < p95 <= 10, p95
    # each stage a number, also on the worker's first call (its series were there at 0 before it)
    assert set(by_stage) == {"vad", "transcript", "end_of_turn", "brain", "tts", "playout"}, by_stage
    assert all(0 <= v <= 10 for v in by_stage.values()), by_stage  # NaN is no number here

    targets = prom.api("targets")["activeTargets"]
    assert sorted((t["labels"]["job"], t["health"]) for t in targets) == [
        ("livekit-server", "up"),
        ("phoneagent-api", "up"),
        ("phoneagent-worker", "up"),
    ], targets
    # the alert rules ran on the real series without an error (e.g. no many-to-many match); the
    # database and the targets were up throughout (the others depend on this machine's load)
    rules = {r["name"]: r for group in prom.api("rules")["groups"] for r in group["rules"]}
    print("alerts:", {name: r["state"] for name, r in rules.items()})
    assert len(rules) == 7 and all(r["health"] == "ok" and r["lastEvaluation"] for r in rules.values()), rules
    assert rules["PhoneagentDatabaseDown"]["state"] == rules["PhoneagentTargetDown"]["state"] == "inactive"
    # every dashboard query runs, and every series named by the dashboard or the rules is there
    board = dashboard()
    for q in dashboard_queries(board):
        prom.api("query", query=q.expr)  # raises on an error, naming the query
    known = set(prom.api("label/__name__/values"))
    named = series_names(" ".join(q.expr for q in dashboard_queries(board)) + RULES.read_text())
    assert not named - known - NOT_MADE_HERE, sorted(named - known)
