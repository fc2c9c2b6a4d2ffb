"""Campaigns: a list of numbers called under a concurrency cap, inside a calling window in each
callee's time zone, with retries for busy and unanswered numbers. Each attempt is an ordinary
outbound call record (``campaign_id`` set), dialed by the same dialer as any API call.

The runner is one loop: it settles contacts whose call has ended (done when answered; retried later
when the end reason is in ``retry_on`` and attempts are left; failed otherwise), then queues new
attempts while the campaign has fewer than ``concurrency`` calls queued or live, so the cap holds
from queue to hang-up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import get_args
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as pn_timezone
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from phoneagent.calls.outbound import LIVE, CallRequest, place_call, request_hangup
from phoneagent.calls.passes import run_passes
from phoneagent.db.models import Call, Campaign, CampaignContact
from phoneagent.db.states import ContactStatus
from phoneagent.errors import RequestError

log = logging.getLogger("phoneagent.calls")

CONTACT_STATES: tuple[ContactStatus, ...] = get_args(ContactStatus)


def callee_timezone(e164: str, default: str = "UTC") -> str:
    """The number's time zone when phonenumbers places it in exactly one; else ``default`` (the
    campaign's). A +1 toll-free number, or a prefix spanning zones, gets every NANP zone from
    phonenumbers in alphabetical order: taking the first (America/Adak) would run a 09:00 window at
    14:00 in New York."""
    try:
        zones = pn_timezone.time_zones_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return default
    known = [z for z in zones if z != pn_timezone.UNKNOWN_TIMEZONE]
    return known[0] if len(known) == 1 else default


def _hhmm(text: str) -> time:
    h, m = text.split(":")
    return time(int(h), int(m))


def next_window_start(now: datetime, zone: str, start: str, end: str) -> datetime | None:
    """None when ``now`` is inside the daily window [start, end) of local time in ``zone`` (a window
    whose end is before its start runs over midnight); else the UTC moment the window next opens."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    s, e, t = _hhmm(start), _hhmm(end), local.time()
    inside = (s <= t < e) if s < e else (t >= s or t < e) if s != e else True
    if inside:
        return None
    opening = datetime.combine(local.date(), s, tzinfo=tz)
    if opening <= local:
        opening = datetime.combine(local.date() + timedelta(days=1), s, tzinfo=tz)
    return opening.astimezone(UTC)


def counts(session: Session, campaign_id: str) -> dict[str, int]:
    by_state = dict(
        session.execute(
            select(CampaignContact.status, func.count())
            .where(CampaignContact.campaign_id == campaign_id)
            .group_by(CampaignContact.status)
        )
        .tuples()
        .all()
    )
    out: dict[str, int] = {state: int(by_state.get(state, 0)) for state in CONTACT_STATES}
    out["live_calls"] = live_calls(session, campaign_id)
    out["total"] = sum(int(by_state.get(state, 0)) for state in CONTACT_STATES)
    return out


def live_calls(session: Session, campaign_id: str) -> int:
    return int(
        session.scalar(
            select(func.count()).where(Call.campaign_id == campaign_id, Call.status.in_(("queued", *LIVE)))
        )
        or 0
    )


def cancel(session: Session, campaign: Campaign) -> None:
    """No new attempts; calls still queued are hung up; calls in progress go on to their end."""
    campaign.status = "cancelled"
    for contact in session.scalars(
        select(CampaignContact).where(
            CampaignContact.campaign_id == campaign.id, CampaignContact.status == "pending"
        )
    ):
        contact.status = "cancelled"
    for call in session.scalars(select(Call).where(Call.campaign_id == campaign.id, Call.status == "queued")):
        request_hangup(session, call)
    session.commit()


