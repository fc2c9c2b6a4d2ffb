"""`phoneagent calls list|show|tail` as real commands against a real `phoneagent api` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from phoneagent.db.engine import make_engine, session_factory
from phoneagent.db.models import CallEvent
from tests.peers.processes import LoggedProcess, assert_all_gone
from tests.review_fixtures import PHRASE, TURNS, RunningApp, free_port


def _calls(
    app: RunningApp, *args: str, key: str | None = None, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in app.env.items() if k != "PHONEAGENT_API_KEY"}
    if key is not None:
        env["PHONEAGENT_API_KEY"] = key
    argv = [sys.executable, "-m", "phoneagent.cli", "calls", "--url", url or app.url, *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def _one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("phoneagent: error: "), done.stderr
    assert "hint:" in lines[0] and "Traceback" not in done.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_list_shows_the_tenants_calls_as_a_table(review_app: RunningApp) -> None:
    d = review_app.data
    done = _calls(review_app, "list", key=d.token)
    assert done.returncode == 0, done.stderr
    head, *rows = done.stdout.splitlines()
    assert head.split()[:4] == ["WHEN", "(UTC)", "DIR", "FROM"]
    assert any(d.call_id in r and "+14155550123" in r and "customer_hangup" in r for r in rows)
    assert d.other_call_id not in done.stdout and "more: add --cursor" in done.stdout
    found = _calls(review_app, "list", "--search", PHRASE, key=d.token)
    assert found.returncode == 0 and d.call_id in found.stdout and len(found.stdout.splitlines()) == 2
    missed = _calls(
        review_app, "list", "--end-reason", "no_answer", "--number", "+1 415 555 0999", key=d.token
    )
    assert d.missed_id in missed.stdout and d.call_id not in missed.stdout


def test_show_prints_evidence_transcript_latency_and_events(review_app: RunningApp) -> None:
    d = review_app.data
    done = _calls(review_app, "--key", d.token, "show", d.call_id)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"[00:06] Agent: {TURNS[2][2]}" in out and "LiveKit CLIENT_INITIATED" in out
    assert "tts: deepgram → piper (reason=timeout)" in out and "egress_stalled" in out
    latency = out.split("latency per agent turn (ms)")[1].splitlines()
    assert latency[1].split() == ["TURN", "STT", "BRAIN", "TTS", "TOTAL"]
    assert latency[2].split() == ["2", "310", "4", "95", "820"]
    missed = _calls(review_app, "show", d.missed_id, key=d.token)
    assert "SIP 480 Temporarily Unavailable" in missed.stdout


def test_the_outcome_is_listed_filtered_shown_and_counted(review_app: RunningApp) -> None:
    d = review_app.data
    booked = _calls(review_app, "list", "--intent", "appointment", "--slot", "day:tuesday", key=d.token)
    assert booked.returncode == 0, booked.stderr
    head, *rows = booked.stdout.splitlines()
    assert "OUTCOME" in head.split() and len(rows) == 1
    assert d.call_id in rows[0] and "appointment +" in rows[0]
    none = _calls(review_app, "list", "--success", "false", key=d.token)
    assert none.stdout.strip() == "no calls match", none.stdout
    shown = _calls(review_app, "show", d.call_id, key=d.token).stdout
    assert "outcome: intent appointment, success reached" in shown
    slot = next(line.split() for line in shown.splitlines() if line.split()[:2] == ["slot", "day"])
    assert slot == ["slot", "day", "tuesday", "turn", "1"]
    assert "no outcome" in _calls(review_app, "show", d.missed_id, key=d.token).stdout
    rates = _calls(review_app, "outcomes", key=d.token)
    assert rates.returncode == 0, rates.stderr
    front_desk = next(line.split() for line in rates.stdout.splitlines() if "front-desk" in line)
    # ended calls of the profile: the answered one (booked: a success) and the missed one
    assert front_desk == ["front-desk", "2", "1", "1", "50.0%"], rates.stdout
    bad = _calls(review_app, "list", "--slot", "Day:friday", key=d.token)
    _one_line_error(bad, "outcome.slot", "HTTP 422")


def test_errors_are_one_line_with_a_hint_and_a_nonzero_exit(review_app: RunningApp) -> None:
    d = review_app.data
    _one_line_error(_calls(review_app, "list", key="pa_000000000000_wrong"), "refused the API key")
    _one_line_error(_calls(review_app, "list", key=""), "no API key")
    _one_line_error(
        _calls(review_app, "list", key=d.token, url=f"http://127.0.0.1:{free_port()}"), "cannot reach"
    )
    _one_line_error(_calls(review_app, "show", d.other_call_id, key=d.token), "no call with id", "HTTP 404")
    _one_line_error(_calls(review_app, "list", "--status", "exploded", key=d.token), "status", "HTTP 422")


def test_tail_prints_new_events_of_this_tenant_and_stops_on_ctrl_c(
    review_app: RunningApp, tmp_path: Path
) -> None:
    d = review_app.data
    env = {**review_app.env, "PHONEAGENT_API_KEY": d.token}
    argv = [
        sys.executable,
        "-m",
        "phoneagent.cli",
        "calls",
        "--url",
        review_app.url,
        "tail",
        "--interval",
        "0.3",
    ]
    proc = LoggedProcess(argv, log_path=tmp_path / "tail.log", env=env)
    try:
        proc.wait_for(r"tts: deepgram → piper", timeout=30)  # the latest events come first
        engine = make_engine(review_app.database_url)
        with session_factory(engine)() as s:
            s.add(
                CallEvent(call_id=d.other_call_id, source="worker", event_id="tail-other", type="not_yours")
            )
            s.add(
                CallEvent(
                    call_id=d.call_id,
                    source="worker",
                    event_id="tail-1",
                    type="dtmf_received",
                    payload={"data": {"count": 4}},
                )
            )
            s.commit()
        engine.dispose()
        proc.wait_for(r"dtmf_received\s+count=4", timeout=15)
        os.killpg(proc.proc.pid, signal.SIGINT)
        assert proc.proc.wait(10) == 0
    finally:
        proc.stop()
        assert_all_gone(proc.seen_pids)
    out = proc.text()
    assert "not_yours" not in out and "Traceback" not in out and d.call_id in out
