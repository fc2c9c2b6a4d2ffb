"""`phoneagent call +15550100 --agent NAME`: place an outbound call through the control plane's API
and follow its status live until it ends. Ctrl-C hangs the call up.

Exit codes: 0 the call was answered; 3 it ended unanswered (busy, no answer, rejected, failed);
2 the request was refused (bad key, unknown agent, unreachable control plane); 130 hung up by Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from typing import Any

import httpx

from phoneagent.config import Settings
from phoneagent.errors import PhoneagentError, RequestError


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("call", help="place an outbound call and follow it live")
    p.add_argument("to", help="the number to call, any format (normalized to E.164)")
    p.add_argument("--agent", required=True, help="agent profile name or id")
    p.add_argument("--trunk", help="outbound trunk name or id (default: your only one)")
    p.add_argument("--from", dest="from_number", help="caller id: one of the trunk's numbers")
    p.add_argument("--ring-timeout", type=int, default=30, help="seconds to ring before giving up")
    p.add_argument("--key", default=os.environ.get("PHONEAGENT_API_KEY"), help="API key (PHONEAGENT_API_KEY)")
    p.add_argument("--url", help="control plane URL (default: this machine's)")


class _Api:
    def __init__(self, url: str, key: str) -> None:
        self._c = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        self.url = url

    def __call__(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self._c.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise PhoneagentError(
                f"cannot reach the control plane at {self.url}: {type(exc).__name__}",
                hint="is `phoneagent api` (or `phoneagent dev`) running? --url sets where it is",
            ) from None
        if r.status_code >= 400:
            try:
                body = r.json()
                detail = "; ".join(f"{d['field']}: {d['reason']}" for d in body.get("detail", []))
                message = body.get("error", r.text) + (f" ({detail})" if detail else "")
            except ValueError:
                message = r.text
            raise RequestError(f"{method} {path}: {r.status_code} {message}")
        return r.json()

    def find(self, path: str, wanted: str, what: str) -> dict[str, Any]:
        items = self("GET", path, params={"limit": 200})["items"]
        found = [i for i in items if wanted in (i["id"], i.get("name"))]
        if not found:
            names = ", ".join(i.get("name", i["id"]) for i in items) or "none"
            raise RequestError(f"no {what} named {wanted!r}", hint=f"yours: {names}")
        return dict(found[0])


def run_call(args: argparse.Namespace, settings: Settings) -> int:
    if not args.key:
        raise RequestError("no API key", hint="pass --key or set PHONEAGENT_API_KEY (phoneagent keys create)")
    api = _Api(args.url or settings.events_url, args.key)
    agent = api.find("/agents", args.agent, "agent profile")
    if args.trunk:
        trunk = api.find("/trunks/outbound", args.trunk, "outbound trunk")
    else:
        trunks = api("GET", "/trunks/outbound", params={"limit": 2})["items"]
        if len(trunks) != 1:
            raise RequestError(f"you have {len(trunks)} outbound trunks", hint="choose one with --trunk")
        trunk = trunks[0]
    body = {
        "to": args.to,
        "agent_profile_id": agent["id"],
        "outbound_trunk_id": trunk["id"],
        "ring_timeout_s": args.ring_timeout,
    }
    if args.from_number:
        body["from_number"] = args.from_number
    call = api("POST", "/calls", json=body, headers={"Idempotency-Key": f"cli-{uuid.uuid4().hex}"})
    print(f"call {call['id']}: {call['from_number']} -> {call['to_number']} with agent {agent['name']}")
    shown = ""
    started = time.monotonic()
    try:
        while True:
            if call["status"] != shown:
                shown = call["status"]
                print(f"  {time.monotonic() - started:6.1f} s  {shown}", flush=True)
            if shown == "ended":
                break
            time.sleep(0.3)
            call = api("GET", f"/calls/{call['id']}")
    except KeyboardInterrupt:
        api("POST", f"/calls/{call['id']}/hangup")
        print("  hung up (Ctrl-C)")
        return 130
    sip = (
        f", SIP {call['sip_status_code']} {call['sip_status_reason'] or ''}".rstrip()
        if call["sip_status_code"]
        else ""
    )
    length = f", {call['duration_ms'] / 1000:.1f} s talking" if call["duration_ms"] is not None else ""
    print(f"ended: {call['end_reason']}{sip}{length}")
    return 0 if call["answered_at"] else 3


def main_call(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return run_call(args, settings)
    except PhoneagentError as exc:
        print(f"phoneagent: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"phoneagent: hint: {exc.hint}", file=sys.stderr)
        return 2
