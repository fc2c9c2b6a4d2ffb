"""Health: liveness of the control plane, and drift between the database and LiveKit."""

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import text

from phoneagent import __version__
from phoneagent.api.deps import SessionDep, TenantDep
from phoneagent.api.metrics import CONTENT_TYPE
from phoneagent.provisioning.reconcile import reconcile

router = APIRouter(prefix="/health", tags=["health"])


@router.get("", summary="Liveness of the control plane")
def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get(
    "/ready",
    summary="Readiness: the control plane reaches its database",
    responses={503: {"description": "the database is unreachable"}},
)
def ready(session: SessionDep) -> dict[str, str]:
    session.execute(text("SELECT 1"))  # unreachable: 503 from the app's database handler
    return {"status": "ready", "database": "ok"}


@router.get("/provisioning", summary="Drift between this tenant's rows and LiveKit (report only)")
def provisioning(request: Request, session: SessionDep, tenant: TenantDep) -> Any:
    s = request.app.state
    r = reconcile(session, s.livekit_sip, agent_name=s.settings.agent_name, repair=False, tenant_id=tenant)
    return {"in_sync": r.in_sync, "missing_in_livekit": r.missing, "orphans_in_livekit": r.orphans}


metrics_router = APIRouter(tags=["health"])


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics: calls by status and end reason, dialer queue, webhook outbox, ingest lag",
    response_class=Response,
)
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.text(), media_type=CONTENT_TYPE)
