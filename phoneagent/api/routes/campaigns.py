"""Campaigns: create with contacts, follow progress, pause, resume, cancel."""

from typing import Any

from fastapi import APIRouter, Request, status

from phoneagent.api import schemas as s
from phoneagent.api.deps import SessionDep, TenantDep
from phoneagent.api.ratelimit import RATE_LIMITED
from phoneagent.api.routes.resources import ERRORS, Cursor, Limit
from phoneagent.api.schemas_outbound import CampaignCreate, CampaignOut
from phoneagent.calls.campaigns import callee_timezone, cancel, counts
from phoneagent.db.models import AgentProfile, Campaign, CampaignContact, OutboundTrunk
from phoneagent.db.states import CampaignStatus
from phoneagent.errors import Conflict, InvalidField
from phoneagent.provisioning.resources import check_quota, get_owned, list_owned
from phoneagent.provisioning.tenants import number_policy_for

router = APIRouter(prefix="/campaigns", tags=["campaigns"], responses=ERRORS)


def _out(session: SessionDep, row: Campaign) -> CampaignOut:
    return CampaignOut.model_validate(
        {
            **CampaignOut.model_validate(row).model_dump(exclude={"progress"}),
            "progress": counts(session, row.id),
        }
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CampaignOut,
    summary="Start a campaign",
    responses=RATE_LIMITED,
)
def create(body: CampaignCreate, request: Request, session: SessionDep, tenant: TenantDep) -> Any:
    request.app.state.limits["campaign"].check(tenant, "campaign")
    settings = request.app.state.settings
    live = Campaign.status.in_(("running", "paused"))
    quota = settings.max_resources_per_tenant
    check_quota(session, Campaign, tenant, quota, "running or paused campaigns", live)
    numbers = number_policy_for(session, settings, tenant)
    for i, contact in enumerate(body.contacts):
        if (why := numbers.why_refused(contact.number)) is not None:
            raise InvalidField(f"contacts[{i}].number", why)
    get_owned(session, AgentProfile, tenant, body.agent_profile_id)
    trunk = get_owned(session, OutboundTrunk, tenant, body.outbound_trunk_id)
    if body.from_number and trunk.numbers and body.from_number not in trunk.numbers:
        raise InvalidField("from_number", "is not one of the outbound trunk's numbers")
    if session.query(Campaign).filter_by(tenant_id=tenant, name=body.name).first() is not None:
        raise Conflict(f"a campaign named {body.name!r} exists already")
    row = Campaign(
        tenant_id=tenant,
        **body.model_dump(exclude={"contacts", "from_number", "default_timezone"}),
        from_number=body.from_number or "",
    )
    session.add(row)
    session.flush()
    session.add_all(
        CampaignContact(
            campaign_id=row.id,
            number=c.number,
            variables=c.variables,
            timezone=c.timezone or callee_timezone(c.number, body.default_timezone),
        )
        for c in body.contacts
    )
    session.commit()
    bg = getattr(request.app.state, "background", None)
    if bg is not None:
        bg.campaigns.wake.set()
    return _out(session, row)


@router.get("", response_model=s.Page[CampaignOut], summary="List campaigns")
def list_(session: SessionDep, tenant: TenantDep, limit: Limit = 50, cursor: Cursor = None) -> Any:
    rows = list_owned(session, Campaign, tenant, limit=limit + 1, after=cursor)
    more = len(rows) > limit
    return {
        "items": [_out(session, r) for r in rows[:limit]],
        "next_cursor": rows[limit - 1].id if more else None,
    }


@router.get("/{campaign_id}", response_model=CampaignOut, summary="A campaign and its progress")
def get(campaign_id: str, session: SessionDep, tenant: TenantDep) -> Any:
    return _out(session, get_owned(session, Campaign, tenant, campaign_id))


def _transition(
    session: SessionDep,
    tenant: str,
    campaign_id: str,
    allowed: tuple[CampaignStatus, ...],
    to: CampaignStatus,
) -> Campaign:
    row = get_owned(session, Campaign, tenant, campaign_id)
    if row.status == to:
        return row
    if row.status not in allowed:
        raise Conflict(f"a {row.status} campaign cannot be {to}")
    if to == "cancelled":
        cancel(session, row)
    else:
        row.status = to
        session.commit()
    return row


@router.post("/{campaign_id}/pause", response_model=CampaignOut, summary="Pause: no new attempts")
def pause(campaign_id: str, session: SessionDep, tenant: TenantDep) -> Any:
    return _out(session, _transition(session, tenant, campaign_id, ("running",), "paused"))


@router.post("/{campaign_id}/resume", response_model=CampaignOut, summary="Resume a paused campaign")
def resume(campaign_id: str, request: Request, session: SessionDep, tenant: TenantDep) -> Any:
    row = _transition(session, tenant, campaign_id, ("paused",), "running")
    bg = getattr(request.app.state, "background", None)
    if bg is not None:
        bg.campaigns.wake.set()
    return _out(session, row)


@router.post(
    "/{campaign_id}/cancel",
    response_model=CampaignOut,
    summary="Cancel: no new attempts, queued calls hung up, live calls go on to their end",
)
def cancel_(campaign_id: str, session: SessionDep, tenant: TenantDep) -> Any:
    return _out(session, _transition(session, tenant, campaign_id, ("running", "paused"), "cancelled"))
