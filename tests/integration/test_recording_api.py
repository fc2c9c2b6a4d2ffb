"""The recording API through the app, on SQLite and PostgreSQL: a profile's format and layout (MP4 and
M4A refused, naming the encoder this egress build lacks), the recording's details on the call, and
DELETE /calls/{id}/recording: tenant-scoped, idempotent, refused while the recording is being made."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from phoneagent.api.app import create_app
from phoneagent.config import Settings
from phoneagent.db.models import Call
from phoneagent.provisioning.keys import create_key
from tests.db_fixtures import app_state
from tests.integration.recording_helpers import recording_call


@dataclass
class Api:
    client: TestClient
    settings: Settings
    acme: dict[str, str]
    other: dict[str, str]


@pytest.fixture
def rec_api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    settings = Settings(
        state_dir=tmp_path / "state", recordings_dir=tmp_path / "rec", database_url=db_url, background=False
    )
    app = create_app(settings)
    with app.state.sessions() as s:
        acme, _ = create_key(s, tenant_name="acme")
    with app.state.sessions() as s:
        other, _ = create_key(s, tenant_name="other")
    with TestClient(app) as c:
        yield Api(c, settings, {"Authorization": f"Bearer {acme}"}, {"Authorization": f"Bearer {other}"})
    app.state.engine.dispose()


@pytest.mark.parametrize("fmt", ["mp4", "m4a"])
def test_mp4_and_m4a_are_refused_naming_the_missing_aac_encoder(rec_api: Api, fmt: str) -> None:
    c, h = rec_api.client, rec_api.acme
    r = c.post("/agents", headers=h, json={"name": "rec", "recording": True, "recording_format": fmt})
    assert r.status_code == 422, r.text
    [d] = r.json()["detail"]
    assert d["field"] == "recording_format" and "AAC encoder" in d["reason"] and "faac" in d["reason"]
    ok = c.post("/agents", headers=h, json={"name": "rec", "recording": True})
    assert ok.status_code == 201 and ok.json()["recording_format"] == "ogg"
    r = c.patch(f"/agents/{ok.json()['id']}", headers=h, json={"recording_format": fmt})
    assert r.status_code == 422 and "AAC encoder" in r.json()["detail"][0]["reason"]
    assert c.get(f"/agents/{ok.json()['id']}", headers=h).json()["recording_format"] == "ogg"


def test_layout_is_dual_by_default_mixed_on_request_and_nothing_else(rec_api: Api) -> None:
    c, h = rec_api.client, rec_api.acme
    a = c.post("/agents", headers=h, json={"name": "rec", "recording": True}).json()
    assert a["recording_layout"] == "dual"
    r = c.patch(
        f"/agents/{a['id']}", headers=h, json={"recording_layout": "mixed", "recording_format": "ogg"}
    )
    assert r.status_code == 200 and r.json()["recording_layout"] == "mixed"
    assert c.patch(f"/agents/{a['id']}", headers=h, json={"recording_layout": "stereo"}).status_code == 422


def _ready(api_: Api, tenant: str = "acme") -> tuple[str, Path]:
    sessions = app_state(api_.client).sessions
    call_id = recording_call(sessions, tenant=tenant)
    with sessions() as s:
        call = s.get(Call, call_id)
        assert call is not None
        location = f"{call.tenant_id}/{call_id}.ogg"
        path = api_.settings.recordings_path / location
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"OggS" + bytes(range(256)) * 40)
        call.recording_status, call.recording_location = "ready", location
        call.recording_size_bytes, call.recording_ended_at = path.stat().st_size, datetime.now(UTC)
        s.commit()
    return call_id, path


def test_delete_recording_is_tenant_scoped_and_idempotent(rec_api: Api) -> None:
    c = rec_api.client
    call_id, path = _ready(rec_api)
    url = f"/calls/{call_id}/recording"
    # another tenant's call does not exist for this key: 404, and nothing is deleted
    r = c.delete(url, headers=rec_api.other)
    assert r.status_code == 404 and path.is_file()
    assert c.get(url, headers=rec_api.other).status_code == 404
    assert c.get(url, headers=rec_api.acme, params={}).status_code == 200
    r = c.delete(url, headers=rec_api.acme)
    assert r.status_code == 204 and r.content == b""
    assert not path.exists()
    assert c.get(url, headers=rec_api.acme).status_code == 404
    detail = c.get(f"/calls/{call_id}", headers=rec_api.acme).json()
    assert detail["recording_status"] == "deleted" and detail["recording_location"] is None
    assert detail["recording_deleted_at"] is not None
    assert c.delete(url, headers=rec_api.acme).status_code == 204  # again: nothing left, same answer
    assert c.delete("/calls/call_nope/recording", headers=rec_api.acme).status_code == 404


def test_a_recording_being_made_cannot_be_deleted(rec_api: Api) -> None:
    call_id = recording_call(app_state(rec_api.client).sessions)
    r = rec_api.client.delete(f"/calls/{call_id}/recording", headers=rec_api.acme)
    assert r.status_code == 409 and "still being made" in r.json()["error"]
    detail = rec_api.client.get(f"/calls/{call_id}", headers=rec_api.acme).json()
    assert detail["recording_status"] == "pending" and detail["recording_tracks"] == []