class CampaignRunner:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        wake_dialer: Callable[[], None],
        interval_s: float = 1.0,
        dialing: Callable[[], set[str]] = set,
    ) -> None:
        self._sessions = sessions
        self._wake_dialer = wake_dialer
        self._dialing = dialing  # calls the dialer has not recorded its answer for yet
        self._interval = interval_s
        self.wake = asyncio.Event()

    async def run(self) -> None:
        await run_passes(log, "campaign pass", self._pass, self.wake, self._interval)

    async def _pass(self) -> None:
        # read here, on the event loop that changes it, not in tick's thread
        if await asyncio.to_thread(self.tick, dialing=frozenset(self._dialing())):
            self._wake_dialer()

    def tick(self, now: datetime | None = None, *, dialing: frozenset[str] = frozenset()) -> int:
        """One pass over running campaigns; returns how many calls it queued."""
        now = now or datetime.now(UTC)
        queued = 0
        with self._sessions() as s:
            ids = s.scalars(select(Campaign.id).where(Campaign.status == "running")).all()
        for campaign_id in ids:
            with self._sessions() as s:
                campaign = s.get(Campaign, campaign_id)
                if campaign is None or campaign.status != "running":
                    continue
                self._settle(s, campaign, now, dialing)
                queued += self._queue(s, campaign, now)
                s.commit()
        return queued

    def _settle(self, s: Session, campaign: Campaign, now: datetime, dialing: frozenset[str]) -> None:
        calling = (
            s.execute(
                select(CampaignContact, Call)
                .join(Call, Call.id == CampaignContact.last_call_id)
                .where(
                    CampaignContact.campaign_id == campaign.id,
                    CampaignContact.status == "calling",
                    Call.status == "ended",
                )
            )
            .tuples()
            .all()
        )
        for contact, call in calling:
            if call.id in dialing:
                continue  # ended by LiveKit's events before the dialer wrote what the callee answered
            contact.last_end_reason = call.end_reason
            if call.answered_at is not None:
                contact.status = "done"
            elif call.end_reason in campaign.retry_on and contact.attempts < campaign.max_attempts:
                contact.status = "pending"
                contact.next_attempt_at = now + timedelta(seconds=campaign.retry_delay_s)
            else:
                contact.status = "failed"
        open_contacts = s.scalar(
            select(func.count()).where(
                CampaignContact.campaign_id == campaign.id, CampaignContact.status.in_(("pending", "calling"))
            )
        )
        if not open_contacts:
            campaign.status = "completed"
            log.info("campaign completed", extra={"campaign_id": campaign.id})

    def _queue(self, s: Session, campaign: Campaign, now: datetime) -> int:
        if campaign.status != "running":
            return 0
        free = campaign.concurrency - live_calls(s, campaign.id)
        if free <= 0:
            return 0
        due = s.scalars(
            select(CampaignContact)
            .where(
                CampaignContact.campaign_id == campaign.id,
                CampaignContact.status == "pending",
                CampaignContact.next_attempt_at <= now,
            )
            .order_by(CampaignContact.next_attempt_at, CampaignContact.id)
            .limit(free * 4)
        ).all()
        placed = 0
        for contact in due:
            if placed >= free:
                break
            opens = next_window_start(now, contact.timezone, campaign.window_start, campaign.window_end)
            if opens is not None:
                contact.next_attempt_at = opens  # outside the callee's calling hours: wait for them
                continue
            req = CallRequest(
                to=contact.number,
                agent_profile_id=campaign.agent_profile_id,
                outbound_trunk_id=campaign.outbound_trunk_id,
                from_number=campaign.from_number or None,
                ring_timeout_s=campaign.ring_timeout_s,
                metadata={"campaign_id": campaign.id, "variables": contact.variables},
                campaign_id=campaign.id,
            )
            key = f"campaign:{campaign.id}:{contact.id}:{contact.attempts + 1}"
            try:
                call, _ = place_call(s, campaign.tenant_id, req, idempotency_key=key)
            except RequestError as exc:  # e.g. the trunk or the agent profile was deleted
                contact.status, contact.last_end_reason = "failed", "failed"
                log.warning("campaign attempt refused: %s", exc.message, extra={"campaign_id": campaign.id})
                continue
            contact.attempts += 1
            contact.status = "calling"
            contact.last_call_id = call.id
            placed += 1
        return placed
