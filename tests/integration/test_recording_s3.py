"""Recordings in S3-compatible object storage, against a real S3 server: MinIO, built from its Go
module (cached by version) and run on loopback. The merged recording is uploaded by the control plane,
served tenant-scoped with byte ranges relayed from the object store, deleted (idempotently), and
expired by retention; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from phoneagent.api.app import create_app
from phoneagent.calls import recording_state as rs
from phoneagent.calls.recorder import Recorder
from phoneagent.config import Settings
from phoneagent.db.models import Call
from phoneagent.provisioning.keys import create_key
from phoneagent.recording.storage import S3Store
from phoneagent.stack.paths import StackPaths
from tests.db_fixtures import app_state
from tests.integration.recording_helpers import T0, FakeEgress, end_call, recording_call, state, webhooks
from tests.peers.minio import TempMinio
from tests.peers.recording import decode, tone_track
from tests.stack_fixtures import TEST_PORTS

BUCKET = "calls"
_runs = itertools.count()


@pytest.fixture(scope="module")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TempMinio]:
    paths = StackPaths.from_settings(Settings())  # the binary is cached like the stack's, by version
    server = TempMinio(paths, tmp_path_factory.mktemp("minio"), TEST_PORTS["minio_port"]).start()
    try:
        server.make_bucket(BUCKET)
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_settings(minio: TempMinio, db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        recordings_dir=tmp_path / "rec",
        database_url=db_url,
        background=False,
        recording_storage="s3",
        s3_bucket=BUCKET,
        s3_prefix=f"rec-{tmp_path.name}/",
        s3_endpoint=minio.endpoint,
        s3_access_key=minio.access_key,
        s3_secret_key=SecretStr(minio.secret_key),
    )


@pytest.fixture
def app_client(s3_settings: Settings) -> Iterator[TestClient]:
    app = create_app(s3_settings)
    with TestClient(app) as c:
        yield c
    app.state.engine.dispose()


def _record(settings: Settings, client: TestClient, tmp_path: Path) -> str:
    """A call recorded to the end: two track files, both egresses complete, merged and uploaded."""
    sessions = app_state(client).sessions
    egress = FakeEgress(settings, suffix=f"_{next(_runs)}")  # egress ids are unique, as egress's are
    recorder = Recorder(settings, sessions, egress)
    call_id = recording_call(sessions)
    asyncio.run(recorder.step())
    paths = dict(egress.started)
    tone_track(Path(paths["TR_caller"]), freq=440, bursts=[0.5, 1.5, 2.5], length_s=3)
    tone_track(Path(paths["TR_agent"]), freq=1000, bursts=[0.2, 1.2], length_s=2.5)
    end_call(sessions, call_id)
    with sessions() as s:
        rows = rs.egresses(s, s.get(Call, call_id))
        for role, track, start in (("caller", "TR_caller", T0), ("agent", "TR_agent", T0 + 500_000_000)):
            done = state(
                rows[role].egress_id,
                "complete",
                started_ns=start,
                ended_ns=T0 + 3_000_000_000,
                filename=paths[track],
            )
            rs.apply_egress(s, rows[role], done)
        s.commit()
    asyncio.run(recorder.step())
    return call_id


def test_recording_is_uploaded_served_with_ranges_tenant_scoped_and_deleted(
    s3_settings: Settings, app_client: TestClient, tmp_path: Path
) -> None:
    c = app_client
    call_id = _record(s3_settings, c, tmp_path)
    with app_state(c).sessions() as s:
        acme, _ = create_key(s, tenant_name="acme")
    with app_state(c).sessions() as s:
        other, _ = create_key(s, tenant_name="other")
    h, h_other = {"Authorization": f"Bearer {acme}"}, {"Authorization": f"Bearer {other}"}

    detail = c.get(f"/calls/{call_id}", headers=h).json()
    assert detail["recording_status"] == "ready", detail["recording_error"]
    location = detail["recording_location"]
    tenant = location.split("/")[-2]
    assert location == f"s3://{BUCKET}/{s3_settings.s3_prefix}{tenant}/{call_id}.ogg"
    store = S3Store(s3_settings)
    assert store.size(location) == detail["recording_size_bytes"]
    assert not any((s3_settings.recordings_path).rglob("*.ogg"))  # nothing kept locally
    assert "recording.ready" in webhooks(app_state(c).sessions, call_id)

    url = f"/calls/{call_id}/recording"
    whole = c.get(url, headers=h)
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/ogg"
    assert whole.headers["accept-ranges"] == "bytes"
    body = whole.content
    assert len(body) == detail["recording_size_bytes"] and body[:4] == b"OggS"
    (tmp_path / "got.ogg").write_bytes(body)
    rec = decode(tmp_path / "got.ogg")
    assert rec.channels.shape[0] == 2 and abs(rec.duration_s - 3.0) < 0.03
    size = len(body)
    ranges = (
        ("bytes=0-99", body[:100], 0, 99),
        ("bytes=100-", body[100:], 100, size - 1),
        ("bytes=-50", body[-50:], size - 50, size - 1),
        (f"bytes=10-{size + 999}", body[10:], 10, size - 1),
    )
    for rng, want, start, end in ranges:
        r = c.get(url, headers={**h, "Range": rng})
        assert r.status_code == 206 and r.content == want, rng
        assert r.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert int(r.headers["content-length"]) == len(want)
    r = c.get(url, headers={**h, "Range": f"bytes={size}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
    assert (
        c.get(url, headers={**h, "Range": "bytes=0-9"}, params={"download": 1})
        .headers["content-disposition"]
        .startswith("attachment")
    )

    # another tenant: no such call, whatever it asks
    assert c.get(url, headers=h_other).status_code == 404
    assert c.delete(url, headers=h_other).status_code == 404
    assert store.size(location) == size

    assert c.delete(url, headers=h).status_code == 204
    assert store.size(location) is None  # the object is gone
    assert c.get(url, headers=h).status_code == 404
    assert c.delete(url, headers=h).status_code == 204
    assert c.get(f"/calls/{call_id}", headers=h).json()["recording_status"] == "deleted"


def test_an_object_gone_from_the_bucket_is_404_not_an_error(
    s3_settings: Settings, app_client: TestClient, tmp_path: Path
) -> None:
    call_id = _record(s3_settings, app_client, tmp_path)
    with app_state(app_client).sessions() as s:
        key, _ = create_key(s, tenant_name="acme")
        call = s.get(Call, call_id)
        assert call is not None and call.recording_location
        S3Store(s3_settings).delete(call.recording_location)
    r = app_client.get(f"/calls/{call_id}/recording", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 404 and "gone from storage" in r.json()["error"]


def test_retention_deletes_expired_objects_and_keeps_the_rest(
    s3_settings: Settings, app_client: TestClient, tmp_path: Path
) -> None:
    sessions = app_state(app_client).sessions
    old = _record(s3_settings, app_client, tmp_path / "a")
    new = _record(s3_settings, app_client, tmp_path / "b")
    with sessions() as s:
        locations = {cid: s.get(Call, cid).recording_location for cid in (old, new)}
        s.get(Call, old).recording_ended_at = datetime.now(UTC) - timedelta(days=8)
        s.commit()
    settings = s3_settings.model_copy(update={"recording_retention_days": 7})
    assert asyncio.run(Recorder(settings, sessions, FakeEgress(settings)).apply_retention()) == 1
    store = S3Store(s3_settings)
    assert store.size(locations[old]) is None and store.size(locations[new])
    with sessions() as s:
        assert s.get(Call, old).recording_status == "deleted"
        assert s.get(Call, new).recording_status == "ready"
