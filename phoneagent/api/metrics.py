"""The control plane's Prometheus metrics (``GET /metrics``), read at scrape time.

What the database holds is read when Prometheus scrapes, so every replica reports the same numbers
and nothing is lost with a restart: calls not yet ended by status, ended calls by end reason (a
counter: records are never deleted), the dialer's queue, the webhook outbox's depth and the age of
its oldest pending delivery. What only this process sees is kept in this process: how late LiveKit's
webhooks and the workers' call events arrive (ingest lag; a worker's events wait in its spool while the
control plane is unreachable), and the SIP trunks and rules the provisioning upkeep re-created. When the
database does not answer, ``phoneagent_database_up`` is 0 and the database's series are left out.

Counts only, no phone numbers or tenants: the endpoint needs no key (keep it on the internal network).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from phoneagent.db.models import Call, WebhookDelivery
from phoneagent.db.states import CallStatus

log = logging.getLogger("phoneagent.api")

LIVE_STATUSES: tuple[CallStatus, ...] = ("queued", "dialing", "ringing", "in_progress")
CONTENT_TYPE = CONTENT_TYPE_LATEST


class _Database(Collector):
    def __init__(self, sessions: sessionmaker[Session], recreated: Callable[[], int | None]) -> None:
        self._sessions = sessions
        self._recreated = recreated

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("phoneagent_database_up", "1 when the control plane's database answers")
        try:
            with self._sessions() as s:
                live: dict[str, int] = {
                    status: n
                    for status, n in s.execute(
                        select(Call.status, func.count())
                        .where(Call.status.in_(LIVE_STATUSES))
                        .group_by(Call.status)
                    ).tuples()
                }
                ended: dict[str | None, int] = {
                    reason: n
                    for reason, n in s.execute(
                        select(Call.end_reason, func.count())
                        .where(Call.status == "ended")
                        .group_by(Call.end_reason)
                    ).tuples()
                }
                pending, oldest = s.execute(
                    select(func.count(), func.min(WebhookDelivery.created_at)).where(
                        WebhookDelivery.status == "pending"
                    )
                ).one()
        except (OperationalError, InterfaceError) as exc:
            log.warning("metrics: database unavailable", extra={"error": type(exc.orig).__name__})
            up.add_metric([], 0)
            yield up
        else:
            up.add_metric([], 1)
            yield up
            calls = GaugeMetricFamily("phoneagent_calls", "Calls not yet ended, by status", labels=["status"])
            for status in LIVE_STATUSES:
                calls.add_metric([status], live.get(status, 0))
            yield calls
            total = CounterMetricFamily(
                "phoneagent_calls_ended", "Calls ended, by end reason", labels=["end_reason"]
            )
            for reason, count in sorted(ended.items(), key=lambda kv: kv[0] or ""):
                total.add_metric([reason or "unknown"], count)
            yield total
            yield GaugeMetricFamily(
                "phoneagent_dialer_queue_depth", "Calls queued for the dialer", value=live.get("queued", 0)
            )
            yield GaugeMetricFamily(
                "phoneagent_webhook_outbox_depth", "Webhook deliveries not yet delivered", value=pending
            )
            age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
            yield GaugeMetricFamily(
                "phoneagent_webhook_outbox_oldest_age_seconds",
                "Age of the oldest webhook delivery not yet delivered (0: none)",
                value=max(0.0, age),
            )
        recreated = self._recreated()
        if recreated is not None:
            yield CounterMetricFamily(
                "phoneagent_provisioning_recreated",
                "SIP trunks and dispatch rules re-created on LiveKit because they were missing there",
                value=recreated,
            )


class ControlPlaneMetrics:
    """One registry per app (tests make many apps in one process)."""

    def __init__(self, sessions: sessionmaker[Session], recreated: Callable[[], int | None]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_Database(sessions, recreated))
        self.ingest_lag = Histogram(
            "phoneagent_livekit_webhook_lag_seconds",
            "From LiveKit creating a webhook event to the control plane storing it",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.worker_event_lag = Histogram(
            "phoneagent_worker_event_lag_seconds",
            "From a worker's call event happening to the control plane storing it (spooled events late)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
            registry=self.registry,
        )

    def text(self) -> bytes:
        return generate_latest(self.registry)
