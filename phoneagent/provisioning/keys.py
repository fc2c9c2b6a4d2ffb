"""API keys: ``pa_<prefix>_<secret>``, shown once, stored as a SHA-256 of the secret, scoped to a tenant."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneagent.db.models import ApiKey, Tenant
from phoneagent.errors import Conflict, NotFound
from phoneagent.signing import same_secret


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


def new_key_for_tenant(session: Session, tenant_id: str, name: str = "") -> tuple[str, ApiKey]:
    """Another key for an existing tenant; (plaintext, row). Commits."""
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    key = ApiKey(tenant_id=tenant_id, prefix=prefix, secret_hash=_hash(secret), name=name)
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
    return key if same_secret(key.secret_hash, _hash(parts[2])) else None


def tenant_for_key(session: Session, token: str) -> str | None:
    """The tenant id of a valid, unrevoked key, else None."""
    key = key_for_token(session, token)
    return key.tenant_id if key is not None else None


def key_is_active(session: Session, key_id: str, tenant_id: str, issued_at: float | None = None) -> bool:
    """Whether a key (known by id, e.g. from a signed session) still exists, unrevoked, for the tenant;
    with ``issued_at``, also whether a session made then was not signed out since."""
    key = session.get(ApiKey, key_id)
    if key is None or key.revoked_at is not None or key.tenant_id != tenant_id:
        return False
    after = key.sessions_after
    if issued_at is not None and after is not None:
        after = after if after.tzinfo else after.replace(tzinfo=UTC)
        return issued_at > after.timestamp()
    return True


def tenant_keys(session: Session, tenant_id: str) -> list[ApiKey]:
    rows = session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at))
    return list(rows)


def key_by_prefix(session: Session, prefix: str, tenant_id: str | None = None) -> ApiKey:
    """The key with this prefix (of this tenant, when given); NotFound otherwise."""
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix.removeprefix("pa_")))
    if key is None or (tenant_id is not None and key.tenant_id != tenant_id):
        raise NotFound(f"no API key with prefix {prefix!r}")
    return key


def revoke_key(session: Session, key: ApiKey) -> ApiKey:
    """The key stops working at once, and so do the review sessions signed in with it. Commits."""
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
    session.commit()
    return key


def rotate_key(session: Session, key: ApiKey) -> tuple[str, ApiKey]:
    """A new key for the same tenant and name, and the old one revoked, in one transaction; returns
    (plaintext of the new key, its row). Commits."""
    if key.revoked_at is not None:
        raise Conflict("the key is revoked already; create a new one instead")
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    new = ApiKey(tenant_id=key.tenant_id, prefix=prefix, secret_hash=_hash(secret), name=key.name)
    key.revoked_at = datetime.now(UTC)
    session.add(new)
    session.commit()
    return f"pa_{prefix}_{secret}", new


def end_sessions(session: Session, key_id: str) -> None:
    """Every review session signed in with this key so far is over (sign-out, on the server). Commits."""
    key = session.get(ApiKey, key_id)
    if key is not None:
        key.sessions_after = datetime.now(UTC)
        session.commit()
