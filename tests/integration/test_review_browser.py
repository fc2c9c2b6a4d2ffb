"""The review pages in a real browser (Debian's Chromium, driven by Playwright) against a real
`phoneagent api` process: sign in, filter, search, open a call, seek the recording from a turn,
download the transcript, live rows, keyboard use, phone width. Screenshots go to artifacts/review/."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from phoneagent.db.base import utcnow
from phoneagent.db.engine import make_engine, session_factory
from phoneagent.db.models import Call
from tests import REPO_ROOT
from tests.review_fixtures import BASE, PHRASE, TURNS, RunningApp

ARTIFACTS = REPO_ROOT / "artifacts" / "review"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # without these, Chromium's own connections are refused by this closed network
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
SEEK_TURN = 2  # the agent turn at 6.5 s into the recording


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _page(browser: Browser, viewport: dict[str, int]) -> Page:
    context = browser.new_context(viewport=viewport, accept_downloads=True)  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    return context.new_page()


def _sign_in(page: Page, app: RunningApp, key: str | None = None) -> None:
    page.goto(f"{app.url}/review/calls")
    expect(page).to_have_url(re.compile(r"/review/sign-in\?next="))
    page.get_by_label("API key").fill(key or app.data.token)
    page.get_by_role("button", name="Sign in").click()


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _rows(page: Page) -> list[str]:
    ids: list[str] = page.locator("table.calls tbody tr[data-call-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.callId)"
    )
    return ids


def test_sign_in_filter_search_open_seek_and_download(browser: Browser, review_app: RunningApp) -> None:
    data = review_app.data
    page = _page(browser, DESKTOP)
    _sign_in(page, review_app, key="pa_000000000000_not-a-key")
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    assert "/review/sign-in" in page.url
    page.get_by_label("API key").fill(data.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/review/calls$"))
    assert data.call_id in _rows(page) and data.other_call_id not in _rows(page)
    _shot(page, "list-desktop")

    page.get_by_label("End reason").select_option("no_answer")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"end_reason=no_answer"))
    assert _rows(page) == [data.missed_id]

    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Reason for calling (intent)").fill("appointment")
    page.get_by_label("Success").select_option("yes")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"intent=appointment"))
    assert _rows(page) == [data.call_id]  # the other tenant's call has the same outcome

    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Words in the transcript").fill(PHRASE)
    page.get_by_role("button", name="Apply filters").click()
    assert _rows(page) == [data.call_id]

    page.get_by_role("link", name=re.compile("2026-11-20 09:00:00")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("+14155550123")
    expect(page.locator("#end-title + dl")).to_contain_text("customer_hangup")
    expect(page.locator(".timeline")).to_contain_text("deepgram → piper")
    expect(page.locator(".timeline")).to_contain_text("egress_stalled")  # a type the page never heard of
    outcome = page.get_by_role("region", name="Outcome")
    expect(outcome.locator(".outcome-intent")).to_have_text("appointment")
    expect(outcome.locator(".outcome-success")).to_contain_text("reached")
    day = outcome.get_by_role("row", name=re.compile(r"^day tuesday"))
    expect(day).to_contain_text("turn 1 at 00:03")
    expect(outcome.get_by_role("row", name=re.compile(r"^account"))).to_contain_text("keys 4015")
    day.get_by_role("link", name="turn 1 at 00:03").click()
    expect(page).to_have_url(re.compile(r"#turn-1$"))
    assert page.locator("svg.latency-chart rect.seg").count() >= 6  # 2 agent turns x stt/brain/tts
    player = page.locator("#player")
    page.wait_for_function("document.getElementById('player').duration > 11.5")  # decoded via our route
    _shot(page, "detail-desktop")

    offset = TURNS[SEEK_TURN][1]
    page.get_by_role("button", name=re.compile(rf"agent turn {SEEK_TURN}$")).click()
    page.wait_for_function(
        f"(t => t >= {offset} - 0.05 && t < {offset} + 1.5)(document.getElementById('player').currentTime)"
    )
    assert abs(player.evaluate("a => a.currentTime") - offset) < 1.5

    with page.expect_download() as dl:
        page.get_by_role("link", name="text", exact=True).click()
    text = Path(dl.value.path()).read_text()
    assert f"[00:06] Agent: {TURNS[SEEK_TURN][2]}" in text and data.call_id in text
    with page.expect_download() as dl:
        page.get_by_role("link", name="JSON", exact=True).click()
    body = json.loads(Path(dl.value.path()).read_text())
    assert body["call_id"] == data.call_id and body["turns"][SEEK_TURN]["offset_s"] == offset
    page.context.close()


def test_phone_width_has_no_sideways_scrolling(browser: Browser, review_app: RunningApp) -> None:
    page = _page(browser, PHONE)
    _sign_in(page, review_app)
    expect(page).to_have_url(re.compile(r"/review/calls$"))
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    _shot(page, "list-phone")
    page.goto(f"{review_app.url}/review/calls/{review_app.data.call_id}")
    page.wait_for_function("document.getElementById('player').duration > 11.5")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    _shot(page, "detail-phone")
    page.context.close()


def test_keyboard_reaches_and_uses_everything_with_visible_focus(
    browser: Browser, review_app: RunningApp
) -> None:
    page = _page(browser, DESKTOP)
    _sign_in(page, review_app)
    page.goto(f"{review_app.url}/review/calls/{review_app.data.call_id}")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to main content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    label = f"agent turn {SEEK_TURN}"
    for _ in range(60):  # Tab until the turn's seek button has focus
        page.keyboard.press("Tab")
        if label in (page.evaluate("document.activeElement.getAttribute('aria-label')") or ""):
            break
    else:
        raise AssertionError("the turn's seek button is not reachable with Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), outline
    page.keyboard.press("Enter")
    offset = TURNS[SEEK_TURN][1]
    page.wait_for_function(f"document.getElementById('player').currentTime >= {offset} - 0.05")
    page.context.close()


def test_rows_update_live_and_polling_stops_while_hidden(browser: Browser, review_app: RunningApp) -> None:
    page = _page(browser, DESKTOP)
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/review/calls/rows" in r.url else None)
    _sign_in(page, review_app)
    expect(page).to_have_url(re.compile(r"/review/calls$"))
    engine = make_engine(review_app.database_url)
    sessions = session_factory(engine)
    with sessions() as s:  # a new call arrives while the page is open
        call = Call(
            tenant_id=review_app.data.tenant_id,
            direction="inbound",
            status="in_progress",
            from_number="+14155550555",
            to_number="+14155550100",
            created_at=BASE + timedelta(hours=1),
            answered_at=BASE + timedelta(hours=1),
        )
        s.add(call)
        s.commit()
        call_id = call.id
    row = page.locator(f"tr[data-call-id='{call_id}']")
    expect(row).to_contain_text("in progress", timeout=15_000)
    with sessions() as s:  # ... and ends
        c = s.get(Call, call_id)
        assert c is not None
        c.status, c.end_reason, c.ended_at = "ended", "agent_hangup", utcnow()
        c.duration_ms = 42_000
        s.commit()
    expect(row).to_contain_text("agent hangup", timeout=15_000)
    expect(page.locator("#live-status")).to_contain_text("Updated at")
    engine.dispose()

    page.evaluate(
        """() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
        document.dispatchEvent(new Event('visibilitychange'));
    }"""
    )
    seen = len(polls)
    page.wait_for_timeout(11_000)  # two polling intervals
    assert len(polls) == seen, "the page polled while hidden"
    page.evaluate(
        """() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
        Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});
        document.dispatchEvent(new Event('visibilitychange'));
    }"""
    )
    page.wait_for_timeout(1_000)
    assert len(polls) > seen, "the page did not poll again when shown"
    page.context.close()
