"""Review pages and the recording/events API through the app (TestClient), on SQLite and PostgreSQL:
sign-in, tenant isolation, CSRF, byte ranges, path escapes, bad input (4xx with a message, never 5xx)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from phoneagent.db.models import ApiKey, Call, CallEvent
from phoneagent.review.session import COOKIE
from tests.db_fixtures import app_state
from tests.review_fixtures import OTHER_PHRASE, PHRASE, TURNS, ReviewClient


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the form"
    return m.group(1)


def _sign_in(c: TestClient, token: str) -> str:
    """Signs in; returns the session's CSRF token (from the sign-out form of the next page)."""
    r = c.post("/review/sign-in", data={"api_key": token, "csrf_token": _csrf(c.get("/review/sign-in").text)})
    assert r.status_code == 200 and r.url.path == "/review/calls", r.text[:300]
    return _csrf(r.text)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _row_ids(html: str) -> list[str]:
    return re.findall(r'data-call-id="([^"]+)"', html)


def test_wrong_key_is_refused_and_shows_no_data(review: ReviewClient) -> None:
    c, d = review.client, review.data
    r = c.post(
        "/review/sign-in",
        data={"api_key": "pa_123456789abc_wrong", "csrf_token": _csrf(c.get("/review/sign-in").text)},
    )
    assert r.status_code == 401 and "not valid" in r.text
    assert COOKIE not in c.cookies
    for path in ("/review/calls", f"/review/calls/{d.call_id}", f"/review/calls/{d.call_id}/transcript.txt"):
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/review/sign-in?next="), path
    for path in ("/review/calls/rows", f"/review/calls/{d.call_id}/recording"):
        r = c.get(path, follow_redirects=False)
        assert r.status_code in (303, 401), path
        assert "+14155550123" not in r.text and "RIFF" not in r.text
    c.cookies.set(COOKIE, "forged.value", path="/review")
    assert c.get("/review/calls", follow_redirects=False).status_code == 303


