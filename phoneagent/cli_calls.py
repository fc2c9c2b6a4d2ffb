"""`phoneagent calls list|show|tail|outcomes`: the call log in a terminal, read over the control plane's
HTTP API with an API key (``--key`` or ``PHONEAGENT_API_KEY``).

Every failure of the conversation with the control plane (down, wrong key, refused input) becomes a
ControlPlaneError here, and only here: one line with a hint, no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TextIO
from urllib.parse import quote

import httpx

from phoneagent.calls.timeline import summarize_event
from phoneagent.config import get_settings
from phoneagent.errors import ControlPlaneError
from phoneagent.review.formats import clock, duration, offset_s, utc

KEY_HINT = "pass --key or set PHONEAGENT_API_KEY; `phoneagent keys create --tenant NAME` makes one"


class ApiClient:
    def __init__(
        self, url: str, key: str, *, transport: httpx.BaseTransport | None = None, command: str = "calls"
    ) -> None:
        self.command = command
        if not key:
            raise ControlPlaneError("no API key", hint=KEY_HINT)
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=10.0, transport=transport
        )

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> Any:
        try:
            r = self._http.request(
                method,
                path,
                params={k: v for k, v in (params or {}).items() if v is not None},
                json=json,
                timeout=timeout or self._http.timeout,
            )
        except httpx.TimeoutException:
            raise ControlPlaneError(
                f"the control plane at {self.url} did not answer in time", hint="is it overloaded or stuck?"
            ) from None
        except httpx.TransportError as exc:
            raise ControlPlaneError(
                f"cannot reach the control plane at {self.url} ({type(exc).__name__})",
                hint="start it with `phoneagent api` (or `phoneagent dev`), or pass --url",
            ) from None
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code == 401:
            raise ControlPlaneError("the control plane refused the API key", hint=KEY_HINT)
        if r.status_code >= 400:
            error = body.get("error", r.reason_phrase) if isinstance(body, dict) else r.reason_phrase
            reasons = "; ".join(f"{d.get('field')}: {d.get('reason')}" for d in body.get("detail", []) or [])
            raise ControlPlaneError(
                f"{error}" + (f" ({reasons})" if reasons else "") + f" [HTTP {r.status_code}]",
                hint=f"check the arguments (`phoneagent {self.command} --help`)",
            )
        return body

    def close(self) -> None:
        self._http.close()


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    rows = [list(r) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _list(client: ApiClient, args: argparse.Namespace) -> int:
    params = {
        "status": args.status,
        "end_reason": args.end_reason,
        "direction": args.direction,
        "number": args.number,
        "agent_id": args.agent,
        "since": args.since,
        "until": args.until,
        "q": args.q,
        "outcome.intent": args.intent,
        "outcome.success": args.success,
        "outcome.slot": args.slot or None,
        "limit": args.limit,
        "cursor": args.cursor,
    }
    page = client.get("/calls", params)
    rows = [
        (
            utc(_dt(c["created_at"])),
            c["direction"],
            c["from_number"] or "-",
            c["to_number"] or "-",
            c["status"].replace("_", " "),
            c["end_reason"] or "-",
            duration(c["duration_ms"]),
            _outcome_cell(c.get("outcome")),
            c["id"],
        )
        for c in page["items"]
    ]
    if not rows:
        print("no calls match")
        return 0
    print(
        table(("WHEN (UTC)", "DIR", "FROM", "TO", "STATUS", "END REASON", "DURATION", "OUTCOME", "ID"), rows)
    )
    if page.get("next_cursor"):
        print(f"\nmore: add --cursor {page['next_cursor']}")
    return 0


def _outcome_cell(outcome: dict[str, Any] | None) -> str:
    """The intent, and + (success) or - (no success) when the profile declares one."""
    if not outcome:
        return "-"
    success = outcome.get("success")
    mark = " +" if success is True else " -" if success is False else ""
    return f"{outcome.get('intent') or '-'}{mark}"


def _source(entry: dict[str, Any]) -> str:
    if entry.get("via") == "dtmf":
        return f"keys {entry.get('keys') or '?'}"
    return f"turn {entry['turn']}" if entry.get("turn") is not None else "by voice"


def _print_outcome(outcome: dict[str, Any] | None) -> None:
    if not outcome:
        print("\nno outcome")
        return
    reached = outcome.get("success")
    success = "reached" if reached is True else "not reached" if reached is False else "-"
    print(f"\noutcome: intent {outcome.get('intent') or '-'}, success {success}")
    rows = [
        ("slot", name, s.get("value", ""), _source(s)) for name, s in (outcome.get("slots") or {}).items()
    ]
    rows += [("intent", i.get("name", ""), "", _source(i)) for i in outcome.get("intents", [])]
    rows += [
        ("confirm", c.get("intent", ""), c.get("answer", ""), _source(c))
        for c in outcome.get("confirmations", [])
    ]
    if rows:
        print(_indent(table(("KIND", "NAME", "VALUE", "FROM"), rows)))


def _print_transfer(c: dict[str, Any]) -> None:
    """A warm transfer: the caller's call names its legs, a leg names the caller's call."""
    if c.get("parent_call_id"):
        print(f"\nconsultation leg of call {c['parent_call_id']}")
    t = c.get("transfer")
    if t:
        print(
            f"\nwarm transfer to {t.get('to')}: {t.get('result')}"
            + (f" ({t['detail']})" if t.get("detail") else "")
        )
        for label, key in (
            ("answered by", "answered_by"),
            ("briefing", "briefing"),
            ("their answer", "reply"),
        ):
            if t.get(key):
                print(f"  {label}: {t[key]}")
        if t.get("ended_by"):
            print(f"  hung up first: the {t['ended_by']}")
    for leg in c.get("legs") or []:
        print(f"  leg: call {leg}")


def _outcomes(client: ApiClient, args: argparse.Namespace) -> int:
    body = client.get("/calls/outcomes", {"since": args.since, "until": args.until})
    for title, key in (("per agent profile", "agent_profiles"), ("per campaign", "campaigns")):
        rows = [
            (
                r["name"] or r["id"] or "(no agent profile)",
                str(r["ended"]),
                str(r["with_outcome"]),
                str(r["succeeded"]),
                f"{r['success_rate'] * 100:.1f}%" if r["success_rate"] is not None else "-",
            )
            for r in body[key]
        ]
        print(f"{title}" if rows else f"{title}: no ended calls")
        if rows:
            print(_indent(table(("NAME", "ENDED", "WITH OUTCOME", "SUCCEEDED", "RATE"), rows)))
    return 0


def _show(client: ApiClient, args: argparse.Namespace) -> int:
    c = client.get(f"/calls/{quote(args.call_id, safe='')}")
    answered = _dt(c["answered_at"])
    evidence = []
    if c["sip_status_code"]:
        evidence.append(f"SIP {c['sip_status_code']} {c['sip_status_reason'] or ''}".rstrip())
    if c["disconnect_reason"]:
        evidence.append(f"LiveKit {c['disconnect_reason']}")
    print(f"call {c['id']}")
    print(f"  {c['direction']} {c['from_number'] or '-'} -> {c['to_number'] or '-'}")
    print(
        f"  status {c['status']}, end reason {c['end_reason'] or '-'}"
        + (f" ({'; '.join(evidence)})" if evidence else "")
    )
    print(
        f"  created {utc(_dt(c['created_at']))}, answered {utc(answered)}, ended {utc(_dt(c['ended_at']))}"
        f" UTC; duration {duration(c['duration_ms'])}"
    )
    print(
        f"  recording {c['recording_status'] or '-'}"
        + (f" ({c['recording_location']})" if c["recording_location"] else "")
    )
    _print_outcome(c.get("outcome"))
    _print_transfer(c)
    turns = c["transcript"]
    print("\ntranscript" if turns else "\nno transcript")
    for t in turns:
        print(
            f"  [{clock(offset_s(answered, _dt(t['started_at'])))}] {t['speaker'].capitalize()}: {t['text']}"
        )
    timed = [t for t in turns if t["speaker"] == "agent" and t["total_ms"] is not None]
    if timed:
        print("\nlatency per agent turn (ms)")
        cells = [
            [
                str(t[k] if t[k] is not None else "-")
                for k in ("seq", "stt_ms", "brain_ms", "tts_ms", "total_ms")
            ]
            for t in timed
        ]
        print(_indent(table(("TURN", "STT", "BRAIN", "TTS", "TOTAL"), cells)))
    if c["events"]:
        print("\nevents")
        rows = [
            (
                utc(_dt(e["occurred_at"])),
                e["source"],
                e["type"],
                summarize_event(e["source"], e["type"], e["payload"]),
            )
            for e in c["events"]
        ]
        print(_indent(table(("AT (UTC)", "SOURCE", "TYPE", "SUMMARY"), rows)))
    return 0


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _tail(client: ApiClient, args: argparse.Namespace) -> int:
    print(f"following call events at {client.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    params: dict[str, Any] = {"limit": args.lines}
    # Ctrl-C and kill stop the tail cleanly, also when started from a shell that had SIGINT ignored
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            page = client.get("/calls/events", params)
            for e in page["items"]:
                at = _dt(e["occurred_at"])
                stamp = at.strftime("%H:%M:%S.%f")[:-3] if at else "-"
                print(
                    f"{stamp}  {e['call_id']}  {e['source']:<8} {e['type']:<18} {e['summary']}".rstrip(),
                    flush=True,
                )
            params = {"after": page["cursor"], "limit": 500}
            time.sleep(max(args.interval, 0.2))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Printable(io.TextIOBase):
    """A terminal's stream that shows control characters as ``?``: what callers said (transcripts,
    numbers, names) cannot move the cursor, clear the screen or retitle the terminal."""

    def __init__(self, target: TextIO) -> None:
        self._target = target

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return self._target.write(printable(text))

    def flush(self) -> None:
        self._target.flush()


def printable(text: str) -> str:
    return "".join(ch if ch in "\n\t" or ch.isprintable() else "?" for ch in text)


def run(args: argparse.Namespace) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs every request (URL, query) at INFO
    client = ApiClient(
        args.url or get_settings().api_url, args.key or os.environ.get("PHONEAGENT_API_KEY", "")
    )
    try:
        out, err = Printable(sys.stdout), Printable(sys.stderr)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            actions = {"list": _list, "show": _show, "tail": _tail, "outcomes": _outcomes}
            return actions[args.action](client, args)
    finally:
        client.close()


def add_parser(sub: Any) -> None:
    p = sub.add_parser("calls", help="the call log: list, show one call, follow call events live")
    p.add_argument("--url", help="control plane URL (default http://<bind host>:<PHONEAGENT_API_PORT>)")
    p.add_argument("--key", help="API key (default: $PHONEAGENT_API_KEY)")
    acts = p.add_subparsers(dest="action", required=True)
    ls = acts.add_parser("list", help="calls, newest first, with filters")
    ls.add_argument("--status", help="queued, dialing, ringing, in_progress or ended")
    ls.add_argument("--end-reason", help="e.g. customer_hangup, no_answer, busy")
    ls.add_argument("--direction", help="inbound or outbound")
    ls.add_argument("--number", help="caller or callee number, any format")
    ls.add_argument("--agent", help="agent profile id")
    ls.add_argument("--since", help="created at or after (ISO 8601)")
    ls.add_argument("--until", help="created before (ISO 8601)")
    ls.add_argument("-q", "--search", dest="q", help="words or a phrase in the transcript")
    ls.add_argument("--intent", help="the outcome's intent (the caller's reason), e.g. appointment")
    ls.add_argument("--success", choices=("true", "false"), help="the outcome met the profile's success")
    ls.add_argument(
        "--slot",
        action="append",
        help="an outcome slot: <slot>:<value> (e.g. day:friday) or <slot>; repeatable",
    )
    ls.add_argument("--limit", type=int, default=20, help="calls per page (1-200, default 20)")
    ls.add_argument("--cursor", help="the cursor printed under the previous page")
    show = acts.add_parser(
        "show", help="one call: who, when, how it ended, outcome, transcript, latency, events"
    )
    show.add_argument("call_id")
    rates = acts.add_parser("outcomes", help="success rates per agent profile and per campaign (ended calls)")
    rates.add_argument("--since", help="calls created at or after (ISO 8601)")
    rates.add_argument("--until", help="calls created before (ISO 8601)")
    tail = acts.add_parser("tail", help="print call events as they arrive, until Ctrl-C")
    tail.add_argument("-n", "--lines", type=int, default=10, help="recent events to print first (1-500)")
    tail.add_argument("--interval", type=float, default=2.0, help="seconds between polls (default 2)")
    p.set_defaults(func=run)
