"""A tenant's own API keys: list them (never their secrets), make another, revoke one, rotate one
(a new key and the old one revoked at once). A revoked key stops working at once, and so do the
review sessions signed in with it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from phoneagent.api.deps import SessionDep, TenantDep
from phoneagent.api.routes.resources import ERRORS
from phoneagent.db.models import ApiKey
from phoneagent.provisioning.keys import (
    key_by_prefix,
    new_key_for_tenant,
    revoke_key,
    rotate_key,
    tenant_keys,
)

router = APIRouter(prefix="/keys", tags=["keys"], responses=ERRORS)


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    prefix: str = Field(description="names the key (`pa_<prefix>_...`); the secret is never shown again")
    name: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="the whole key: shown this once, store it now")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("", max_length=100)


def _created(token: str, row: ApiKey) -> KeyCreated:
    return KeyCreated.model_validate({**KeyOut.model_validate(row).model_dump(), "key": token})


@router.get("", response_model=list[KeyOut], summary="List this tenant's API keys")
def list_keys(session: SessionDep, tenant: TenantDep) -> Any:
    return tenant_keys(session, tenant)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyCreated, summary="Make another key")
def create(body: KeyCreate, session: SessionDep, tenant: TenantDep) -> Any:
    token, row = new_key_for_tenant(session, tenant, body.name)
    return _created(token, row)


@router.post("/{prefix}/revoke", response_model=KeyOut, summary="Revoke a key (it stops working at once)")
def revoke(prefix: str, session: SessionDep, tenant: TenantDep) -> Any:
    return revoke_key(session, key_by_prefix(session, prefix, tenant))


@router.post(
    "/{prefix}/rotate",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    summary="Rotate a key: a new one (shown once) and this one revoked",
)
def rotate(prefix: str, session: SessionDep, tenant: TenantDep) -> Any:
    token, row = rotate_key(session, key_by_prefix(session, prefix, tenant))
    return _created(token, row)
