"""Shared by the recording tests: a call of a recording agent profile in a real database, and a fake
egress (a subclass of the real adapter, answering as the test says) for the recorder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from phoneagent.calls import lifecycle as lc
from phoneagent.calls.records import own_event
from phoneagent.config import Settings
from phoneagent.db.models import AgentProfile, Call, Tenant, WebhookDelivery, WebhookEndpoint
from phoneagent.errors import EgressUnavailable
from phoneagent.telephony.egress import CallTracks, EgressState, LiveKitEgress

T0 = 1_795_600_000_000_000_000


class FakeEgress(LiveKitEgress):
    def __init__(self, settings: Settings, *, suffix: str = "") -> None:
        super().__init__(settings)
        self.suffix = suffix  # egress ids are EG_<track id><suffix>
        self.tracks_in_room: CallTracks | None = CallTracks(caller="TR_caller", agent="TR_agent")
        self.running = True  # egress takes requests
        self.answering: bool | None = True  # its handlers answer the probe
        self.stop_answers = True
        self.states: dict[str, EgressState] = {}
        self.started: list[tuple[str, str]] = []  # (track id, file path)
        self.stopped: list[str] = []

    async def tracks(self, room: str) -> CallTracks | None:
        return self.tracks_in_room

    async def start_track(self, *, room: str, track_id: str, filepath: str) -> EgressState:
        if not self.running:
            raise EgressUnavailable("no egress took the request (no response from servers)")
        self.started.append((track_id, filepath))
        st = state(f"EG_{track_id}{self.suffix}", "starting", track_id=track_id)
        self.states[st.egress_id] = st
        return st

    async def state(self, egress_id: str) -> EgressState | None:
        return self.states.get(egress_id)

    async def answers(self, egress_id: str) -> bool | None:
        return self.answering

    async def stop(self, egress_id: str) -> bool:
        self.stopped.append(egress_id)
        return self.stop_answers


def state(
    egress_id: str,
    status: str,
    *,
    track_id: str = "",
    error: str = "",
    filename: str = "",
    started_ns: int | None = None,
    ended_ns: int | None = None,
) -> EgressState:
    return EgressState(
        egress_id=egress_id,
        status=status,
        error=error,
        room="call-rec",
        track_id=track_id,
        filename=filename,
        file_started_ns=started_ns,
        file_ended_ns=ended_ns,
        file_duration_ns=(ended_ns - started_ns) if started_ns and ended_ns else None,
        file_size=1000 if status == "complete" else None,
    )


def recording_call(
    sessions: sessionmaker[Session],
    *,
    tenant: str = "acme",
    fmt: str = "ogg",
    layout: str = "dual",
    hook_url: str = "http://127.0.0.1:9/hooks",
) -> str:
    """An inbound call of a recording profile, answered now (through the call's own event fold)."""
    with sessions() as s:
        t = s.scalar(select(Tenant).where(Tenant.name == tenant))
        if t is None:
            t = Tenant(name=tenant)
            s.add(t)
            s.flush()
            s.add(WebhookEndpoint(tenant_id=t.id, url=hook_url, secret="s" * 32, events=[]))
        agent = AgentProfile(
            tenant_id=t.id,
            name=f"rec-{datetime.now(UTC).timestamp()}",
            recording=True,
            recording_format=fmt,
            recording_layout=layout,
        )
        s.add(agent)
        s.flush()
        call = Call(
            tenant_id=t.id, direction="inbound", room_name=f"call-{agent.id}", agent_profile_id=agent.id
        )
        s.add(call)
        s.flush()
        own_event(s, call, "answered_seen", lc.Fact(datetime.now(UTC), "in_progress"), f"{call.id}:answered")
        s.commit()
        return call.id


def end_call(sessions: sessionmaker[Session], call_id: str, *, ago_s: float = 0.0) -> None:
    with sessions() as s:
        call = s.get(Call, call_id)
        assert call is not None
        at = datetime.now(UTC) - timedelta(seconds=ago_s)
        own_event(s, call, "hung_up", lc.Fact(at, "ended", "customer_hangup", lc.OBSERVED), f"{call_id}:end")
        s.commit()


def webhooks(sessions: sessionmaker[Session], call_id: str) -> list[str]:
    with sessions() as s:
        rows = s.scalars(select(WebhookDelivery.event_type).where(WebhookDelivery.call_id == call_id))
        return sorted(rows)


def write_file(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
