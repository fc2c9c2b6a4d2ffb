"""The control plane's background work, started and stopped with the app: the dialer, the webhook
deliverer, the sweeper, the campaign runner, the recorder, the post-call extraction and the
provisioning upkeep.

Every replica on one PostgreSQL may run it: the dialer, the sweeper, the campaign runner, the
recorder and the provisioning upkeep run in the one replica that leads (``phoneagent.calls.leader``:
another takes over within seconds when it dies); the webhook deliverer and the extraction, leased row
by row, run in all. ``PHONEAGENT_BACKGROUND=false`` keeps a process to the API alone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from phoneagent.calls import extraction
from phoneagent.calls.campaigns import CampaignRunner
from phoneagent.calls.changes import CallChanges
from phoneagent.calls.extraction_llm import ChatCompletionsLLM, extraction_target
from phoneagent.calls.leader import Leadership, while_leading
from phoneagent.calls.outbound import Dialer
from phoneagent.calls.outbox import Deliverer, RetryPolicy
from phoneagent.calls.recorder import Recorder
from phoneagent.calls.sweeper import Sweeper
from phoneagent.config import Settings
from phoneagent.provisioning.upkeep import ProvisioningUpkeep
from phoneagent.telephony.calls import LiveKitCalls
from phoneagent.telephony.egress import LiveKitEgress
from phoneagent.telephony.sip import LiveKitSip

log = logging.getLogger("phoneagent.calls")


class Background:
    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], *, changes: CallChanges | None = None
    ) -> None:
        self.changes = changes or CallChanges()
        self.calls = LiveKitCalls(settings)
        self.dialer = Dialer(
            sessions,
            self.calls,
            agent_name=settings.agent_name,
            max_calls_per_tenant=settings.max_calls_per_tenant,
            on_change=self.changes.notify,
        )
        self.deliverer = Deliverer(
            sessions,
            policy=RetryPolicy(
                max_attempts=settings.webhook_max_attempts,
                base_s=settings.webhook_retry_base_s,
                ended_grace_s=settings.webhook_ended_grace_s,
            ),
            addresses=settings.webhook_address_policy(),
        )
        self.egress = LiveKitEgress(settings)
        self.recorder = Recorder(settings, sessions, self.egress)
        self.sweeper = Sweeper(
            sessions,
            self.calls,
            worker_lost_after_s=settings.worker_lost_after_s,
            media_node_lost_after_s=settings.media_node_lost_after_s,
            agent_arrival_after_s=settings.agent_arrival_after_s,
            interval_s=settings.sweep_interval_s,
            unserved_after_s=settings.unserved_after_s,
            unserved_reoffers=settings.unserved_reoffers,
            dialing=lambda: self.dialer.dialing,
            recorder=self.recorder,
            on_change=self.changes.notify,
        )
        self.campaigns = CampaignRunner(
            sessions, wake_dialer=self.dialer.wake.set, dialing=lambda: self.dialer.dialing
        )
        target = extraction_target(settings)
        timeout_s = settings.outcome_extraction_timeout_s
        self.extractor = extraction.Extractor(
            sessions,
            ChatCompletionsLLM(target, timeout_s=timeout_s) if target else None,
            policy=extraction.RetryPolicy(
                max_attempts=settings.outcome_extraction_max_attempts,
                base_s=settings.outcome_extraction_retry_base_s,
            ),
            timeout_s=timeout_s,
        )
        self.provisioning = ProvisioningUpkeep(
            sessions,
            LiveKitSip(settings),
            agent_name=settings.agent_name,
            interval_s=settings.provisioning_check_interval_s,
        )
        engine = sessions.kw["bind"]
        self.leadership = Leadership(engine, name=f"{settings.bind_host}:{settings.api_port}")
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        Work = Callable[[], Coroutine[Any, Any, None]]
        everywhere: dict[str, Work] = {"webhooks": self.deliverer.run, "extraction": self.extractor.run}
        leader_only: dict[str, Work] = {
            "dialer": self.dialer.run,
            "sweeper": self.sweeper.run,
            "campaigns": self.campaigns.run,
            "recorder": self.recorder.run,
            "provisioning": self.provisioning.run,
        }
        self._tasks.append(asyncio.create_task(self.leadership.run(), name="phoneagent-leadership"))
        for name, run in everywhere.items():
            self._tasks.append(asyncio.create_task(run(), name=f"phoneagent-{name}"))
        for name, run in leader_only.items():
            coro = while_leading(self.leadership, name, run)
            self._tasks.append(asyncio.create_task(coro, name=f"phoneagent-leading-{name}"))
        log.info(
            "background work started: webhooks and extraction here; dialer, sweeper, campaigns, "
            "recorder and provisioning while this replica leads"
        )

    def poke(self) -> None:
        """Something changed (a call queued, an event arrived): look now rather than at the next tick."""
        for ev in (
            self.dialer.wake,
            self.deliverer.wake,
            self.campaigns.wake,
            self.recorder.wake,
            self.extractor.wake,
        ):
            ev.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.dialer.aclose()
        await self.deliverer.aclose()
        await self.extractor.aclose()
        await self.calls.aclose()
        await self.egress.aclose()
