"""A recording's life in the control plane, on SQLite and PostgreSQL, with egress faked at its seam
(``LiveKitEgress``): started per track when the call is answered, failed with egress's own error, lost
when egress stops answering or outlives the call (the failure that sends no event), merged and
announced when complete, expired by retention. The call itself is never touched by any of it."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from livekit import api
from sqlalchemy.orm import Session, sessionmaker

from phoneagent.calls import recording_state as rs
from phoneagent.calls.ingest import ingest_livekit_event
from phoneagent.calls.recorder import Recorder
from phoneagent.calls.worker_events import ingest_worker_events
from phoneagent.config import Settings
from phoneagent.db.engine import make_engine, session_factory
from phoneagent.db.models import Call, RecordingEgress
from phoneagent.recording import lead_in
from phoneagent.telephony.egress import CallTracks
from phoneagent.telephony.webhooks import LiveKitEvent
from tests.integration.recording_helpers import T0, FakeEgress, end_call, recording_call, state, webhooks
from tests.peers.fake_telephony import FakeClock
from tests.peers.recording import decode, onsets, tone_track


@dataclass
class Env:
    settings: Settings
    sessions: sessionmaker[Session]
    egress: FakeEgress
    recorder: Recorder
    clock: FakeClock

    def call(self, call_id: str) -> Call:
        with self.sessions() as s:
            call = s.get(Call, call_id)
            assert call is not None
            s.expunge(call)
            return call

    def rows(self, call_id: str) -> dict[str, RecordingEgress]:
        with self.sessions() as s:
            call = s.get(Call, call_id)
            assert call is not None
            rows = rs.egresses(s, call)
            s.expunge_all()
            return rows

    def webhook(self, egress_id: str, event: str, st: str, **kw: object) -> None:
        info = api.EgressInfo(
            egress_id=egress_id,
            room_name="call-x",
            status=f"EGRESS_{st.upper()}",
            error=str(kw.get("error", "")),
        )
        ev = api.WebhookEvent(event=event, id=f"EV_{egress_id}_{st}", egress_info=info, created_at=1)
        with self.sessions() as s:
            ingest_livekit_event(s, LiveKitEvent.from_webhook(ev))


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    settings = Settings(
        state_dir=tmp_path / "state",
        recordings_dir=tmp_path / "rec",
        database_url=db_url,
        recording_probe_interval_s=0.5,
        recording_stop_after_s=2,
        recording_lost_after_s=5,
    )
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    egress = FakeEgress(settings)
    clock = FakeClock()
    yield Env(settings, sessions, egress, Recorder(settings, sessions, egress, clock=clock), clock)
    engine.dispose()


def test_an_answered_call_of_a_recording_profile_gets_one_track_egress_per_audio_track(env: Env) -> None:
    call_id = recording_call(env.sessions)
    assert env.call(call_id).recording_status == "pending"
    env.egress.tracks_in_room = CallTracks(caller="TR_caller", agent=None)
    asyncio.run(env.recorder.step())
    assert [t for t, _ in env.egress.started] == ["TR_caller"]  # the agent has not published yet
    assert env.call(call_id).recording_status == "pending"
    env.egress.tracks_in_room = CallTracks(caller="TR_caller", agent="TR_agent")
    asyncio.run(env.recorder.step())
    asyncio.run(env.recorder.step())  # nothing is started twice
    assert [t for t, _ in env.egress.started] == ["TR_caller", "TR_agent"]
    call = env.call(call_id)
    assert (call.recording_status, call.recording_egress_id) == ("recording", "EG_TR_caller,EG_TR_agent")
    assert (call.recording_format, call.recording_layout) == ("ogg", "dual")
    for _track, path in env.egress.started:  # absolute, inside the recordings directory, dir made
        assert Path(path).is_absolute() and Path(path).parent.is_dir()
        assert Path(path).is_relative_to(env.settings.recordings_path / ".tracks" / call_id)
    assert set(env.rows(call_id)) == {"caller", "agent"}


def test_a_profile_that_does_not_record_starts_nothing(env: Env) -> None:
    call_id = recording_call(env.sessions)
    with env.sessions() as s:
        call = s.get(Call, call_id)
        assert call is not None
        call.recording_status = None
        s.commit()
    asyncio.run(env.recorder.step())
    assert env.egress.started == []


def test_egress_not_running_fails_the_recording_not_the_call(env: Env) -> None:
    call_id = recording_call(env.sessions)
    env.egress.running = False
    asyncio.run(env.recorder.step())
    call = env.call(call_id)
    assert call.recording_status == "failed" and "egress is not running" in (call.recording_error or "")
    assert (call.status, call.end_reason) == ("in_progress", None)
    assert "recording.failed" in webhooks(env.sessions, call_id)


def test_egress_ended_failed_fails_the_recording_with_egress_error(env: Env) -> None:
    call_id = recording_call(env.sessions)
    asyncio.run(env.recorder.step())
    env.webhook("EG_TR_agent", "egress_ended", "failed", error="could not create element: faac")
    call = env.call(call_id)
    assert call.recording_status == "failed"
    assert call.recording_error == "agent track: could not create element: faac"
    assert "recording.failed" in webhooks(env.sessions, call_id)
    assert env.rows(call_id)["agent"].status == "failed"
    # the same webhook again, or the other track completing later, changes nothing
    env.webhook("EG_TR_agent", "egress_ended", "failed", error="could not create element: faac")
    env.webhook("EG_TR_caller", "egress_ended", "complete")
    assert env.call(call_id).recording_error == "agent track: could not create element: faac"
    assert webhooks(env.sessions, call_id).count("recording.failed") == 1


def test_aborted_egress_fails_the_recording_too(env: Env) -> None:
    call_id = recording_call(env.sessions)
    asyncio.run(env.recorder.step())
    env.webhook("EG_TR_caller", "egress_ended", "aborted", error="start signal not received")
    assert env.call(call_id).recording_error == "caller track: start signal not received"


def test_an_egress_that_stops_answering_is_lost_while_the_call_goes_on(env: Env) -> None:
    call_id = recording_call(env.sessions)
    asyncio.run(env.recorder.step())
    env.egress.answering = False  # egress was killed: livekit-server still says ACTIVE, no webhook comes
    asyncio.run(env.recorder.sweep())
    assert env.call(call_id).recording_status == "recording"  # one unanswered probe is not enough
    env.clock.advance(0.6)  # past recording_probe_interval_s: the next sweep probes again
    asyncio.run(env.recorder.sweep())
    call = env.call(call_id)
    assert call.recording_status == "failed"
    assert call.recording_error in (
        "caller track: egress stopped responding",
        "agent track: egress stopped responding",
    )
    assert {r.status for r in env.rows(call_id).values()} == {"lost"}
    assert (call.status, call.end_reason) == ("in_progress", None)
    assert webhooks(env.sessions, call_id) == ["call.answered", "recording.failed"]


def test_a_probe_answered_again_starts_the_count_over(env: Env) -> None:
    call_id = recording_call(env.sessions)
    asyncio.run(env.recorder.step())
    for answering in (False, True, False, True):
        env.egress.answering = answering
        asyncio.run(env.recorder.sweep())
        env.clock.advance(0.6)
    assert env.call(call_id).recording_status == "recording"


def test_an_egress_outliving_its_call_is_stopped_then_lost_if_it_never_ends(env: Env) -> None:
    call_id = recording_call(env.sessions)
    asyncio.run(env.recorder.step())
    end_call(env.sessions, call_id, ago_s=3)
    asyncio.run(env.recorder.sweep())
    assert sorted(env.egress.stopped) == ["EG_TR_agent", "EG_TR_caller"]
    assert env.call(call_id).recording_status == "recording"
    with env.sessions() as s:  # the stop was asked longer ago than recording_lost_after_s
        for row in rs.egresses(s, s.get(Call, call_id)).values():  # type: ignore[arg-type]
            row.stop_requested_at = datetime.now(UTC) - timedelta(seconds=6)
        s.commit()
    asyncio.run(env.recorder.sweep())
    call = env.call(call_id)
    assert call.recording_status == "failed" and "egress stopped responding" in (call.recording_error or "")
    assert (call.status, call.end_reason) == ("ended", "customer_hangup")


def test_a_stop_nobody_answers_loses_the_recording_at_once(env: Env) -> None:
    call_id = recording_call(env.sessions)
    asyncio.run(env.recorder.step())
    end_call(env.sessions, call_id, ago_s=3)
    env.egress.stop_answers = False
    asyncio.run(env.recorder.sweep())
    assert env.call(call_id).recording_error in (
        "caller track: egress stopped responding",
        "agent track: egress stopped responding",
    )


def test_a_call_that_ends_before_its_tracks_are_recorded_says_so(env: Env) -> None:
    call_id = recording_call(env.sessions)
    end_call(env.sessions, call_id)
    call = env.call(call_id)
    assert call.recording_status == "failed"
    assert call.recording_error == "the call ended before its recording started"


def _complete(env: Env, call_id: str, paths: dict[str, str]) -> None:
    """Both track egresses complete: the caller's from T0 (4 s), the agent's from T0 + 0.8 s (3 s)."""
    with env.sessions() as s:
        spans = (
            ("caller", "TR_caller", T0, T0 + 4_000_000_000),
            ("agent", "TR_agent", T0 + 800_000_000, T0 + 3_800_000_000),
        )
        for role, track, start, end in spans:
            row = rs.egresses(s, s.get(Call, call_id))[role]  # type: ignore[arg-type]
            rs.apply_egress(
                s,
                row,
                state(
                    row.egress_id,
                    "complete",
                    track_id=track,
                    filename=paths[track],
                    started_ns=start,
                    ended_ns=end,
                ),
            )
        s.commit()


def test_complete_tracks_are_merged_stored_and_announced_and_the_track_files_removed(env: Env) -> None:
    call_id = recording_call(env.sessions, layout="mixed")
    asyncio.run(env.recorder.step())
    paths = dict(env.egress.started)
    tone_track(Path(paths["TR_caller"]), freq=440, bursts=[0.5, 1.5, 2.5], length_s=4)
    tone_track(Path(paths["TR_agent"]), freq=1000, bursts=[0.5, 1.5], length_s=3)
    end_call(env.sessions, call_id)
    _complete(env, call_id, paths)
    assert env.call(call_id).recording_status == "processing"
    asyncio.run(env.recorder.step())
    call = env.call(call_id)
    assert call.recording_status == "ready", call.recording_error
    assert call.recording_location == f"{call.tenant_id}/{call_id}.ogg"
    stored = env.settings.recordings_path / call.recording_location
    assert stored.is_file() and stored.stat().st_size == call.recording_size_bytes
    assert abs((call.recording_duration_ms or 0) - 4000) <= 20
    assert call.recording_started_at == datetime.fromtimestamp(T0 / 1e9, UTC)
    assert decode(stored).channels.shape[0] == 1  # the profile's layout: mixed
    assert webhooks(env.sessions, call_id) == ["call.answered", "call.ended", "recording.ready"]
    assert not any((env.settings.recordings_path / ".tracks" / call_id).glob("*"))


def test_the_agents_first_words_from_the_worker_start_the_recording_and_are_removed_after(env: Env) -> None:
    # the agent greeted from T0 - 0.2 s (a 1 kHz burst at once, then another at T0 + 1.3 s), before
    # the phone's track was recorded; its track's egress started at T0 + 0.8 s and holds the rest:
    # the second burst, 0.5 s into its file
    call_id = recording_call(env.sessions, layout="dual")
    asyncio.run(env.recorder.step())
    paths = dict(env.egress.started)
    tone_track(Path(paths["TR_caller"]), freq=440, bursts=[2.5], length_s=4)
    tone_track(Path(paths["TR_agent"]), freq=1000, bursts=[0.5], length_s=3)
    rate = 8000
    said = np.zeros(int(1.2 * rate), dtype=np.int16)
    said[: int(0.2 * rate)] = (
        0.5 * 32767 * np.sin(2 * np.pi * 1000 * np.arange(int(0.2 * rate)) / rate)
    ).astype(np.int16)
    data = {
        "started_at": (T0 - 200_000_000) / 1e9,
        "sample_rate": rate,
        "pcm16": base64.b64encode(said.tobytes()).decode(),
    }
    with env.sessions() as s:
        call = s.get(Call, call_id)
        assert call is not None
        ingest_worker_events(
            s,
            [
                {
                    "event_id": "lead-1",
                    "room": call.room_name,
                    "type": lead_in.EVENT,
                    "data": lead_in.keep(env.settings.recordings_path, "lead-1", data),
                }
            ],
        )
    end_call(env.sessions, call_id)
    _complete(env, call_id, paths)
    asyncio.run(env.recorder.step())
    call = env.call(call_id)
    assert call.recording_status == "ready", call.recording_error
    # the file starts with the agent's first words: 0.2 s before T0, within the tenths of a
    # millisecond a float of seconds keeps
    assert call.recording_started_at is not None
    assert abs(call.recording_started_at.timestamp() * 1e9 - (T0 - 200_000_000)) < 1e5
    rec = decode(env.settings.recordings_path / (call.recording_location or ""))
    assert [round(t, 2) for t in onsets(rec, 1)] == [0.0, 1.5]  # the greeting's burst, then egress's
    assert [round(t, 2) for t in onsets(rec, 0)] == [2.7]  # the caller's, at T0 + 2.5 s
    assert not any((env.settings.recordings_path / ".lead-ins").glob("*"))
    assert not any((env.settings.recordings_path / ".tracks" / call_id).glob("*"))


def test_retention_deletes_expired_recordings_only(env: Env) -> None:
    old, new = recording_call(env.sessions), recording_call(env.sessions)
    root = env.settings.recordings_path
    with env.sessions() as s:
        for call_id, age in ((old, 31), (new, 29)):
            call = s.get(Call, call_id)
            assert call is not None
            (root / call.tenant_id).mkdir(parents=True, exist_ok=True)
            (root / call.tenant_id / f"{call_id}.ogg").write_bytes(b"OggS")
            call.recording_status, call.recording_location = "ready", f"{call.tenant_id}/{call_id}.ogg"
            call.recording_ended_at = datetime.now(UTC) - timedelta(days=age)
        s.commit()
    settings = env.settings.model_copy(update={"recording_retention_days": 30})
    assert asyncio.run(Recorder(settings, env.sessions, env.egress).apply_retention()) == 1
    gone, kept = env.call(old), env.call(new)
    assert (gone.recording_status, gone.recording_location) == ("deleted", None) and gone.recording_deleted_at
    assert not (root / gone.tenant_id / f"{old}.ogg").exists()
    assert kept.recording_status == "ready" and (root / kept.tenant_id / f"{new}.ogg").is_file()


def test_retention_deletes_the_agents_first_words_left_by_calls_never_merged(env: Env) -> None:
    folder = env.settings.recordings_path / ".lead-ins"
    folder.mkdir(parents=True)
    stale, fresh = folder / "ev_old.wav", folder / "ev_new.wav"
    for f in (stale, fresh):
        f.write_bytes(b"RIFF")
    day_ago = time.time() - 24 * 3600 - 60
    os.utime(stale, (day_ago, day_ago))
    asyncio.run(Recorder(env.settings, env.sessions, env.egress).apply_retention())
    assert (stale.exists(), fresh.exists()) == (False, True)
