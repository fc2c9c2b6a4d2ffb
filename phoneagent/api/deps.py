"""Dependencies as Annotated aliases: the database session, the caller's tenant (API key or review
session cookie), the CSRF check of review forms, LiveKit, settings."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from phoneagent.config import Settings
from phoneagent.errors import Forbidden, RequestError
from phoneagent.provisioning.keys import key_is_active, tenant_for_key
from phoneagent.provisioning.profiles import check_profile
from phoneagent.provisioning.resources import Provisioner
from phoneagent.review.session import COOKIE, ReviewSession, decode_session, same_origin, tokens_match
from phoneagent.telephony.interface import SipProvisioning


class Unauthorized(RequestError):
    status_code = 401


class SignInRequired(Unauthorized):
    """No valid review session: pages redirect to the sign-in form, fragments answer 401."""


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_tenant(request: Request, session: SessionDep) -> str:
    header = request.headers.get("authorization", "")
    token = (
        header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    )
    tenant = tenant_for_key(session, token) if token else None
    # give the connection back now: an async route must not hold one while it awaits (with a full
    # pool, requests waiting for a connection would starve those waiting for a thread)
    session.close()
    if tenant is None:
        raise Unauthorized("missing or invalid API key", hint="send `Authorization: Bearer pa_...`")
    return tenant


TenantDep = Annotated[str, Depends(get_tenant)]


def get_review_session(request: Request, session: SessionDep) -> ReviewSession:
    raw = request.cookies.get(COOKIE)
    rs = decode_session(request.app.state.review_signer, raw) if raw else None
    if rs is None or not key_is_active(session, rs.key_id, rs.tenant_id, rs.issued):
        raise SignInRequired("sign in to review calls", hint="sign in with an API key at /review/sign-in")
    return rs


ReviewSessionDep = Annotated[ReviewSession, Depends(get_review_session)]


async def check_csrf(request: Request, rs: ReviewSessionDep) -> ReviewSession:
    """Review forms that change something (POST) carry the session's CSRF token and come from our origin."""
    form = await request.form()
    token = form.get("csrf_token")
    if not tokens_match(rs.csrf, token if isinstance(token, str) else None):
        raise Forbidden("the form's CSRF token is missing or wrong", hint="reload the page and try again")
    if not same_origin(request.headers.get("origin"), request.headers.get("host")):
        raise Forbidden("the form was sent from another site")
    return rs


CsrfCheckedDep = Annotated[ReviewSession, Depends(check_csrf)]


def get_provisioner(request: Request, session: SessionDep, tenant: TenantDep) -> Provisioner:
    settings: Settings = request.app.state.settings
    lk: SipProvisioning = request.app.state.livekit_sip
    return Provisioner(
        session,
        lk,
        tenant,
        settings.agent_name,
        settings.check_trunk_address,
        functools.partial(check_profile, settings),
        settings.max_resources_per_tenant,
        default_media_encryption=settings.sip_media_encryption,
        sip_tls=settings.sip_tls,
    )


ProvisionerDep = Annotated[Provisioner, Depends(get_provisioner)]
