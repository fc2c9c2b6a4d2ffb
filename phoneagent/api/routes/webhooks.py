"""LiveKit webhooks: signature and freshness checked by livekit-api's WebhookReceiver; stored once."""

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from livekit import api

from phoneagent.api.deps import SessionDep, Unauthorized
from phoneagent.calls.ingest import ingest_livekit_event
from phoneagent.telephony.client import livekit_credentials

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

MAX_AGE_S = 300  # older events are refused as replays


@router.post(
    "/livekit",
    summary="Receive a signed LiveKit webhook",
    responses={401: {"description": "unsigned, forged or stale: nothing written"}},
)
async def livekit_webhook(request: Request, session: SessionDep) -> Any:
    body = (await request.body()).decode(errors="replace")
    auth = request.headers.get("authorization", "")
    creds = livekit_credentials(request.app.state.settings)
    receiver = api.WebhookReceiver(api.TokenVerifier(creds.api_key, creds.api_secret))
    try:
        event = receiver.receive(body, auth)
    except Exception:  # noqa: BLE001 - any failure to verify (bad JWT, hash mismatch, bad JSON) is the same 401
        raise Unauthorized("webhook signature is missing or invalid") from None
    if event.created_at and abs(time.time() - event.created_at) > MAX_AGE_S:
        raise Unauthorized("webhook is too old (replay?)")
    new = await run_in_threadpool(ingest_livekit_event, session, event)
    return {"received": event.id, "duplicate": not new}
