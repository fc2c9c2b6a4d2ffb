"""The dev stack's routing: an inbound trunk for the dev number and a dispatch rule to the agent.

Idempotent: objects are found by name and created only when missing, so `phoneagent dev` can run
again and again against the same LiveKit.
"""

from __future__ import annotations

from dataclasses import dataclass

from livekit import api

from phoneagent.config import Settings
from phoneagent.telephony.client import livekit_api

TRUNK_NAME = "phoneagent-dev-inbound"
RULE_NAME = "phoneagent-dev-dispatch"
ROOM_PREFIX = "call-"


@dataclass(frozen=True)
class DevRouting:
    trunk_id: str
    rule_id: str


async def ensure_dev_routing(settings: Settings) -> DevRouting:
    async with livekit_api(settings) as lk:
        trunks = await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
        trunk = next((t for t in trunks.items if t.name == TRUNK_NAME), None)
        if trunk is None:
            trunk = await lk.sip.create_inbound_trunk(
                api.CreateSIPInboundTrunkRequest(
                    trunk=api.SIPInboundTrunkInfo(
                        name=TRUNK_NAME,
                        numbers=[settings.dev_number],
                        # only SIP peers on this machine may call the dev stack
                        allowed_addresses=[f"{settings.bind_host}/32"],
                    )
                )
            )
        rules = await lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
        rule = next((r for r in rules.items if r.name == RULE_NAME), None)
        if rule is None:
            rule = await lk.sip.create_dispatch_rule(
                api.CreateSIPDispatchRuleRequest(
                    dispatch_rule=api.SIPDispatchRuleInfo(
                        name=RULE_NAME,
                        trunk_ids=[trunk.sip_trunk_id],
                        rule=api.SIPDispatchRule(
                            dispatch_rule_individual=api.SIPDispatchRuleIndividual(room_prefix=ROOM_PREFIX)
                        ),
                        room_config=api.RoomConfiguration(
                            agents=[api.RoomAgentDispatch(agent_name=settings.agent_name)]
                        ),
                    )
                )
            )
        return DevRouting(trunk_id=trunk.sip_trunk_id, rule_id=rule.sip_dispatch_rule_id)
