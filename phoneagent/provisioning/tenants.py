"""What the operator sets per tenant: the countries its calls may go to."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneagent.config import Settings
from phoneagent.db.models import Tenant
from phoneagent.errors import NotFound, RequestError
from phoneagent.telephony.destinations import NumberPolicy


def number_policy_for(session: Session, settings: Settings, tenant_id: str) -> NumberPolicy:
    """The operator's number policy, with the tenant's own countries when the operator set them."""
    tenant = session.get(Tenant, tenant_id)
    return settings.number_policy(tenant.allowed_countries if tenant is not None else ())


def set_countries(session: Session, tenant_name: str, countries: Sequence[str]) -> Tenant:
    """The countries a tenant's calls may go to (empty: the operator's default). Commits."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        raise NotFound(f"no tenant named {tenant_name!r}")
    codes = [c.strip().upper() for c in countries if c.strip()]
    bad = [c for c in codes if len(c) != 2 or not c.isalpha()]
    if bad:
        raise RequestError(f"not ISO 3166 country codes: {', '.join(bad)} (e.g. US,CA,GB)")
    tenant.allowed_countries = codes
    session.commit()
    return tenant
