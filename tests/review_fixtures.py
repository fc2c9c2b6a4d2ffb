"""Call log review fixtures: a seeded call log (two tenants; calls with turns, latency, events and a real
WAV recording) behind a TestClient (route tests, SQLite and PostgreSQL) or a real `phoneagent api`
process (browser and CLI tests). None of them needs LiveKit: the app never connects at start."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from phoneagent.api.app import create_app
from phoneagent.calls.query import index_transcript
from phoneagent.config import Settings
from phoneagent.db.engine import make_engine, session_factory
from phoneagent.db.migrate import upgrade
from phoneagent.db.models import AgentProfile, Call, CallEvent, CallTurn
from phoneagent.provisioning.keys import create_key
from tests.peers.processes import LoggedProcess, assert_all_gone
from tests.peers.wav import write_wav
from tests.stack_fixtures import TEST_PORTS, settings_env

RATE = 8000
RECORDING_S = 12.0
BASE = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
# (speaker, start offset in the recording, text, latency split stt/brain/tts/total ms for agent turns)
TURNS = [
    ("agent", 0.5, "Thank you for calling Acme Dental, how can I help you today?", None),
    ("caller", 3.0, "I would like to book a cleaning for Tuesday morning.", None),
    ("agent", 6.5, "I have booked you for Tuesday at nine am.", (310, 4, 95, 820)),
    ("caller", 9.0, "Thank you, goodbye.", None),
    ("agent", 10.5, "Goodbye, have a nice day.", (280, 3, 88, 640)),
]
PHRASE = "book a cleaning for Tuesday"
OTHER_PHRASE = "quarterly tax audit"  # only in the other tenant's call
FILLER = 55  # older calls, so that the list has a second page
# the answered call's outcome: booked by voice on turn 1, its day from the same turn
OUTCOME: dict[str, Any] = {
    "intent": "appointment",
    "intents": [{"name": "appointment", "via": "voice", "turn": 1}],
    "confirmations": [],
    "slots": {
        "day": {"value": "tuesday", "via": "voice", "turn": 1},
        "account": {"value": "4015", "via": "dtmf", "turn": None, "keys": "4015"},
    },
    "success": True,
}


@dataclass
class Seeded:
    token: str
    other_token: str
    tenant_id: str
    agent_id: str
    call_id: str  # answered, ended, with recording, turns, latency and events
    missed_id: str  # outbound, no answer (SIP 480), no recording
    live_id: str  # in progress
    other_call_id: str  # the other tenant's, with a recording
    recordings: Path
    filler_ids: list[str] = field(default_factory=list)


def write_recording(path: Path) -> Path:
    """12 s of 8 kHz speech-band tones, one pitch per turn: a real WAV a browser decodes and seeks."""
    t = np.arange(int(RECORDING_S * RATE)) / RATE
    samples = np.zeros_like(t)
    for i, (_speaker, start, _text, _lat) in enumerate(TURNS):
        on = (t >= start) & (t < start + 2.0)
        samples[on] = 0.3 * np.sin(2 * np.pi * (300 + 120 * i) * t[on])
    return write_wav(path, (samples * 32767).astype(np.int16), RATE)


def _call(session: Session, **kw: object) -> Call:
    call = Call(**kw)
    session.add(call)
    session.flush()
    return call


def seed(sessions: sessionmaker[Session], recordings: Path) -> Seeded:
    write_recording(recordings / "acme" / "call-1.wav")
    write_recording(recordings / "other.wav")
    with sessions() as s:
        token, key = create_key(s, tenant_name="acme")
        other_token, other_key = create_key(s, tenant_name="other")
        tenant = key.tenant_id
        agent = AgentProfile(
            tenant_id=tenant, name="front-desk", success={"intent": "appointment", "slots": ["day"]}
        )
        s.add(agent)
        s.flush()
        answered = BASE + timedelta(seconds=2)
        call = _call(
            s,
            tenant_id=tenant,
            direction="inbound",
            status="ended",
            end_reason="customer_hangup",
            from_number="+14155550123",
            to_number="+14155550100",
            agent_profile_id=agent.id,
            room_name="call-acme-1",
            created_at=BASE,
            answered_at=answered,
            ended_at=answered + timedelta(seconds=RECORDING_S),
            duration_ms=int(RECORDING_S * 1000),
            disconnect_reason="CLIENT_INITIATED",
            recording_status="ready",
            recording_location="acme/call-1.wav",
            outcome=OUTCOME,
        )
        for seq, (speaker, start, text, lat) in enumerate(TURNS):
            stt, brain, tts, total = lat or (None, None, None, None)
            at = answered + timedelta(seconds=start)
            s.add(
                CallTurn(
                    call_id=call.id,
                    seq=seq,
                    speaker=speaker,
                    text=text,
                    started_at=at,
                    ended_at=at + timedelta(seconds=2),
                    stt_ms=stt,
                    brain_ms=brain,
                    tts_ms=tts,
                    total_ms=total,
                )
            )
        events: list[tuple[str, str, float, dict[str, Any]]] = [
            ("worker", "answered", 0.1, {}),
            (
                "worker",
                "fallback",
                6.0,
                {"kind": "tts", "from": "deepgram", "to": "piper", "reason": "timeout"},
            ),
            ("worker", "tool", 9.5, {"name": "end_call", "arguments": {"reason": "caller said goodbye"}}),
            ("worker", "hangup", 11.9, {"reason": "customer_hangup"}),
            ("worker", "egress_stalled", 5.0, {"egress_id": "EG_1", "seconds": 3}),  # a type nobody knows
        ]
        for i, (source, type_, at_s, data) in enumerate(events):
            s.add(
                CallEvent(
                    call_id=call.id,
                    source=source,
                    event_id=f"acme-{i}",
                    type=type_,
                    payload={"data": data},
                    occurred_at=answered + timedelta(seconds=at_s),
                )
            )
        s.add(
            CallEvent(
                call_id=call.id,
                source="livekit",
                event_id="lk-1",
                type="participant_left",
                payload={
                    "participant": {
                        "identity": "sip_+14155550123",
                        "kind": "SIP",
                        "disconnectReason": "CLIENT_INITIATED",
                    }
                },
                occurred_at=answered + timedelta(seconds=RECORDING_S),
            )
        )
        index_transcript(s, call, "\n".join(t[2] for t in TURNS))
        missed = _call(
            s,
            tenant_id=tenant,
            direction="outbound",
            status="ended",
            end_reason="no_answer",
            from_number="+14155550100",
            to_number="+14155550999",
            agent_profile_id=agent.id,
            created_at=BASE - timedelta(minutes=30),
            sip_status_code=480,
            sip_status_reason="Temporarily Unavailable",
        )
        live = _call(
            s,
            tenant_id=tenant,
            direction="inbound",
            status="in_progress",
            from_number="+14155550777",
            to_number="+14155550100",
            created_at=BASE + timedelta(minutes=5),
            answered_at=BASE + timedelta(minutes=5),
        )
        fillers = []
        for i in range(FILLER):
            c = _call(
                s,
                tenant_id=tenant,
                direction="inbound",
                status="ended",
                end_reason="agent_hangup",
                from_number=f"+1415555{2000 + i:04d}",
                to_number="+14155550100",
                created_at=BASE - timedelta(hours=2, minutes=i),
                duration_ms=30_000,
            )
            index_transcript(s, c, "What are your opening hours on Saturday?")
            fillers.append(c.id)
        other = _call(
            s,
            tenant_id=other_key.tenant_id,
            direction="inbound",
            status="ended",
            end_reason="customer_hangup",
            from_number="+442071234567",
            to_number="+442071230000",
            created_at=BASE + timedelta(minutes=1),
            answered_at=BASE + timedelta(minutes=1),
            recording_location="other.wav",
            outcome=OUTCOME,  # the same outcome: never in acme's filtered list
        )
        s.add(CallTurn(call_id=other.id, seq=0, speaker="caller", text=f"About the {OTHER_PHRASE}."))
        index_transcript(s, other, f"About the {OTHER_PHRASE}.")
        s.commit()
        return Seeded(
            token=token,
            other_token=other_token,
            tenant_id=tenant,
            agent_id=agent.id,
            call_id=call.id,
            missed_id=missed.id,
            live_id=live.id,
            other_call_id=other.id,
            recordings=recordings,
            filler_ids=fillers,
        )


# ---- in-process (TestClient), every database engine --------------------------------------------------


@dataclass
class ReviewClient:
    client: TestClient
    data: Seeded
    settings: Settings


@pytest.fixture
def review(db_url: str, tmp_path: Path) -> Iterator[ReviewClient]:
    settings = Settings(state_dir=tmp_path / "state", database_url=db_url, recordings_dir=tmp_path / "rec")
    app = create_app(settings)
    data = seed(app.state.sessions, tmp_path / "rec")
    with TestClient(app) as c:
        yield ReviewClient(c, data, settings)
    app.state.engine.dispose()


# ---- a real `phoneagent api` process on SQLite ---------------------------------------------------------


@dataclass
class RunningApp:
    url: str
    data: Seeded
    env: dict[str, str]
    database_url: str
    process: LoggedProcess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def review_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    root = tmp_path_factory.mktemp("review-app")
    ports = {**TEST_PORTS, "api_port": free_port()}
    settings = Settings(state_dir=root / "state", **ports)  # type: ignore[arg-type]
    env = settings_env(settings)
    url = f"sqlite:///{root}/phoneagent.db"
    env.update(PHONEAGENT_DATABASE_URL=url, PHONEAGENT_RECORDINGS_DIR=str(root / "recordings"))
    upgrade(url)
    engine = make_engine(url)
    data = seed(session_factory(engine), root / "recordings")
    engine.dispose()
    proc = LoggedProcess([sys.executable, "-m", "phoneagent.cli", "api"], log_path=root / "api.log", env=env)
    try:
        proc.wait_for(r"Uvicorn running", timeout=60)
        yield RunningApp(f"http://127.0.0.1:{settings.api_port}", data, env, url, proc)
    finally:
        proc.stop()
        print(f"[review api] log: {proc.log_path}")
        assert_all_gone(proc.seen_pids)
