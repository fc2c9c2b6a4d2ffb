"""LiveKit's signed webhooks become phoneagent's LiveKitEvent at the telephony seam, or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from livekit import api

from phoneagent.config import Settings
from phoneagent.telephony.webhooks import LiveKitEvent, verified_event
from tests.peers.livekit_events import signed_headers, sip_participant_event

pytestmark = pytest.mark.unit

KEY, SECRET = "APIkey123", "s" * 40


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("LIVEKIT_API_KEY", KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    return Settings(_env_file=None, state_dir=tmp_path)


def test_a_signed_sip_event_is_read_into_phoneagent_words(settings: Settings) -> None:
    body = sip_participant_event("EV_1", "participant_left", "dsp_1_+1415_abc", "SDR_1", at=1_800_000_000)
    event = verified_event(settings, body, signed_headers(body, KEY, SECRET)["Authorization"])
    assert event is not None
    assert (event.id, event.type, event.created_at, event.room) == (
        "EV_1",
        "participant_left",
        1_800_000_000,
        "dsp_1_+1415_abc",
    )
    assert event.participant_kind == "sip" and event.participant_attributes["sip.ruleID"] == "SDR_1"
    assert event.payload["participant"]["disconnectReason"] == "CLIENT_INITIATED"
    assert event.egress is None


def test_an_unsigned_forged_or_garbled_body_is_no_event(settings: Settings) -> None:
    body = sip_participant_event("EV_1", "participant_joined", "room", "SDR_1")
    assert verified_event(settings, body, "") is None
    assert verified_event(settings, body, signed_headers(body, KEY, "x" * 40)["Authorization"]) is None
    tampered = body.replace("SDR_1", "SDR_2")
    assert verified_event(settings, tampered, signed_headers(body, KEY, SECRET)["Authorization"]) is None
    assert verified_event(settings, "{nope", signed_headers("{nope", KEY, SECRET)["Authorization"]) is None


def test_an_egress_event_names_its_room_and_track_state() -> None:
    info = api.EgressInfo(egress_id="EG_1", room_name="call-x", status=api.EgressStatus.EGRESS_COMPLETE)
    event = LiveKitEvent.from_webhook(api.WebhookEvent(id="EV_2", event="egress_ended", egress_info=info))
    assert event.room == "call-x" and event.participant_kind is None
    assert event.egress is not None and (event.egress.egress_id, event.egress.status) == ("EG_1", "complete")


def test_an_agent_is_not_taken_for_a_phone() -> None:
    ev = api.WebhookEvent(
        id="EV_3",
        event="participant_joined",
        room=api.Room(name="call-x"),
        participant=api.ParticipantInfo(identity="agent", kind=api.ParticipantInfo.Kind.AGENT),
    )
    assert LiveKitEvent.from_webhook(ev).participant_kind == "agent"
