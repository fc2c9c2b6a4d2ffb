"""Dependencies as Annotated aliases: the database session, the caller's tenant, LiveKit, settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from phoneagent.config import Settings
from phoneagent.errors import RequestError
from phoneagent.provisioning.keys import tenant_for_key
from phoneagent.provisioning.resources import Provisioner
from phoneagent.telephony.sip import LiveKitSip


class Unauthorized(RequestError):
    status_code = 401


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


def get_provisioner(request: Request, session: SessionDep, tenant: TenantDep) -> Provisioner:
    settings: Settings = request.app.state.settings
    lk: LiveKitSip = request.app.state.livekit_sip
    return Provisioner(session, lk, tenant, settings.agent_name)


ProvisionerDep = Annotated[Provisioner, Depends(get_provisioner)]
