"""The README's main job: `phoneagent dev` brings everything up, prints a number that answers,
records the call as any tenant's (call log, transcript, turn latencies, recording, review page, all
reached with the key it prints), prints a line when the call ends, and Ctrl-C takes everything down
again."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

from phoneagent.speech.piper_tts import load_piper_voice
from tests.e2e.conftest import transcribe
from tests.peers.processes import LoggedProcess, assert_all_gone
from tests.peers.sip_phone import BaresipPhone, wait_until
from tests.peers.voices import caller_wav
from tests.peers.wav import speech_seconds, trailing_silence_seconds

PORTS = {
    "redis_port": 36389,
    "livekit_port": 37880,
    "livekit_rtc_tcp_port": 37881,
    "livekit_rtc_udp_start": 53000,
    "livekit_rtc_udp_end": 53019,
    "sip_port": 35060,
    # outside the suite stack's RTP range (13000-13299), which livekit-sip holds for 30 s after calls
    "sip_rtp_start": 13400,
    "sip_rtp_end": 13419,
    "worker_http_port": 38081,
    "worker_metrics_port": 38082,
    "livekit_prometheus_port": 36789,
    "api_port": 38000,
}


def test_dev_prints_a_number_that_answers_and_ctrl_c_stops_everything(
    tmp_path: Path, whisper_tiny: object
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHONEAGENT_", "LIVEKIT_"))}
    env.update({f"PHONEAGENT_{k.upper()}": str(v) for k, v in PORTS.items()})
    env["PHONEAGENT_STATE_DIR"] = str(tmp_path / "state")
    env["PHONEAGENT_AGENT_NAME"] = "phoneagent-dev-test"
    dev = LoggedProcess(
        [sys.executable, "-m", "phoneagent.cli", "dev"], log_path=tmp_path / "dev.log", env=env
    )
    phone = BaresipPhone(tmp_path / "phone", rtp_ports=(42000, 42019))
    try:
        dev.wait_for(r"Ctrl-C stops everything", timeout=240)
        uri = re.search(r"Dial:\s+(sip:\S+)", dev.text())
        assert uri is not None, dev.tail()
        assert uri.group(1) == f"sip:+15550100@127.0.0.1:{PORTS['sip_port']}"
        assert f'baresip -f {tmp_path / "state" / "phone"} -e "/dial {uri.group(1)}"' in dev.text()

        key = re.search(r"API key:\s+(pa_\S+)", dev.text())
        assert key is not None, dev.tail()

        phone.start()
        phone.dial(uri.group(1))
        phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.5, timeout=90)
        heard = phone.received_audio().size
        phone.play(caller_wav(tmp_path / "question.wav", "What are your opening hours?", load_piper_voice()))
        wait_until(
            lambda: (
                speech_seconds(phone.received_audio()[heard:]) >= 2.0
                and trailing_silence_seconds(phone.received_audio()[heard:]) >= 1.2
            ),
            timeout=90,
            what="the agent's answer at the phone",
        )
        mark = phone.hangup()
        assert phone.bye_confirmed(since=mark)

        # one line when the call ends, then the whole record through the API and the review page
        dev.wait_for(r"call call_\w+: .*; review: ", timeout=60)
        ended = re.search(r"call (call_\w+): ([\d.]+) s, (\w+); review: (\S+)", dev.text())
        assert ended is not None, dev.tail()
        call_id, end_reason, review_url = ended.group(1), ended.group(3), ended.group(4)
        assert end_reason == "customer_hangup" and float(ended.group(2)) > 2.0, ended.group(0)
        record = _whole_record(f"http://127.0.0.1:{PORTS['api_port']}", key.group(1), call_id, review_url)
    finally:
        phone.close()
        dev.note_descendants()
        os.killpg(dev.proc.pid, signal.SIGINT) if dev.proc.poll() is None else None
        code = dev.proc.wait(60)
        dev.stop()
    assert code == 0, dev.tail()
    assert "phoneagent dev: stopping" in dev.text()
    assert len(dev.seen_pids) >= 6  # dev, redis, livekit-server, livekit-sip, api, worker (+ job processes)
    assert_all_gone(dev.seen_pids)
    assert "thank" in transcribe(whisper_tiny, str(phone.received_wav())).lower()
    assert record["direction"] == "inbound" and record["to_number"] == "+15550100"


def _whole_record(api: str, key: str, call_id: str, review_url: str) -> dict[str, Any]:
    """The dev call's record as a tenant sees it: transcript, turn latency, the recording (once
    ready), and its review page after signing in with the dev key."""
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        wait_until(
            lambda: c.get(f"/calls/{call_id}").json()["recording_status"] in ("ready", "failed"),
            timeout=90,
            what="the dev call's recording",
        )
        record: dict[str, Any] = c.get(f"/calls/{call_id}").json()
        assert record["recording_status"] == "ready", record["recording_error"]
        greeting, question, answer = record["transcript"][:3]
        assert greeting["speaker"] == "agent" and "thank" in greeting["text"].lower(), record["transcript"]
        # what the flow matched (its hours intent listens for "hours" and "opening"), as transcribed
        assert question["speaker"] == "caller" and {"hours", "opening"} & set(
            question["text"].lower().split()
        ), question
        assert answer["speaker"] == "agent" and answer["text"].startswith("We are open"), answer
        assert answer["total_ms"] and answer["latency_split"], answer  # where the reply's time went
        audio = c.get(f"/calls/{call_id}/recording")
        assert audio.status_code == 200 and audio.headers["content-type"].startswith("audio/"), audio.headers
    with httpx.Client(base_url=api, timeout=30, follow_redirects=True) as browser:
        form = browser.get("/review/sign-in")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None, form.text
        signed = browser.post(
            "/review/sign-in",
            data={"api_key": key, "csrf_token": csrf.group(1), "next": review_url.removeprefix(api)},
            headers={"Origin": api},
        )
        assert signed.status_code == 200 and call_id in str(signed.url), signed.text[:500]
        assert greeting["text"][:40] in signed.text.replace("&#39;", "'")
    return record
