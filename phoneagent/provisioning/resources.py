"""Create, read, update and delete tenant resources; LiveKit-backed ones are kept in step with LiveKit.

Order of operations, so that the database and LiveKit never drift apart on failure:
- create: insert (flush: names and references checked) -> create on LiveKit -> commit; LiveKit fails:
  rollback, nothing written; commit fails: the LiveKit object is deleted again.
- update: change (flush) -> replace on LiveKit -> commit; commit fails: the old version goes back to LiveKit.
- delete: refuse while referenced -> delete on LiveKit (already gone is fine) -> delete the row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from phoneagent.db.base import Base
from phoneagent.db.models import (
    AgentProfile,
    Call,
    Campaign,
    DispatchRule,
    InboundTrunk,
    LinkedResource,
    OutboundTrunk,
    PhoneNumber,
    Resource,
    WebhookDelivery,
    WebhookEndpoint,
)
from phoneagent.errors import Conflict, Forbidden, InvalidField, NotFound
from phoneagent.telephony.interface import SipProvisioning
from phoneagent.telephony.presets import PresetError, TrunkFields, apply_preset
from phoneagent.telephony.sip import InboundSpec, OutboundSpec, RuleSpec, owner_tag

M = TypeVar("M", bound=Resource)
B = TypeVar("B", bound=Base)

_KIND_NAMES: dict[type[object], str] = {
    AgentProfile: "agent profile",
    InboundTrunk: "inbound trunk",
    OutboundTrunk: "outbound trunk",
    DispatchRule: "dispatch rule",
    PhoneNumber: "phone number",
    Call: "call",
    Campaign: "campaign",
    WebhookEndpoint: "webhook endpoint",
    WebhookDelivery: "webhook delivery",
}


def get_owned(session: Session, model: type[B], tenant_id: str, row_id: str) -> B:
    row = session.get(model, row_id)
    if row is None or getattr(row, "tenant_id", None) != tenant_id:
        raise NotFound(f"no {_KIND_NAMES.get(model, model.__name__)} with id {row_id!r}")
    return row


def list_owned(session: Session, model: type[M], tenant_id: str, *, limit: int, after: str | None) -> list[M]:
    """Ids are time-ordered, so keyset pagination on id lists oldest first, stably."""
    q = select(model).where(model.tenant_id == tenant_id)
    if after:
        q = q.where(model.id > after)
    return list(session.scalars(q.order_by(model.id).limit(limit)))


def _commit(session: Session, what: str) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"{what} conflicts with an existing one (names are unique per tenant)") from None


def _flush(session: Session, what: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"{what} conflicts with an existing one (names are unique per tenant)") from None


def check_quota(
    session: Session, model: type[Resource], tenant_id: str, limit: int | None, what: str, *conds: Any
) -> None:
    """Forbidden (403) when the tenant has ``limit`` rows of ``model`` (matching ``conds``) already."""
    if limit is None:
        return
    have = session.scalar(select(func.count()).select_from(model).where(model.tenant_id == tenant_id, *conds))
    if (have or 0) >= limit:
        raise Forbidden(f"this tenant has {have} {what}, the most it may have; delete some first")


# ---- LiveKit bindings -------------------------------------------------------------------------------


def room_prefix_for(rule_id: str) -> str:
    """The start of the room names of a dispatch rule's calls: its id, which no other rule (of this
    tenant or another) has; LiveKit adds the number and a random part, so every call has a room of
    its own."""
    return rule_id


@dataclass(frozen=True)
class Binding:
    to_spec: Callable[[Session, Any, str], Any]  # (session, row, agent_name) -> spec
    create: Callable[[SipProvisioning, Any, str], str]  # (lk, spec, owner tag) -> LiveKit id
    update: Callable[[SipProvisioning, str, Any, str], None]  # (lk, LiveKit id, spec, owner tag)
    delete: Callable[[SipProvisioning, str], None]


def _inbound_spec(session: Session, row: InboundTrunk, agent_name: str) -> InboundSpec:
    return InboundSpec(
        name=f"{row.name}",
        numbers=list(row.numbers),
        allowed_addresses=list(row.allowed_addresses),
        auth_username=row.auth_username,
        auth_password=row.auth_password,
        media_encryption=row.media_encryption,
    )


def _outbound_spec(session: Session, row: OutboundTrunk, agent_name: str) -> OutboundSpec:
    return OutboundSpec(
        name=row.name,
        address=row.address,
        transport=row.transport,
        numbers=list(row.numbers),
        auth_username=row.auth_username,
        auth_password=row.auth_password,
        media_encryption=row.media_encryption,
    )


def _rule_spec(session: Session, row: DispatchRule, agent_name: str) -> RuleSpec:
    trunk = session.get(InboundTrunk, row.inbound_trunk_id) if row.inbound_trunk_id else None
    if trunk is None or trunk.livekit_id is None:
        raise InvalidField("inbound_trunk_id", "the inbound trunk is not provisioned")
    return RuleSpec(
        name=row.name,
        # a rule from before server-made room names may say "direct": it gets a room per call too
        kind="callee" if row.kind == "callee" else "individual",
        room_prefix=room_prefix_for(row.id),
        trunk_ids=[trunk.livekit_id],
        agent_name=agent_name,
        agent_metadata=json.dumps({"agent_profile_id": row.agent_profile_id, "tenant_id": row.tenant_id}),
    )


BINDINGS: dict[type[LinkedResource], Binding] = {
    InboundTrunk: Binding(
        _inbound_spec,
        lambda lk, spec, tag: lk.create_inbound(spec, tag),
        lambda lk, lk_id, spec, tag: lk.update_inbound(lk_id, spec, tag),
        lambda lk, lk_id: lk.delete_trunk(lk_id),
    ),
    OutboundTrunk: Binding(
        _outbound_spec,
        lambda lk, spec, tag: lk.create_outbound(spec, tag),
        lambda lk, lk_id, spec, tag: lk.update_outbound(lk_id, spec, tag),
        lambda lk, lk_id: lk.delete_trunk(lk_id),
    ),
    DispatchRule: Binding(
        _rule_spec,
        lambda lk, spec, tag: lk.create_rule(spec, tag),
        lambda lk, lk_id, spec, tag: lk.update_rule(lk_id, spec, tag),
        lambda lk, lk_id: lk.delete_rule(lk_id),
    ),
}


class Provisioner:
    """The service object behind the resource routes: one per request, owning its transaction."""

    def __init__(
        self,
        session: Session,
        lk: SipProvisioning,
        tenant_id: str,
        agent_name: str,
        check_trunk_address: Callable[[str], None] | None = None,
        check_profile: Callable[
            [Session, str, dict[str, Any], dict[str, Any], dict[str, Any] | None, dict[str, Any]], None
        ]
        | None = None,
        max_per_kind: int | None = None,
        *,
        default_media_encryption: str = "disable",
        sip_tls: bool = False,
    ) -> None:
        self.session = session
        self.lk = lk
        self.tenant_id = tenant_id
        self.agent_name = agent_name
        # where a tenant's outbound trunk may send INVITEs (Settings.check_trunk_address)
        self._check_trunk_address = check_trunk_address
        # what an agent profile's sections may say (provisioning.profiles.check_profile)
        self._check_profile = check_profile
        self._max_per_kind = max_per_kind  # how many of each kind of resource a tenant may have
        # a new trunk's SRTP mode when none is given, and whether livekit-sip takes SIP over TLS
        # (Settings.sip_media_encryption, Settings.sip_tls)
        self._default_media_encryption = default_media_encryption
        self._sip_tls = sip_tls

    def _tag(self, row: Any) -> str:
        return owner_tag(self.tenant_id, row.id)

    def create(self, row: M) -> M:
        what = _KIND_NAMES[type(row)]
        row.tenant_id = self.tenant_id
        # None until the flush fills in the column's default: the operator's default instead
        if isinstance(row, InboundTrunk | OutboundTrunk) and not row.media_encryption:
            row.media_encryption = self._default_media_encryption
        check_quota(self.session, type(row), self.tenant_id, self._max_per_kind, f"{what}s")
        self._check_refs(row)
        self.session.add(row)
        _flush(self.session, what)
        binding = BINDINGS.get(type(row)) if isinstance(row, LinkedResource) else None
        if binding is None or not isinstance(row, LinkedResource):
            _commit(self.session, what)
            return row
        try:
            spec = binding.to_spec(self.session, row, self.agent_name)
            row.livekit_id = binding.create(self.lk, spec, self._tag(row))
        except BaseException:
            self.session.rollback()
            raise
        try:
            _commit(self.session, what)
        except BaseException:
            if row.livekit_id is not None:
                binding.delete(self.lk, row.livekit_id)
            raise
        return row

    def update(self, row: M, changes: dict[str, Any]) -> M:
        what = _KIND_NAMES[type(row)]
        binding = BINDINGS.get(type(row)) if isinstance(row, LinkedResource) else None
        old_spec = binding.to_spec(self.session, row, self.agent_name) if binding else None
        # no autoflush while the references are checked: a change naming a row that does not exist
        # must be a 422 from the check, not a foreign-key error from a flush on the way to it
        with self.session.no_autoflush:
            for key, value in changes.items():
                setattr(row, key, value)
            self._check_refs(row)
        _flush(self.session, what)
        if binding is None or not isinstance(row, LinkedResource) or row.livekit_id is None:
            _commit(self.session, what)
            return row
        livekit_id = row.livekit_id
        try:
            binding.update(
                self.lk, livekit_id, binding.to_spec(self.session, row, self.agent_name), self._tag(row)
            )
        except BaseException:
            self.session.rollback()
            raise
        try:
            _commit(self.session, what)
        except BaseException:
            binding.update(self.lk, livekit_id, old_spec, self._tag(row))
            raise
        return row

    def delete(self, row: Any) -> None:
        self._check_unreferenced(row)
        binding = BINDINGS.get(type(row))
        if binding is not None and row.livekit_id:
            binding.delete(self.lk, row.livekit_id)
        # call records outlive what they were made with: they keep their history, not the link
        for attr, model in (("agent_profile_id", AgentProfile), ("outbound_trunk_id", OutboundTrunk)):
            if isinstance(row, model):
                self.session.execute(update(Call).where(getattr(Call, attr) == row.id).values({attr: None}))
        self.session.delete(row)
        self.session.commit()

    # ---- references ----------------------------------------------------------------------------------

    def _check_refs(self, row: Any) -> None:
        if isinstance(row, AgentProfile) and self._check_profile is not None:
            self._check_profile(self.session, self.tenant_id, row.llm, row.stt, row.success, row.tts)
        if isinstance(row, OutboundTrunk) and self._check_trunk_address is not None:
            try:
                self._check_trunk_address(row.address)
            except ValueError as exc:
                raise InvalidField("address", str(exc)) from None
        if isinstance(row, InboundTrunk | OutboundTrunk):
            self._check_media_encryption(row)
        refs: tuple[tuple[str, type[Resource]], ...] = (
            ("agent_profile_id", AgentProfile),
            ("inbound_trunk_id", InboundTrunk),
        )
        for attr, model in refs:
            ref = getattr(row, attr, None)
            if ref is not None:
                target = self.session.get(model, ref)
                if target is None or target.tenant_id != self.tenant_id:
                    raise InvalidField(attr, f"no {_KIND_NAMES[model]} with id {ref!r}")

    def _check_media_encryption(self, row: InboundTrunk | OutboundTrunk) -> None:
        """SRTP required only where the keys (SDES, in the SDP) are not sent in clear text."""
        if row.media_encryption != "require":
            return
        if isinstance(row, OutboundTrunk) and row.transport != "tls":
            raise InvalidField(
                "media_encryption",
                f"require sends SRTP's keys in the SDP, in clear text over {row.transport}: "
                "use transport tls (or allow)",
            )
        if isinstance(row, InboundTrunk) and not self._sip_tls:
            raise InvalidField(
                "media_encryption",
                "require needs SIP over TLS, and this stack takes no TLS (PHONEAGENT_SIP_TLS is off): "
                "SRTP's keys would travel in clear text",
            )

    def _check_unreferenced(self, row: Any) -> None:
        users: list[tuple[type[Resource], str]] = []
        if isinstance(row, AgentProfile):
            users = [
                (DispatchRule, "agent_profile_id"),
                (PhoneNumber, "agent_profile_id"),
                (Campaign, "agent_profile_id"),
            ]
        elif isinstance(row, InboundTrunk):
            users = [(DispatchRule, "inbound_trunk_id"), (PhoneNumber, "inbound_trunk_id")]
        elif isinstance(row, OutboundTrunk):
            users = [(Campaign, "outbound_trunk_id")]
        for model, attr in users:
            user = self.session.scalar(select(model).where(getattr(model, attr) == row.id).limit(1))
            if user is not None:
                raise Conflict(
                    f"{_KIND_NAMES[type(row)]} {row.id} is used by {_KIND_NAMES[model]} "
                    f"{user.id}: delete or re-point that first"
                )

    # ---- phone numbers join their trunk's number list --------------------------------------------------

    def attach_number(self, number: PhoneNumber) -> PhoneNumber:
        self._check_refs(number)
        if number.inbound_trunk_id is None:
            return self.create(number)
        trunk = get_owned(self.session, InboundTrunk, self.tenant_id, number.inbound_trunk_id)
        number.tenant_id = self.tenant_id
        self.session.add(number)
        _flush(self.session, "phone number")
        if number.e164 in trunk.numbers:
            _commit(self.session, "phone number")
        else:
            self.update(trunk, {"numbers": [*trunk.numbers, number.e164]})  # commits the number too
        return number

    def detach_number(self, number: PhoneNumber) -> None:
        trunk = self.session.get(InboundTrunk, number.inbound_trunk_id) if number.inbound_trunk_id else None
        self.session.delete(number)
        if trunk is not None and number.e164 in trunk.numbers:
            remaining = [n for n in trunk.numbers if n != number.e164]
            if not remaining:
                self.session.rollback()
                raise Conflict(
                    f"{number.e164} is the last number of inbound trunk {trunk.id}: delete the trunk"
                )
            self.update(trunk, {"numbers": remaining})
        else:
            self.session.commit()


def trunk_fields_with_preset(provider: str, direction: str, data: dict[str, Any]) -> dict[str, Any]:
    """Fill in and check what the provider needs; a missing field becomes InvalidField naming it."""
    fields = TrunkFields(
        direction=direction,
        address=data.get("address") or "",
        transport=data.get("transport") or "udp",
        allowed_addresses=data.get("allowed_addresses"),
        auth_username=data.get("auth_username") or "",
        auth_password=data.get("auth_password") or "",
    )
    try:
        filled = apply_preset(provider, fields)
    except PresetError as exc:
        raise InvalidField(exc.field, exc.reason) from None
    if (
        direction == "inbound"
        and not filled.allowed_addresses
        and not (filled.auth_username and filled.auth_password)
    ):
        raise InvalidField(
            "allowed_addresses",
            "an inbound trunk needs allowed_addresses or auth credentials; "
            "without either, anyone on the internet could call in",
        )
    out = dict(data)
    if direction == "inbound":
        out["allowed_addresses"] = filled.allowed_addresses or []
    out["auth_username"], out["auth_password"] = filled.auth_username, filled.auth_password
    if direction == "outbound":
        if not filled.address:
            raise InvalidField("address", "an outbound trunk needs the carrier's SIP address")
        out["address"], out["transport"] = filled.address, filled.transport
    return out
