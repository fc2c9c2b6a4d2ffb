"""The README's main job: `phoneagent dev` brings everything up, prints a number that answers,
and Ctrl-C takes everything down again."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

from tests.e2e.conftest import transcribe
from tests.peers.processes import LoggedProcess, assert_all_gone
from tests.peers.sip_phone import BaresipPhone

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
    "sip_health_port": 38089,
    "worker_http_port": 38081,
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

        phone.start()
        phone.dial(uri.group(1))
        phone.wait_for_utterance(min_speech_s=2.0, then_silence_s=1.5, timeout=90)
        mark = phone.hangup()
        assert phone.bye_confirmed(since=mark)
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