def test_session_cookie_is_httponly_signed_and_never_the_key(review: ReviewClient) -> None:
    c, d = review.client, review.data
    csrf = _csrf(c.get("/review/sign-in").text)
    r = c.post("/review/sign-in", data={"api_key": d.token, "csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/review" in cookie
    assert d.token not in cookie and d.token.split("_", 2)[2] not in cookie  # the secret part
    page = c.get("/review/calls")
    assert d.call_id in _row_ids(page.text) and d.other_call_id not in _row_ids(page.text)
    assert "script-src 'self'" in page.headers["content-security-policy"]
    with app_state(review.client).sessions() as s:
        key = s.query(ApiKey).filter(ApiKey.tenant_id == d.tenant_id).one()
        key.revoked_at = datetime.now(UTC)
        s.commit()
    assert c.get("/review/calls", follow_redirects=False).status_code == 303  # revoking ends the session


def test_another_tenants_call_is_404_on_every_page_and_download(review: ReviewClient) -> None:
    c, d = review.client, review.data
    _sign_in(c, d.token)
    other = d.other_call_id
    for path in ("", "/recording", "/recording?download=1", "/transcript.json", "/transcript.txt"):
        r = c.get(f"/review/calls/{other}{path}")
        assert r.status_code == 404, path
        assert OTHER_PHRASE not in r.text and "+442071234567" not in r.text and "RIFF" not in r.text
    r = c.get(f"/calls/{other}/recording", headers=_bearer(d.token))
    assert r.status_code == 404 and r.json()["error"].startswith("no call")
    assert c.get(f"/calls/{other}/recording", headers=_bearer(d.other_token)).status_code == 200
    assert _row_ids(c.get("/review/calls", params={"q": OTHER_PHRASE}).text) == []
    r = c.get("/review/calls", params={"agent": "agt_of_someone_else"})
    assert r.status_code == 422 and "not one of the choices" in r.text


def test_forms_without_their_csrf_token_are_403(review: ReviewClient) -> None:
    c, d = review.client, review.data
    assert c.post("/review/sign-in", data={"api_key": d.token}).status_code == 403
    c.get("/review/sign-in")  # sets the sign-in cookie, but the form's token is missing or wrong
    assert c.post("/review/sign-in", data={"api_key": d.token, "csrf_token": "guess"}).status_code == 403
    r = c.post(
        "/review/sign-in",
        data={"api_key": d.token, "csrf_token": _csrf(c.get("/review/sign-in").text)},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403 and COOKIE not in c.cookies
    csrf = _sign_in(c, d.token)
    assert c.post("/review/sign-out", data={}).status_code == 403
    assert c.post("/review/sign-out", data={"csrf_token": csrf[:-2] + "xx"}).status_code == 403
    assert c.get("/review/calls").status_code == 200  # still signed in
    r = c.post("/review/sign-out", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and 'pa_review=""' in r.headers["set-cookie"]
    c.cookies.delete(COOKIE, path="/review")
    assert c.get("/review/calls", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("route", ["api", "page"])
def test_recording_byte_ranges(review: ReviewClient, route: str) -> None:
    c, d = review.client, review.data
    body = (d.recordings / "acme" / "call-1.wav").read_bytes()
    size = len(body)
    if route == "page":
        _sign_in(c, d.token)
        url, h = f"/review/calls/{d.call_id}/recording", {}
    else:
        url, h = f"/calls/{d.call_id}/recording", _bearer(d.token)
    whole = c.get(url, headers=h)
    assert whole.status_code == 200 and whole.content == body
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "audio/wav"
    assert whole.headers["content-disposition"].startswith("inline")
    cases = {"bytes=0-99": (0, 99), "bytes=-500": (size - 500, size - 1), "bytes=1000-": (1000, size - 1)}
    for rng, (lo, hi) in cases.items():
        r = c.get(url, headers={**h, "Range": rng})
        assert r.status_code == 206, rng
        assert r.headers["content-range"] == f"bytes {lo}-{hi}/{size}", rng
        assert r.content == body[lo : hi + 1], rng
    for rng in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}"):
        r = c.get(url, headers={**h, "Range": rng})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}", rng
    assert c.get(url, headers={**h, "Range": "bytes=9-3"}).status_code == 400
    r = c.get(url, params={"download": "1"}, headers=h)
    assert r.headers["content-disposition"] == f'attachment; filename="{d.call_id}.wav"'


def test_recordings_outside_the_directory_or_missing_are_404(review: ReviewClient) -> None:
    c, d = review.client, review.data
    secret = d.recordings.parent / "secret.wav"
    secret.write_bytes(b"RIFF-not-yours")
    (d.recordings / "link.wav").symlink_to(secret)
    h = _bearer(d.token)
    _sign_in(c, d.token)
    for location in (
        "../secret.wav",
        str(secret),
        "link.wav",
        "acme/../../secret.wav",
        "gone.wav",
        "s3://b/k.ogg",
    ):
        with app_state(c).sessions() as s:
            call = s.get(Call, d.call_id)
            assert call is not None
            call.recording_location = location
            s.commit()
        for url, headers in (
            (f"/calls/{d.call_id}/recording", h),
            (f"/review/calls/{d.call_id}/recording", {}),
        ):
            r = c.get(url, headers=headers)
            assert r.status_code == 404 and b"not-yours" not in r.content, (location, url)
    assert c.get(f"/calls/{d.missed_id}/recording", headers=h).json()["error"] == "this call has no recording"
    page = c.get(f"/review/calls/{d.missed_id}")
    assert page.status_code == 200 and 'id="player"' not in page.text and "has no recording" in page.text


def test_bad_input_is_4xx_with_a_message(review: ReviewClient) -> None:
    c, d = review.client, review.data
    _sign_in(c, d.token)
    bad = {
        "from": "yesterday",
        "to": "2026-13-45",
        "status": "exploded",
        "end_reason": "bored",
        "direction": "sideways",
        "number": "12",
        "q": "x" * 201,
    }
    for field, value in bad.items():
        r = c.get("/review/calls", params={field: value})
        assert r.status_code == 422, (field, r.text[:200])
        assert f'id="{field}-error"' in r.text and 'role="alert"' in r.text, field
    for params in ({"q": '"'}, {"cursor": "not-a-cursor"}, {"from": "2026-11-21", "to": "2026-11-20"}):
        r = c.get("/review/calls", params=params)
        assert r.status_code == 422 and "error-summary" in r.text, params
    assert c.get("/review/calls/rows", params={"status": "exploded"}).status_code == 422
    for path in ("/review/calls/nope", "/review/calls/" + "x" * 300, "/review/nowhere"):
        r = c.get(path)
        assert r.status_code == 404 and "text/html" in r.headers["content-type"], path
    assert c.post("/review/sign-in", data={"api_key": "k" * 301, "csrf_token": "t"}).status_code == 422
    h = _bearer(d.token)
    bad_pages: tuple[dict[str, str | int], ...] = (
        {"after": "abc"},
        {"after": "-1"},
        {"after": "9" * 19},
        {"limit": 0},
        {"limit": 501},
    )
    for page in bad_pages:
        r = c.get("/calls/events", headers=h, params=page)
        assert r.status_code == 422 and r.json()["detail"], page
    assert c.get("/calls/nope/recording", headers=h).status_code == 404


def test_list_filters_search_and_keyset_pages(review: ReviewClient) -> None:
    c, d = review.client, review.data
    _sign_in(c, d.token)
    assert _row_ids(c.get("/review/calls", params={"q": PHRASE}).text) == [d.call_id]
    assert _row_ids(c.get("/review/calls", params={"end_reason": "no_answer"}).text) == [d.missed_id]
    assert _row_ids(c.get("/review/calls", params={"number": "+1 (415) 555-0999"}).text) == [d.missed_id]
    assert _row_ids(c.get("/review/calls", params={"status": "in_progress"}).text) == [d.live_id]
    day = c.get("/review/calls", params={"from": "2026-11-20", "to": "2026-11-20", "direction": "outbound"})
    assert _row_ids(day.text) == [d.missed_id]
    both = c.get("/review/calls", params={"agent": d.agent_id, "direction": "inbound"})
    assert _row_ids(both.text) == [d.call_id]
    first = c.get("/review/calls", params={"end_reason": "agent_hangup"})
    m = re.search(r'rel="next" href="/review/calls\?([^"]+)"', first.text)
    assert m, "no next page link"
    second = c.get("/review/calls?" + m.group(1).replace("&amp;", "&"))
    assert "end_reason=agent_hangup" in m.group(1)
    ids = _row_ids(first.text) + _row_ids(second.text)
    assert sorted(ids) == sorted(d.filler_ids) and len(set(ids)) == len(ids)
    assert 'rel="next"' not in second.text and "Newest calls</a>" in second.text
    rows = c.get("/review/calls/rows")
    assert rows.status_code == 200 and rows.text.lstrip().startswith("<tr")


def test_detail_shows_evidence_turn_offsets_latency_and_every_event(review: ReviewClient) -> None:
    c, d = review.client, review.data
    _sign_in(c, d.token)
    page = c.get(f"/review/calls/{d.call_id}").text
    for _speaker, offset, text, _lat in TURNS:
        assert f'data-offset="{offset}"' in page and text in page
    assert page.count('class="seg seg-') == 6 + 2  # stt/brain/tts on 2 turns + "other" on both
    shown_on_page = (
        "fallback",
        "deepgram → piper",
        "end_call(reason=caller said goodbye)",
        "egress_stalled",
        "egress_id=EG_1",
        "participant_left",
        "CLIENT_INITIATED",
        "the person on the phone",
    )
    for shown in shown_on_page:
        assert shown in page, shown
    missed = c.get(f"/review/calls/{d.missed_id}").text
    assert "480 Temporarily Unavailable" in missed and "Nobody answered." in missed
    txt = c.get(f"/review/calls/{d.call_id}/transcript.txt")
    assert "attachment" in txt.headers["content-disposition"]
    assert "[00:06] Agent: I have booked you for Tuesday at nine am." in txt.text
    js = json.loads(c.get(f"/review/calls/{d.call_id}/transcript.json").text)
    assert [t["offset_s"] for t in js["turns"]] == [t[1] for t in TURNS]


def test_detail_shows_the_outcome_with_the_turn_or_keys_each_part_came_from(review: ReviewClient) -> None:
    c, d = review.client, review.data
    _sign_in(c, d.token)
    page = c.get(f"/review/calls/{d.call_id}").text
    outcome = page[page.index('id="outcome"') : page.index('id="recording-title"')]
    assert '<dd class="outcome-intent">appointment</dd>' in outcome
    assert "reached" in outcome and "not reached" not in outcome
    assert re.search(
        r'<th scope="row">day</th><td class="outcome-value">tuesday</td>'
        r'<td><a href="#turn-1">turn 1 at 00:03</a>',
        outcome,
    )
    assert re.search(
        r'<th scope="row">account</th><td class="outcome-value">4015</td><td>keys 4015</td>', outcome
    )
    assert 'id="turn-1"' in page  # the link's target: the caller's turn in the transcript
    missed = c.get(f"/review/calls/{d.missed_id}").text
    assert "The agent reported no outcome for this call." in missed


def test_list_filters_by_intent_and_success_and_shows_the_outcome(review: ReviewClient) -> None:
    c, d = review.client, review.data
    _sign_in(c, d.token)
    page = c.get("/review/calls", params={"intent": "appointment"}).text
    assert _row_ids(page) == [d.call_id]  # the other tenant's call with the same outcome is not listed
    assert _row_ids(c.get("/review/calls", params={"intent": "appointment", "success": "yes"}).text) == [
        d.call_id
    ]
    assert _row_ids(c.get("/review/calls", params={"success": "no"}).text) == []
    assert _row_ids(c.get("/review/calls", params={"intent": "hours"}).text) == []
    assert 'data-label="Outcome">appointment <span class="badge badge-success">success</span>' in page
    bad = c.get("/review/calls", params={"success": "perhaps"})
    assert bad.status_code == 422 and "success: not one of the choices" in bad.text


def test_events_after_a_cursor_are_the_tenants_own_in_arrival_order(review: ReviewClient) -> None:
    c, d = review.client, review.data
    h = _bearer(d.token)
    latest = c.get("/calls/events", headers=h, params={"limit": 3}).json()
    assert len(latest["items"]) == 3 and latest["cursor"] == latest["items"][-1]["cursor"]
    everything = c.get("/calls/events", headers=h, params={"after": "0"}).json()["items"]
    assert {e["call_id"] for e in everything} == {d.call_id}
    assert [int(e["cursor"]) for e in everything] == sorted(int(e["cursor"]) for e in everything)
    assert c.get("/calls/events", headers=_bearer(d.other_token)).json()["items"] == []
    with app_state(c).sessions() as s:
        s.add(
            CallEvent(
                call_id=d.call_id, source="worker", event_id="late", type="note", payload={"data": {"n": 1}}
            )
        )
        s.add(CallEvent(call_id=d.other_call_id, source="worker", event_id="theirs", type="note", payload={}))
        s.commit()
    new = c.get("/calls/events", headers=h, params={"after": latest["cursor"]}).json()
    assert [(e["event_id"], e["summary"]) for e in new["items"]] == [("late", "n=1")]
    assert c.get("/calls/events", headers=h, params={"after": new["cursor"]}).json()["items"] == []
    assert c.get("/calls/events", params={"after": "0"}).status_code == 401


def test_detail_shows_a_warm_transfer_and_links_its_leg_both_ways(review: ReviewClient) -> None:
    c, d = review.client, review.data
    _sign_in(c, d.token)
    with app_state(c).sessions() as s:
        parent = s.get(Call, d.call_id)
        assert parent is not None
        parent.transfer = {
            "to": "tel:+14155550100",
            "result": "connected",
            "answered_by": "+14155550100",
            "briefing": "A caller is holding about billing on friday.",
            "reply": "key 1",
            "ended_by": "caller",
            "at": 1_800_000_000.0,
        }
        leg = Call(
            tenant_id=d.tenant_id,
            direction="outbound",
            status="ended",
            end_reason="agent_hangup",
            to_number="+14155550100",
            parent_call_id=d.call_id,
        )
        s.add(leg)
        s.commit()
        leg_id = leg.id
    page = c.get(f"/review/calls/{d.call_id}").text
    section = page[page.index('id="transfer"') : page.index('id="recording-title"')]
    assert '<dd class="transfer-briefing">A caller is holding about billing on friday.</dd>' in section
    assert '<dd class="transfer-result">connected</dd>' in section and "the caller" in section
    assert f'<a href="/review/calls/{leg_id}">+14155550100</a>, ended, agent hangup' in section
    leg_page = c.get(f"/review/calls/{leg_id}").text
    assert f'<a href="/review/calls/{d.call_id}">the caller\'s call</a>' in leg_page
    assert 'id="transfer"' not in c.get(f"/review/calls/{d.missed_id}").text
