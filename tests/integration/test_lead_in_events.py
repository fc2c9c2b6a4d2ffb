"""The worker's copy of the agent's first words reaching the control plane (SQLite and PostgreSQL): its
audio kept under the recordings directory and out of the record; an event that names a file of its
own, or carries more than the audio and its time, refused by name; audio that cannot be decoded costs
the recording its first words only."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from phoneagent.api.app import create_app
from phoneagent.calls.recorder import Recorder
from phoneagent.config import Settings
from phoneagent.db.models import Call, CallEvent, Tenant
from phoneagent.recording import lead_in
from phoneagent.telephony.client import worker_token
from tests.integration.recording_helpers import FakeEgress

AUDIO = base64.b64encode(np.arange(800, dtype=np.int16).tobytes()).decode()


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, Settings]]:
    settings = Settings(state_dir=tmp_path / "state", database_url=db_url, background=False)
    application = create_app(settings)
    with application.state.sessions() as s:
        tenant = Tenant(name="acme")
        s.add(tenant)
        s.flush()
        s.add(Call(tenant_id=tenant.id, direction="inbound", status="in_progress", room_name="room-1"))
        s.commit()
    with TestClient(application) as c:
        yield c, settings
    application.state.engine.dispose()


def _send(c: TestClient, settings: Settings, event_id: str, data: dict[str, Any]) -> dict[str, Any]:
    event = {"event_id": event_id, "room": "room-1", "type": lead_in.EVENT, "at": time.time(), "data": data}
    r = c.post(
        "/webhooks/worker",
        json={"events": [event]},
        headers={"Authorization": f"Bearer {worker_token(settings)}"},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def _stored(c: TestClient, event_id: str) -> dict[str, Any]:
    with c.app.state.sessions() as s:  # type: ignore[attr-defined]
        ev = s.scalar(select(CallEvent).where(CallEvent.event_id == event_id))
        assert ev is not None
        return dict(ev.payload["data"])


def test_the_audio_goes_beside_the_recordings_and_the_record_keeps_what_it_was(
    app: tuple[TestClient, Settings],
) -> None:
    c, settings = app
    got = _send(c, settings, "lead-ok", {"started_at": time.time(), "sample_rate": 8000, "pcm16": AUDIO})
    assert (got["new"], got["rejected"]) == (1, [])
    data = _stored(c, "lead-ok")
    assert "pcm16" not in data and data["samples"] == 800 and data["file"] == ".lead-ins/lead-ok.wav"
    assert (settings.recordings_path / data["file"]).stat().st_size == 44 + 1600


def test_an_event_naming_a_file_or_carrying_more_is_refused_by_name(app: tuple[TestClient, Settings]) -> None:
    c, settings = app
    data = {"started_at": time.time(), "sample_rate": 8000, "pcm16": AUDIO, "file": "/etc/passwd"}
    got = _send(c, settings, "lead-file", data)
    assert got["new"] == 0 and got["rejected"][0]["event_id"] == "lead-file"
    assert "file" in got["rejected"][0]["error"]


def test_audio_that_cannot_be_decoded_is_recorded_as_such_and_the_recorder_finds_no_file(
    app: tuple[TestClient, Settings],
) -> None:
    c, settings = app
    got = _send(c, settings, "lead-bad", {"started_at": time.time(), "sample_rate": 8000, "pcm16": "AAAAA"})
    assert got["new"] == 1
    data = _stored(c, "lead-bad")
    assert set(data) == {"started_at", "sample_rate", "error"}
    with c.app.state.sessions() as s:  # type: ignore[attr-defined]
        call_id = s.scalar(select(Call.id).where(Call.room_name == "room-1"))
    recorder = Recorder(settings, c.app.state.sessions, FakeEgress(settings))  # type: ignore[attr-defined]
    assert recorder._lead_in_event(call_id) == (None, None)


def test_the_recorder_never_takes_a_file_outside_its_lead_in_folder(app: tuple[TestClient, Settings]) -> None:
    c, settings = app
    outside = settings.recordings_path / "elsewhere.wav"
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.write_bytes(b"RIFF")
    with c.app.state.sessions() as s:  # type: ignore[attr-defined]
        call = s.scalar(select(Call).where(Call.room_name == "room-1"))
        assert call is not None
        # as a record written before the API refused such events would hold it
        s.add(
            CallEvent(
                source="worker",
                event_id="lead-old",
                type=lead_in.EVENT,
                room_name="room-1",
                call_id=call.id,
                payload={"data": {"started_at": time.time(), "file": "../recordings/elsewhere.wav"}},
            )
        )
        s.commit()
        call_id = call.id
    recorder = Recorder(settings, c.app.state.sessions, FakeEgress(settings))  # type: ignore[attr-defined]
    assert recorder._lead_in_event(call_id) == (None, None)
    assert outside.exists()
