"""Drift between the database and LiveKit, reported and repaired both ways.

- missing: a row whose LiveKit object is gone -> re-created on LiveKit, the row gets the new id.
- orphan: a LiveKit object tagged as phoneagent's whose row is gone -> deleted from LiveKit.
Objects without phoneagent's tag (made by hand or by other tools) are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneagent.db.models import DispatchRule, InboundTrunk, LinkedResource, OutboundTrunk
from phoneagent.provisioning.resources import BINDINGS
from phoneagent.telephony.interface import SipProvisioning
from phoneagent.telephony.sip import owner_tag

L = TypeVar("L", bound=LinkedResource)

_KINDS: dict[str, type[InboundTrunk | OutboundTrunk | DispatchRule]] = {
    "inbound": InboundTrunk,
    "outbound": OutboundTrunk,
    "rule": DispatchRule,
}


def _rows(session: Session, model: type[L], tenant_id: str | None) -> list[L]:
    q = select(model)
    if tenant_id:
        q = q.where(model.tenant_id == tenant_id)
    return list(session.scalars(q.order_by(model.id)))


@dataclass
class DriftReport:
    missing: list[str] = field(default_factory=list)  # row ids with no LiveKit object
    orphans: list[str] = field(default_factory=list)  # LiveKit ids with no row
    repaired: bool = False

    @property
    def in_sync(self) -> bool:
        return not self.missing and not self.orphans


def reconcile(
    session: Session,
    lk: SipProvisioning,
    *,
    agent_name: str,
    repair: bool,
    tenant_id: str | None = None,
    delete_orphans: bool = True,
    only: set[str] | None = None,
) -> DriftReport:
    """Compare the rows with LiveKit; with ``repair``, re-create what is missing on LiveKit (of the
    rows in ``only``, when given) and (unless ``delete_orphans`` is off) delete the tagged objects
    whose rows are gone."""
    report = DriftReport()
    # the rows before LiveKit's list: a row committed by now had its object made before its commit
    rows = [
        row for kind in ("inbound", "outbound", "rule") for row in _rows(session, _KINDS[kind], tenant_id)
    ]
    objects = lk.list_all()
    live = {o.id for o in objects}
    # trunks before rules: a re-created rule needs its trunk's (possibly new) LiveKit id
    for row in rows:
        if row.livekit_id in live:
            continue
        report.missing.append(row.id)
        if repair and (only is None or row.id in only):
            b = BINDINGS[type(row)]
            row.livekit_id = b.create(
                lk, b.to_spec(session, row, agent_name), owner_tag(row.tenant_id, row.id)
            )
            session.commit()
    # which LiveKit object each row has now: a second object tagged with a row's id is an orphan too
    linked = {
        row_id: lk_id
        for m in _KINDS.values()
        for row_id, lk_id in session.execute(select(m.id, m.livekit_id))
    }
    for obj in objects:
        if (
            obj.owner is None
            or (tenant_id and obj.owner[0] != tenant_id)
            or linked.get(obj.owner[1]) == obj.id
        ):
            continue
        report.orphans.append(obj.id)
        if repair and delete_orphans:
            (lk.delete_rule if obj.kind == "rule" else lk.delete_trunk)(obj.id)
    report.repaired = repair
    return report
