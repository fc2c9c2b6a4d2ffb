"""Keeping LiveKit's SIP trunks and dispatch rules in step with the database, by itself.

LiveKit keeps trunks and rules in Redis. When Redis loses them (a restart without persistence, a
new Redis, a hand-made deletion), livekit-sip matches no rule and drops the callers' INVITEs while
the database still lists everything. The control plane's background work checks at start and then
every ``provisioning_check_interval_s``, and re-creates what is missing (a warning names each one).
It never deletes: an object tagged as phoneagent's but without a row may belong to another
database on the same LiveKit; ``phoneagent reconcile --repair`` deletes those when asked.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.orm import Session, sessionmaker

from phoneagent.clock import Clock, SystemClock
from phoneagent.errors import TelephonyError
from phoneagent.provisioning.reconcile import reconcile
from phoneagent.telephony.interface import SipProvisioning

log = logging.getLogger("phoneagent.provisioning")


class ProvisioningUpkeep:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        lk: SipProvisioning,
        *,
        agent_name: str,
        interval_s: float,
        clock: Clock | None = None,
    ) -> None:
        self._sessions = sessions
        self._lk = lk
        self._agent_name = agent_name
        self._interval_s = interval_s
        self._clock = clock or SystemClock()
        self.recreated = 0  # LiveKit objects re-created since start
        self._unreachable = False

    def check_once(self) -> list[str]:
        """Re-create what LiveKit lacks; the ids of the rows whose objects were re-created."""
        with self._sessions() as session:
            report = reconcile(
                session, self._lk, agent_name=self._agent_name, repair=True, delete_orphans=False
            )
        if report.missing:
            self.recreated += len(report.missing)
            log.warning(
                "re-created SIP trunks and dispatch rules missing from LiveKit (was its Redis emptied?)",
                extra={"rows": report.missing, "recreated_total": self.recreated},
            )
        return report.missing

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.check_once)
                if self._unreachable:
                    log.info("LiveKit answers again: SIP trunks and dispatch rules checked")
                self._unreachable = False
            except TelephonyError as exc:
                if not self._unreachable:  # once per outage, not once per check
                    log.warning(
                        "cannot check SIP trunks and dispatch rules on LiveKit", extra={"error": str(exc)}
                    )
                self._unreachable = True
            await self._clock.sleep(self._interval_s)
