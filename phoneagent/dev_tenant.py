"""The `dev` tenant: what `phoneagent dev` answers with, made by the same provisioning code as the API.

Its agent profile (the dev greeting, recording on), an inbound trunk for the dev number (callers on
this machine only) and a dispatch rule are rows of tenant ``dev`` pushed to LiveKit by the
``Provisioner``, so a dev call is recorded exactly as a production call is: call log, transcript,
turn latencies, recording, review page. An API key for the tenant is kept in the state directory
(0600) and reused, so signing in to the review page works at once and across runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneagent.config import Settings
from phoneagent.db.models import AgentProfile, ApiKey, DispatchRule, InboundTrunk, Tenant
from phoneagent.private import private_file
from phoneagent.provisioning.keys import create_key, key_for_token
from phoneagent.provisioning.resources import Provisioner
from phoneagent.telephony.sip import LiveKitSip

TENANT = "dev"
NAME = "dev"
KEY_FILE = "dev-api-key"
# what `dev` made on LiveKit alone before the dev tenant (removed at start: see _drop_old_routing)
OLD_TRUNK_NAME, OLD_RULE_NAME = "phoneagent-dev-inbound", "phoneagent-dev-dispatch"

R = TypeVar("R", AgentProfile, InboundTrunk, DispatchRule)


@dataclass(frozen=True)
class DevLine:
    tenant_id: str
    agent_profile_id: str
    trunk_id: str
    rule_id: str
    api_key: str
    key_file: Path


def _named(session: Session, model: type[R], tenant_id: str) -> R | None:
    return session.scalar(select(model).where(model.tenant_id == tenant_id, model.name == NAME))


def _drop_old_routing(sip: LiveKitSip) -> None:
    """Before the dev tenant, `dev` made its trunk and rule on LiveKit only (kept in Redis across
    runs); the same number on two trunks would make LiveKit pick either."""
    old = [obj for obj in sip.list_all() if obj.owner is None]
    for obj in old:
        if obj.kind == "rule" and obj.name == OLD_RULE_NAME:
            sip.delete_rule(obj.id)
    for obj in old:
        if obj.kind == "inbound" and obj.name == OLD_TRUNK_NAME:
            sip.delete_trunk(obj.id)


def _key(session: Session, settings: Settings, tenant: Tenant) -> tuple[str, Path]:
    path = settings.state_dir.expanduser() / KEY_FILE
    if path.exists():
        token = path.read_text().strip()
        key: ApiKey | None = key_for_token(session, token)
        if key is not None and key.tenant_id == tenant.id:
            return token, path
    token, _row = create_key(session, tenant_name=tenant.name, name="phoneagent dev")
    private_file(path)
    path.write_text(token + "\n")
    return token, path


def ensure_dev_line(session: Session, settings: Settings) -> DevLine:
    """The dev tenant's profile, trunk and rule (created when missing, in the database and on LiveKit)
    and its API key. Idempotent: `phoneagent dev` runs it at every start."""
    sip = LiveKitSip(settings)
    _drop_old_routing(sip)
    tenant = session.scalar(select(Tenant).where(Tenant.name == TENANT))
    if tenant is None:
        tenant = Tenant(name=TENANT)
        session.add(tenant)
        session.commit()
    p = Provisioner(session, sip, tenant.id, settings.agent_name)
    agent = _named(session, AgentProfile, tenant.id) or p.create(
        AgentProfile(name=NAME, greeting=settings.greeting, recording=True)
    )
    trunk = _named(session, InboundTrunk, tenant.id) or p.create(
        # only SIP phones on this machine may call the dev line
        InboundTrunk(name=NAME, numbers=[settings.dev_number], allowed_addresses=[settings.bind_host])
    )
    rule = _named(session, DispatchRule, tenant.id) or p.create(
        DispatchRule(name=NAME, inbound_trunk_id=trunk.id, agent_profile_id=agent.id)
    )
    token, path = _key(session, settings, tenant)
    return DevLine(tenant.id, agent.id, trunk.id, rule.id, token, path)
