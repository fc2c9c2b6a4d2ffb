"""A trunk test: one short real call through a tenant's outbound trunk, told step by step.

``plan_test`` checks the request as a real call would be checked (the trunk is the tenant's and is on
LiveKit, the caller ID is one of its numbers, the number is one the tenant may call); ``run_test``
places the call (``telephony.trunk_probe``) and ``report`` turns what it saw into steps and, when it
failed, the likely cause with the section of ``sip/troubleshooting.md`` that explains it.

A test call is not a call record: no agent joins, no webhook is sent, the dialer's caps do not count
it (the API's call rate limit does).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from phoneagent.config import Settings
from phoneagent.db.models import OutboundTrunk
from phoneagent.errors import Conflict, InvalidField
from phoneagent.provisioning.resources import get_owned
from phoneagent.provisioning.tenants import number_policy_for
from phoneagent.telephony.trunk_probe import TONE_HZ, ProbeResult, probe_trunk

GUIDE = "sip/troubleshooting.md"


@dataclass(frozen=True)
class TrunkTestPlan:
    trunk_id: str
    trunk_name: str
    livekit_trunk_id: str
    address: str
    transport: str
    to: str
    from_number: str
    ring_timeout_s: int


@dataclass(frozen=True)
class Step:
    name: str  # invite | ringing | answer | audio_from_phone | audio_to_phone | dtmf | hangup
    result: str  # ok | failed | not_seen | not_echoed
    detail: str
    at_s: float | None = None  # seconds after the dial request


@dataclass(frozen=True)
class TrunkTestReport:
    passed: bool
    steps: list[Step]
    sip_status_code: int | None = None
    sip_status_reason: str | None = None
    cause: str | None = None
    see: str | None = None  # where in the docs the cause is explained
    room: str = ""
    duration_s: float = 0.0
    plan: TrunkTestPlan | None = field(default=None, compare=False)


def plan_test(
    session: Session,
    settings: Settings,
    tenant_id: str,
    trunk_id: str,
    *,
    to: str,
    from_number: str | None,
    ring_timeout_s: int,
) -> TrunkTestPlan:
    trunk = get_owned(session, OutboundTrunk, tenant_id, trunk_id)
    if not trunk.livekit_id:
        raise Conflict(f"outbound trunk {trunk.id} is not on LiveKit: run `phoneagent reconcile --repair`")
    if from_number and from_number not in trunk.numbers:
        raise InvalidField("from_number", "is not one of the outbound trunk's numbers")
    caller = from_number or (trunk.numbers[0] if trunk.numbers else "")
    if not caller:
        raise InvalidField("from_number", "the trunk has no numbers: give the caller ID to send")
    why = number_policy_for(session, settings, tenant_id).why_refused(to)
    if why is not None:
        raise InvalidField("to", why)
    return TrunkTestPlan(
        trunk.id,
        trunk.name,
        trunk.livekit_id,
        trunk.address,
        trunk.transport,
        to,
        caller,
        ring_timeout_s,
    )


async def run_test(settings: Settings, plan: TrunkTestPlan, *, listen_s: float = 3.0) -> TrunkTestReport:
    probe = await probe_trunk(
        settings,
        trunk_id=plan.livekit_trunk_id,
        to=plan.to,
        from_number=plan.from_number,
        ring_timeout_s=plan.ring_timeout_s,
        listen_s=listen_s,
    )
    return report(probe, plan)


def _see(section: str) -> str:
    return f"{GUIDE}#{section}"


# final SIP responses: (likely cause, troubleshooting section); 486 and the like mean the trunk works
SIP_CAUSES: dict[int, tuple[str, str]] = {
    401: (
        "the carrier asked for credentials and did not take ours: check auth_username and auth_password "
        "against the carrier's console",
        "403-forbidden-on-outbound-calls",
    ),
    403: (
        "the carrier refused the call: a wrong auth_username/auth_password, a caller ID (--from, the "
        "trunk's numbers) the account may not use or has not verified, or this host's public address "
        "missing from the carrier's IP access list",
        "403-forbidden-on-outbound-calls",
    ),
    404: (
        "the carrier does not know the number or the trunk: the number's format (phoneagent dials +E.164), "
        "a termination address that is not your trunk's, or a destination your account cannot reach",
        "404-not-found-on-outbound-calls",
    ),
    408: (
        "the carrier gave up reaching the callee (408): try again or another number",
        "no-response-to-the-invite",
    ),
    480: (
        "the callee is unreachable now (480): the trunk reached the carrier's network; try another number",
        "busy-declined-or-unavailable",
    ),
    484: (
        "the carrier finds the number incomplete (484): check the number's format for this carrier",
        "404-not-found-on-outbound-calls",
    ),
    486: (
        "the callee is busy (486): the trunk works, the carrier reached the callee; try another number",
        "busy-declined-or-unavailable",
    ),
    488: (
        "no codec in common (488): allow G.711 (PCMU or PCMA) on the carrier's trunk",
        "codec-mismatch",
    ),
    503: (
        "the carrier, or a proxy on the way, cannot serve the call now (503): the trunk disabled on the "
        "carrier's side, no route or balance for this destination, or an outage; check the carrier's "
        "console and debugger, then try again",
        "503-service-unavailable",
    ),
    603: (
        "the callee declined the call (603): the trunk works, the carrier reached the callee",
        "busy-declined-or-unavailable",
    ),
}
SIP_CAUSES[407] = SIP_CAUSES[401]
SIP_CAUSES[415] = SIP_CAUSES[606] = SIP_CAUSES[488]
SIP_CAUSES[600] = SIP_CAUSES[486]

NO_MEDIA = (
    "the far end answered but no audio came from it: RTP from the carrier does not reach livekit-sip "
    "(nat_1_to_1_ip not the public address, the RTP port range closed in a firewall, a router's SIP ALG), "
    "or the callee itself is silent",
    "one-way-or-no-audio",
)


def _sip_cause(code: int) -> tuple[str, str]:
    if code in SIP_CAUSES:
        return SIP_CAUSES[code]
    if 500 <= code < 600:
        return SIP_CAUSES[503]
    return (f"the carrier refused the call with SIP {code}", "403-forbidden-on-outbound-calls")


def report(p: ProbeResult, plan: TrunkTestPlan | None = None) -> TrunkTestReport:
    """The steps of a test call and, if it failed, why it most likely did."""
    steps: list[Step] = []
    o = p.outcome
    where = f"{plan.address} over {plan.transport}" if plan else "the trunk's address"
    dialing = p.saw("dialing")
    if dialing is None and o.kind == "failed":
        steps.append(Step("invite", "failed", f"not sent: {o.detail}"))
        return TrunkTestReport(
            False, steps, cause=f"LiveKit did not place the call: {o.detail}", see=None, room=p.room
        )
    steps.append(Step("invite", "ok", f"sent to {where}", dialing if dialing is not None else 0.0))
    ringing = p.saw("ringing")
    if ringing is not None:
        steps.append(Step("ringing", "ok", "180/183: the far end is ringing", ringing))
    else:
        steps.append(Step("ringing", "not_seen", "no 180 Ringing or 183 Session Progress"))

    def done(
        passed: bool,
        cause: str | None = None,
        section: str | None = None,
        code: int | None = None,
        reason: str | None = None,
    ) -> TrunkTestReport:
        see = _see(section) if section else None
        return TrunkTestReport(passed, steps, code, reason, cause, see, p.room, p.ended_s, plan)

    if o.kind == "sip_final" and o.sip_status_code is not None:
        code, reason = o.sip_status_code, o.sip_status_reason or ""
        steps.append(Step("answer", "failed", f"SIP {code} {reason}".rstrip(), p.ended_s))
        cause, section = _sip_cause(code)
        return done(False, cause, section, code, reason or None)
    if o.kind == "no_answer":
        if ringing is None:
            steps.append(Step("answer", "failed", f"no response within {_ring(plan)} s", p.ended_s))
            cause = (
                "nothing answered the INVITE: the trunk's address, port or transport is wrong, its name "
                "does not resolve, or a firewall drops SIP on the way (or the carrier ignores INVITEs "
                "from addresses it does not know)"
            )
            return done(False, cause, "no-response-to-the-invite")
        steps.append(Step("answer", "failed", f"rang, not answered within {_ring(plan)} s", p.ended_s))
        cause = "the far end rang but nobody answered: the trunk works; call a number that answers"
        return done(False, cause, "busy-declined-or-unavailable")
    if o.kind != "answered":
        steps.append(Step("answer", "failed", o.detail, p.ended_s))
        return done(False, f"the call failed: {o.detail}")
    steps.append(Step("answer", "ok", "200 OK: answered", p.answered_s))
    a = p.audio
    heard = a.heard > 0
    if heard:
        steps.append(
            Step(
                "audio_from_phone",
                "ok",
                f"heard {a.heard * 20} ms of audio, peak {a.peak_dbfs:.0f} dBFS",
                a.first_heard_s,
            )
        )
    else:
        what = f"{a.frames * 20} ms of silence" if p.phone_track else "no audio track from the phone"
        steps.append(Step("audio_from_phone", "failed", f"nothing heard: {what}"))
    sent = f"sent a {TONE_HZ:.0f} Hz tone for {p.tone_sent_s:.1f} s"
    if a.tone:
        steps.append(
            Step("audio_to_phone", "ok", f"{sent}; it came back ({a.tone * 20} ms): media flows both ways")
        )
    else:
        steps.append(
            Step(
                "audio_to_phone",
                "not_echoed",
                f"{sent}; it did not come back (only an echoing callee sends it back)",
            )
        )
    if p.dtmf_sent:
        if p.dtmf_back:
            steps.append(Step("dtmf", "ok", f"sent {p.dtmf_sent}, got {p.dtmf_back} back (RFC 4733)"))
        else:
            steps.append(
                Step(
                    "dtmf",
                    "not_echoed",
                    f"sent {p.dtmf_sent}; none came back (only an echoing callee sends them)",
                )
            )
    if p.hung_up_by_phone_s is not None:
        steps.append(Step("hangup", "ok", "the far end hung up", p.hung_up_by_phone_s))
    else:
        steps.append(Step("hangup", "ok", "hung up (BYE)", p.ended_s))
    if not heard:
        return done(False, *NO_MEDIA)
    return done(True)


def _ring(plan: TrunkTestPlan | None) -> str:
    return str(plan.ring_timeout_s) if plan else "the ring timeout"
