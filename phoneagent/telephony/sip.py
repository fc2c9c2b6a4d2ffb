"""SIP trunks and dispatch rules on LiveKit: create, update, delete, list.

Every object phoneagent creates carries ``{"phoneagent": {"tenant": ..., "row": ...}}`` in its metadata,
so reconciliation only ever touches phoneagent's own objects. Calls are blocking (the control plane's
routes run in a thread pool); each runs the async LiveKit client on its own short event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from livekit import api

from phoneagent.config import Settings
from phoneagent.errors import LiveKitNotFound, TelephonyError
from phoneagent.telephony.client import livekit_api

T = TypeVar("T")

MEDIA_ENCRYPTION = {
    "disable": api.SIPMediaEncryption.SIP_MEDIA_ENCRYPT_DISABLE,
    "allow": api.SIPMediaEncryption.SIP_MEDIA_ENCRYPT_ALLOW,
    "require": api.SIPMediaEncryption.SIP_MEDIA_ENCRYPT_REQUIRE,
}

TRANSPORTS = {
    "udp": api.SIPTransport.SIP_TRANSPORT_UDP,
    "tcp": api.SIPTransport.SIP_TRANSPORT_TCP,
    "tls": api.SIPTransport.SIP_TRANSPORT_TLS,
}


def owner_tag(tenant_id: str, row_id: str) -> str:
    return json.dumps({"phoneagent": {"tenant": tenant_id, "row": row_id}})


def parse_owner(metadata: str) -> tuple[str, str] | None:
    try:
        tag = json.loads(metadata)["phoneagent"]
        return str(tag["tenant"]), str(tag["row"])
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class InboundSpec:
    name: str
    numbers: list[str]
    allowed_addresses: list[str] = field(default_factory=list)
    auth_username: str = ""
    auth_password: str = ""
    media_encryption: str = "disable"  # a MEDIA_ENCRYPTION key


@dataclass(frozen=True)
class OutboundSpec:
    name: str
    address: str
    transport: str
    numbers: list[str]
    auth_username: str = ""
    auth_password: str = ""
    media_encryption: str = "disable"


@dataclass(frozen=True)
class RuleSpec:
    name: str
    kind: str  # individual | callee
    room_prefix: str
    trunk_ids: list[str]
    agent_name: str
    agent_metadata: str = ""


@dataclass(frozen=True)
class LiveKitObject:
    id: str
    kind: str  # inbound | outbound | rule
    name: str
    owner: tuple[str, str] | None
    numbers: list[str]


class LiveKitSip:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def _run(self, fn: Callable[[api.LiveKitAPI], Awaitable[T]]) -> T:
        async def go() -> T:
            async with livekit_api(self._settings) as lk:
                return await fn(lk)

        return asyncio.run(go())

    # ---- inbound trunks ----------------------------------------------------------------------------

    @staticmethod
    def _inbound(spec: InboundSpec, tag: str) -> api.SIPInboundTrunkInfo:
        return api.SIPInboundTrunkInfo(
            name=spec.name,
            metadata=tag,
            numbers=spec.numbers,
            allowed_addresses=spec.allowed_addresses,
            auth_username=spec.auth_username,
            auth_password=spec.auth_password,
            media_encryption=MEDIA_ENCRYPTION[spec.media_encryption],
        )

    def create_inbound(self, spec: InboundSpec, tag: str) -> str:
        req = api.CreateSIPInboundTrunkRequest(trunk=self._inbound(spec, tag))
        return self._run(lambda lk: lk.sip.create_inbound_trunk(req)).sip_trunk_id

    def update_inbound(self, trunk_id: str, spec: InboundSpec, tag: str) -> None:
        info = self._inbound(spec, tag)
        self._run(lambda lk: lk.sip.update_inbound_trunk(trunk_id, info))

    # ---- outbound trunks ---------------------------------------------------------------------------

    @staticmethod
    def _outbound(spec: OutboundSpec, tag: str) -> api.SIPOutboundTrunkInfo:
        return api.SIPOutboundTrunkInfo(
            name=spec.name,
            metadata=tag,
            address=spec.address,
            transport=TRANSPORTS[spec.transport],
            numbers=spec.numbers,
            auth_username=spec.auth_username,
            auth_password=spec.auth_password,
            media_encryption=MEDIA_ENCRYPTION[spec.media_encryption],
        )

    def create_outbound(self, spec: OutboundSpec, tag: str) -> str:
        req = api.CreateSIPOutboundTrunkRequest(trunk=self._outbound(spec, tag))
        return self._run(lambda lk: lk.sip.create_outbound_trunk(req)).sip_trunk_id

    def update_outbound(self, trunk_id: str, spec: OutboundSpec, tag: str) -> None:
        info = self._outbound(spec, tag)
        self._run(lambda lk: lk.sip.update_outbound_trunk(trunk_id, info))

    def delete_trunk(self, trunk_id: str) -> None:
        self._ignore_missing(lambda lk: lk.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=trunk_id)))

    # ---- dispatch rules ----------------------------------------------------------------------------

    @staticmethod
    def _rule(spec: RuleSpec, tag: str) -> api.SIPDispatchRuleInfo:
        # every call in a room of its own: never one room (and one call record) for many callers
        if spec.kind == "callee":
            rule = api.SIPDispatchRule(
                dispatch_rule_callee=api.SIPDispatchRuleCallee(room_prefix=spec.room_prefix, randomize=True)
            )
        else:
            rule = api.SIPDispatchRule(
                dispatch_rule_individual=api.SIPDispatchRuleIndividual(room_prefix=spec.room_prefix)
            )
        return api.SIPDispatchRuleInfo(
            name=spec.name,
            metadata=tag,
            rule=rule,
            trunk_ids=spec.trunk_ids,
            room_config=api.RoomConfiguration(
                agents=[api.RoomAgentDispatch(agent_name=spec.agent_name, metadata=spec.agent_metadata)]
            ),
        )

    def create_rule(self, spec: RuleSpec, tag: str) -> str:
        req = api.CreateSIPDispatchRuleRequest(dispatch_rule=self._rule(spec, tag))
        return self._run(lambda lk: lk.sip.create_dispatch_rule(req)).sip_dispatch_rule_id

    def update_rule(self, rule_id: str, spec: RuleSpec, tag: str) -> None:
        info = self._rule(spec, tag)
        self._run(lambda lk: lk.sip.update_dispatch_rule(rule_id, info))

    def delete_rule(self, rule_id: str) -> None:
        self._ignore_missing(
            lambda lk: lk.sip.delete_dispatch_rule(
                api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=rule_id)
            )
        )

    # ---- listing -----------------------------------------------------------------------------------

    def list_all(self) -> list[LiveKitObject]:
        async def go(lk: api.LiveKitAPI) -> list[LiveKitObject]:
            ins = (await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())).items
            outs = (await lk.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())).items
            rules = (await lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())).items
            return (
                [
                    LiveKitObject(t.sip_trunk_id, "inbound", t.name, parse_owner(t.metadata), list(t.numbers))
                    for t in ins
                ]
                + [
                    LiveKitObject(
                        t.sip_trunk_id, "outbound", t.name, parse_owner(t.metadata), list(t.numbers)
                    )
                    for t in outs
                ]
                + [
                    LiveKitObject(r.sip_dispatch_rule_id, "rule", r.name, parse_owner(r.metadata), [])
                    for r in rules
                ]
            )

        return self._run(go)

    def _ignore_missing(self, fn: Callable[[api.LiveKitAPI], Awaitable[object]]) -> None:
        try:
            self._run(fn)
        except LiveKitNotFound:
            pass
        except TelephonyError as exc:
            if "not found" not in exc.message.lower():
                raise
