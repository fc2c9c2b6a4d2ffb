"""``POST /trunks/outbound/{id}/test``: one short real call through the trunk, told step by step."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from phoneagent.api import schemas as s
from phoneagent.api.deps import TenantDep
from phoneagent.api.ratelimit import RATE_LIMITED
from phoneagent.api.routes.resources import ERRORS
from phoneagent.api.schemas_outbound import TrunkTestCreate, TrunkTestOut, TrunkTestStep
from phoneagent.calls.trunk_test import TrunkTestPlan, plan_test, run_test

router = APIRouter(prefix="/trunks/outbound", tags=["outbound trunk"], responses=ERRORS)


@router.post(
    "/{item_id}/test",
    response_model=TrunkTestOut,
    summary="Place a short test call through the trunk",
    description="Dials `to`, and once answered sends a tone and DTMF digits for a few seconds, listens "
    "for the far end's audio (and for the tone and digits coming back, if it echoes), then hangs up. "
    "200 with `passed` false when the carrier refused or no audio came: `steps`, `cause` and `see` say "
    "what happened. The call is not a call record and sends no webhook.",
    responses={**RATE_LIMITED, 409: {"model": s.Problem, "description": "the trunk is not on LiveKit"}},
)
async def test_trunk(item_id: str, body: TrunkTestCreate, request: Request, tenant: TenantDep) -> Any:
    request.app.state.limits["call"].check(tenant, "call")
    settings = request.app.state.settings

    def _plan() -> TrunkTestPlan:
        with request.app.state.sessions() as session:
            return plan_test(
                session,
                settings,
                tenant,
                item_id,
                to=body.to,
                from_number=body.from_number,
                ring_timeout_s=body.ring_timeout_s,
            )

    plan = await run_in_threadpool(_plan)
    r = await run_test(settings, plan)
    return TrunkTestOut(
        trunk_id=plan.trunk_id,
        to=plan.to,
        from_number=plan.from_number,
        passed=r.passed,
        steps=[TrunkTestStep.model_validate(st, from_attributes=True) for st in r.steps],
        sip_status_code=r.sip_status_code,
        sip_status_reason=r.sip_status_reason,
        cause=r.cause,
        see=r.see,
        duration_s=r.duration_s,
    )
