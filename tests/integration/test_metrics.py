"""The control plane's Prometheus metrics, parsed by prometheus-client's own parser: live calls by
status, ended calls by end reason, the dialer queue, the webhook outbox, the workers' events' ingest
lag; and a database that does not answer (phoneagent_database_up 0, never a 500)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from phoneagent.api.app import create_app
from phoneagent.db.models import Call, Tenant, WebhookDelivery, WebhookEndpoint
from phoneagent.stack.services import Stack
from phoneagent.telephony.client import worker_token
from tests.db_fixtures import api_settings, app_state


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_metrics_count_calls_queue_and_outbox_from_the_database(client: TestClient) -> None:
    before = _samples(client)
    assert before[("phoneagent_database_up", ())] == 1
    assert before[("phoneagent_calls", (("status", "queued"),))] == 0
    with app_state(client).sessions() as s:
        tenant = Tenant(name="metrics")
        s.add(tenant)
        s.flush()
        statuses = ["queued"] * 3 + ["in_progress"] * 2 + ["ended"] * 4
        reasons = [None] * 5 + ["customer_hangup", "customer_hangup", "busy", "over_capacity"]
        for status, reason in zip(statuses, reasons, strict=True):
            s.add(Call(tenant_id=tenant.id, direction="outbound", status=status, end_reason=reason))
        endpoint = WebhookEndpoint(tenant_id=tenant.id, url="https://example.com/h", secret="x")
        s.add(endpoint)
        s.flush()
        old = datetime.now(UTC) - timedelta(seconds=90)
        for i, status in enumerate(["pending", "pending", "delivered"]):
            s.add(
                WebhookDelivery(
                    tenant_id=tenant.id,
                    endpoint_id=endpoint.id,
                    event_id=f"ev{i}",
                    event_type="call.ended",
                    payload={},
                    status=status,
                    created_at=old if i == 0 else datetime.now(UTC),
                )
            )
        s.commit()
    after = _samples(client)
    assert after[("phoneagent_calls", (("status", "queued"),))] == 3
    assert after[("phoneagent_calls", (("status", "in_progress"),))] == 2
    assert after[("phoneagent_calls_ended_total", (("end_reason", "customer_hangup"),))] == 2
    assert after[("phoneagent_calls_ended_total", (("end_reason", "over_capacity"),))] == 1
    assert after[("phoneagent_dialer_queue_depth", ())] == 3
    assert after[("phoneagent_webhook_outbox_depth", ())] == 2
    assert 85 <= after[("phoneagent_webhook_outbox_oldest_age_seconds", ())] < 600


def test_a_database_that_does_not_answer_is_reported_not_raised(stack: Stack, tmp_path: Path) -> None:
    gone = f"sqlite:///{tmp_path / 'no-such-dir' / 'phoneagent.db'}"
    app = create_app(api_settings(stack, gone))
    with TestClient(app) as c:
        samples = _samples(c)
        assert samples[("phoneagent_database_up", ())] == 0
        assert not any(name == "phoneagent_calls" for name, _ in samples)
        ready = c.get("/health/ready")
        assert ready.status_code == 503 and "database is unavailable" in ready.json()["error"], ready.text
    app.state.engine.dispose()


def test_a_worker_events_lag_is_measured_once_when_it_is_stored(client: TestClient, stack: Stack) -> None:
    """An event a worker kept in its spool for two minutes arrives two minutes late; its resend (the
    worker never saw the answer) is not measured again, nor an event that carries no time."""
    w = {"Authorization": f"Bearer {worker_token(stack.settings)}"}
    lag = "phoneagent_worker_event_lag_seconds"
    before = _samples(client)
    spooled = {"event_id": "lag-1", "room": "call-lag", "type": "answered", "at": time.time() - 120}
    untimed = {"event_id": "lag-2", "room": "call-lag", "type": "answered"}
    for _ in range(2):
        r = client.post("/webhooks/worker", json={"events": [spooled, untimed]}, headers=w)
        assert r.status_code == 200 and r.json()["accepted"] == ["lag-1", "lag-2"], r.text
    assert r.json()["new"] == 0  # the second time, both were stored already
    after = _samples(client)
    assert after[(f"{lag}_count", ())] == before[(f"{lag}_count", ())] + 1
    assert 120 <= after[(f"{lag}_sum", ())] - before[(f"{lag}_sum", ())] < 180
    assert after[(f"{lag}_bucket", (("le", "60.0"),))] == before[(f"{lag}_bucket", (("le", "60.0"),))]
    assert after[(f"{lag}_bucket", (("le", "300.0"),))] == before[(f"{lag}_bucket", (("le", "300.0"),))] + 1
