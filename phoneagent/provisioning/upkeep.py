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

from phoneagent.calls.passes import pass_failed
from phoneagent.clock import Clock, SystemClock
from phoneagent.errors import TelephonyError
from phoneagent.provisioning.reconcile import reconcile
from phoneagent.telephony.interface import SipProvisioning

log = logging.getLogger("phoneagent.provisioning")

CONFIRM_S = 3.0  # a row found missing is checked again this soon


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
        self._suspects: set[str] = set()  # rows found missing once: re-created if missing again

    def check_once(self) -> list[str]:
        """Re-create what LiveKit lacks; the ids of the rows whose objects were re-created.

        A row is re-created only when two checks in a row find it missing: a trunk or rule the API
        is creating or deleting at this moment (its LiveKit object and its row change a moment
        apart) is missing from one check only."""
        with self._sessions() as session:
            seen = reconcile(session, self._lk, agent_name=self._agent_name, repair=False)
            confirmed = set(seen.missing) & self._suspects
            self._suspects = set(seen.missing) - confirmed
            if not confirmed:
                return []
            report = reconcile(
                session,
                self._lk,
                agent_name=self._agent_name,
                repair=True,
                delete_orphans=False,
                only=confirmed,
            )
        recreated = [row_id for row_id in report.missing if row_id in confirmed]
        self.recreated += len(recreated)
        log.warning(
            "re-created SIP trunks and dispatch rules missing from LiveKit (was its Redis emptied?)",
            extra={"rows": recreated, "recreated_total": self.recreated},
        )
        return recreated

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
            except Exception:  # noqa: BLE001 - a refusal, a bad row, the database: the next check retries
                pass_failed(log, "provisioning check")
            # a suspect is confirmed (or cleared) soon, not a whole interval later
            await self._clock.sleep(CONFIRM_S if self._suspects else self._interval_s)
