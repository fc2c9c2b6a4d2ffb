"""Outgoing webhooks: a tenant's endpoints (the signing secret shown once) and the deliveries, with
dead letters listed and replayable."""

import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy import select

from phoneagent.api import schemas as s
from phoneagent.api.deps import SessionDep, SettingsDep, TenantDep
from phoneagent.api.ratelimit import RateLimiter
from phoneagent.api.routes.resources import ERRORS, Cursor, Limit
from phoneagent.api.schemas_outbound import (
    DeliveryOut,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointOut,
    WebhookEndpointUpdate,
)
from phoneagent.calls.outbox import replay
from phoneagent.config import Settings
from phoneagent.db.models import WebhookDelivery, WebhookEndpoint
from phoneagent.errors import InvalidField
from phoneagent.provisioning.resources import check_quota, get_owned, list_owned


def _check_url(settings: Settings, url: str) -> None:
    """Refuse a URL that leads to this host, a private network or a metadata address (422)."""
    try:
        settings.webhook_address_policy().check_url(url)
    except ValueError as exc:
        raise InvalidField("url", str(exc)) from exc


endpoints = APIRouter(prefix="/webhook-endpoints", tags=["webhooks"], responses=ERRORS)
deliveries = APIRouter(prefix="/webhook-deliveries", tags=["webhooks"], responses=ERRORS)


@endpoints.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookEndpointCreated,
    summary="Add a webhook endpoint",
    description="Returns the endpoint's signing `secret` once: every delivery is signed with it "
    '(`Phoneagent-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`; refuse a `t` more '
    "than 300 s away from your clock).",
)
def create_endpoint(
    body: WebhookEndpointCreate, session: SessionDep, tenant: TenantDep, settings: SettingsDep
) -> Any:
    _check_url(settings, body.url)
    quota = settings.max_webhook_endpoints_per_tenant
    check_quota(session, WebhookEndpoint, tenant, quota, "webhook endpoints")
    row = WebhookEndpoint(tenant_id=tenant, secret="whsec_" + secrets.token_urlsafe(32), **body.model_dump())
    session.add(row)
    session.commit()
    return WebhookEndpointCreated.model_validate(
        {**WebhookEndpointOut.model_validate(row).model_dump(), "secret": row.secret}
    )


@endpoints.get("", response_model=s.Page[WebhookEndpointOut], summary="List webhook endpoints")
def list_endpoints(session: SessionDep, tenant: TenantDep, limit: Limit = 50, cursor: Cursor = None) -> Any:
    rows = list_owned(session, WebhookEndpoint, tenant, limit=limit + 1, after=cursor)
    more = len(rows) > limit
    return {"items": rows[:limit], "next_cursor": rows[limit - 1].id if more else None}


@endpoints.get("/{endpoint_id}", response_model=WebhookEndpointOut, summary="Get a webhook endpoint")
def get_endpoint(endpoint_id: str, session: SessionDep, tenant: TenantDep) -> Any:
    return get_owned(session, WebhookEndpoint, tenant, endpoint_id)


@endpoints.patch("/{endpoint_id}", response_model=WebhookEndpointOut, summary="Change a webhook endpoint")
def update_endpoint(
    endpoint_id: str,
    body: WebhookEndpointUpdate,
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
) -> Any:
    row = get_owned(session, WebhookEndpoint, tenant, endpoint_id)
    if body.url is not None:
        _check_url(settings, body.url)
    for key, value in body.model_dump(exclude_none=True).items():
        setattr(row, key, value)
    session.commit()
    return row


@endpoints.delete("/{endpoint_id}", status_code=204, summary="Remove a webhook endpoint and its deliveries")
def delete_endpoint(endpoint_id: str, session: SessionDep, tenant: TenantDep) -> Response:
    row = get_owned(session, WebhookEndpoint, tenant, endpoint_id)
    session.delete(row)
    session.commit()
    return Response(status_code=204)


@deliveries.get(
    "",
    response_model=s.Page[DeliveryOut],
    summary="List webhook deliveries (dead letters: status=dead)",
)
def list_deliveries(
    session: SessionDep,
    tenant: TenantDep,
    status_: Annotated[Literal["pending", "delivered", "dead"] | None, Query(alias="status")] = None,
    call_id: Annotated[str | None, Query(max_length=40)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    q = select(WebhookDelivery).where(WebhookDelivery.tenant_id == tenant)
    if status_:
        q = q.where(WebhookDelivery.status == status_)
    if call_id:
        q = q.where(WebhookDelivery.call_id == call_id)
    if cursor:
        q = q.where(WebhookDelivery.id > cursor)
    rows = list(session.scalars(q.order_by(WebhookDelivery.id).limit(limit + 1)))
    more = len(rows) > limit
    return {"items": rows[:limit], "next_cursor": rows[limit - 1].id if more else None}


@deliveries.post(
    "/{delivery_id}/replay",
    response_model=DeliveryOut,
    summary="Send a delivery again (same event id and payload)",
    description="At most `PHONEAGENT_WEBHOOK_REPLAYS_PER_MINUTE` replays per tenant a minute (429 with "
    "`Retry-After` beyond).",
    responses={429: {"model": s.Problem, "description": "too many replays; see Retry-After"}},
)
def replay_delivery(delivery_id: str, request: Request, session: SessionDep, tenant: TenantDep) -> Any:
    row = get_owned(session, WebhookDelivery, tenant, delivery_id)
    limiter: RateLimiter = request.app.state.limits["replay"]
    limiter.check(tenant, "replay")
    replay(session, row)
    session.commit()
    bg = getattr(request.app.state, "background", None)
    if bg is not None:
        bg.deliverer.wake.set()
    return row
