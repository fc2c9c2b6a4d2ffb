"""`phoneagent trunks test TRUNK --to NUMBER`: a short real call through an outbound trunk, placed by the
control plane (``POST /trunks/outbound/{id}/test``), printed step by step with the likely cause of a
failure and where the troubleshooting page explains it.

Exit codes: 0 the call was answered and audio came back from the far end; 3 the test call failed (the
carrier refused it, nobody answered, or no audio came); 2 the request was refused (bad key, unknown
trunk, a number the tenant may not call, unreachable control plane).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import Any
from urllib.parse import quote

from phoneagent.cli_calls import ApiClient, Printable, table
from phoneagent.config import get_settings
from phoneagent.errors import ControlPlaneError

MARKS = {"ok": "ok", "failed": "FAILED", "not_seen": "not seen", "not_echoed": "not echoed"}
LABELS = {
    "invite": "INVITE",
    "ringing": "ringing",
    "answer": "answer",
    "audio_from_phone": "audio from phone",
    "audio_to_phone": "audio to phone",
    "dtmf": "DTMF",
    "hangup": "hang up",
}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("trunks", help="outbound trunks: place a short test call through one")
    acts = p.add_subparsers(dest="action", required=True)
    t = acts.add_parser(
        "test",
        help="call a number through the trunk for a few seconds and report what the carrier answered",
    )
    t.add_argument("trunk", help="outbound trunk name or id")
    t.add_argument("--to", required=True, help="the number to call, any format (normalized to E.164)")
    t.add_argument(
        "--from", dest="from_number", help="caller id: one of the trunk's numbers (default: its first)"
    )
    t.add_argument("--ring-timeout", type=int, default=20, help="seconds to ring before giving up (5-60)")
    t.add_argument("--url", help="control plane URL (default http://<bind host>:<PHONEAGENT_API_PORT>)")
    t.add_argument("--key", help="API key (default: $PHONEAGENT_API_KEY)")
    p.set_defaults(func=run)


def _trunk(client: ApiClient, wanted: str) -> dict[str, Any]:
    items = client.get("/trunks/outbound", {"limit": 200})["items"]
    found = [t for t in items if wanted in (t["id"], t["name"])]
    if not found:
        names = ", ".join(t["name"] for t in items) or "none"
        raise ControlPlaneError(f"no outbound trunk named {wanted!r}", hint=f"yours: {names}")
    return dict(found[0])


def _test(client: ApiClient, args: argparse.Namespace) -> int:
    trunk = _trunk(client, args.trunk)
    body: dict[str, Any] = {"to": args.to, "ring_timeout_s": args.ring_timeout}
    if args.from_number:
        body["from_number"] = args.from_number
    print(f"testing outbound trunk {trunk['name']} ({trunk['address']}, {trunk['transport']})", flush=True)
    r = client.request(
        "POST",
        f"/trunks/outbound/{quote(trunk['id'], safe='')}/test",
        json=body,
        timeout=args.ring_timeout + 60,  # the ring, a few seconds of audio and DTMF, the hang-up
    )
    print(f"call {r['from_number']} -> {r['to']}")
    rows = [
        (
            f"{s['at_s']:.1f} s" if s["at_s"] is not None else "",
            LABELS.get(s["name"], s["name"]),
            MARKS.get(s["result"], s["result"]),
            s["detail"],
        )
        for s in r["steps"]
    ]
    print(
        "\n".join(f"  {line}" for line in table(("AT", "STEP", "RESULT", "WHAT HAPPENED"), rows).splitlines())
    )
    if r["passed"]:
        print(f"passed in {r['duration_s']:.1f} s")
        return 0
    sip = (
        f": SIP {r['sip_status_code']} {r['sip_status_reason'] or ''}".rstrip()
        if r["sip_status_code"]
        else ""
    )
    print(f"failed{sip}")
    if r["cause"]:
        print(f"likely cause: {r['cause']}")
    if r["see"]:
        print(f"see: {r['see']}")
    return 3


def run(args: argparse.Namespace) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs every request (URL, query) at INFO
    client = ApiClient(
        args.url or get_settings().api_url,
        args.key or os.environ.get("PHONEAGENT_API_KEY", ""),
        command="trunks",
    )
    try:
        out, err = Printable(sys.stdout), Printable(sys.stderr)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return _test(client, args)
    finally:
        client.close()
