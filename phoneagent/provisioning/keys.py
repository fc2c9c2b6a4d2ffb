"""API keys: ``pa_<prefix>_<secret>``, shown once, stored as a SHA-256 of the secret, scoped to a tenant."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneagent.db.models import ApiKey, Tenant


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, *, tenant_name: str, name: str = "") -> tuple[str, ApiKey]:
    """Create the tenant if needed and a new key for it; returns (plaintext, row). Commits."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        tenant = Tenant(name=tenant_name)
        session.add(tenant)
        session.flush()
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    key = ApiKey(tenant_id=tenant.id, prefix=prefix, secret_hash=_hash(secret), name=name)
    session.add(key)
    session.commit()
    return f"pa_{prefix}_{secret}", key


def key_for_token(session: Session, token: str) -> ApiKey | None:
    """The valid, unrevoked key a token names, else None (constant-time secret comparison)."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "pa":
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if key is None or key.revoked_at is not None:
        return None
    return key if hmac.compare_digest(key.secret_hash, _hash(parts[2])) else None


def tenant_for_key(session: Session, token: str) -> str | None:
    """The tenant id of a valid, unrevoked key, else None."""
    key = key_for_token(session, token)
    return key.tenant_id if key is not None else None


def key_is_active(session: Session, key_id: str, tenant_id: str) -> bool:
    """Whether a key (known by id, e.g. from a signed session) still exists, unrevoked, for the tenant."""
    key = session.get(ApiKey, key_id)
    return key is not None and key.revoked_at is None and key.tenant_id == tenant_id
