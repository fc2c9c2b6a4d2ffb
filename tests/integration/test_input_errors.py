"""Input that used to reach a 500: a NUL in the search words, cursors from no page (year 1, 9999, a
search rowid past 64 bits), a forged review cookie with non-ASCII, a signature header with non-ASCII.
Each is a 4xx with a message, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from phoneagent.calls.recordings import _byte_range
from phoneagent.review.session import COOKIE
from phoneagent.webhooks import BadSignature, verify
from tests.db_fixtures import new_key


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize("q", ["hours\x00", "\x00", "a\x1b[2Jb", "\x7f"])
def test_control_characters_in_the_search_words_are_not_a_500(client: TestClient, q: str) -> None:
    h = new_key(client, "acme")
    r = client.get("/calls", headers=h, params={"q": q})
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422:
        assert r.json()["detail"][0]["field"] == "q"


@pytest.mark.parametrize(
    "raw",
    [
        "0001-01-01T00:00:00+00:00|call_x",
        "9999-12-31T23:59:59+00:00|call_x",
        "2026-11-29T00:00:00+00:00|call_x|99999999999999999999999",
        "2026-11-29T00:00:00+00:00|call_x|-5",
    ],
)
def test_a_cursor_no_page_returned_is_a_422(client: TestClient, raw: str) -> None:
    h = new_key(client, "acme")
    for params in ({"cursor": _cursor(raw)}, {"cursor": _cursor(raw), "q": "hours"}):
        r = client.get("/calls", headers=h, params=params)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "cursor", r.text


def test_a_forged_review_cookie_with_non_ascii_is_a_sign_in_not_a_500(client: TestClient) -> None:
    # as a browser may send it: raw bytes, which the server reads as latin-1
    forged = f"{COOKIE}=eyJ0IjoxfQ.\u00e9\u00e9\u00e9".encode("latin-1")
    r = client.get("/review/calls/rows", headers=[(b"cookie", forged)])
    assert r.status_code == 401, r.text


def test_a_signature_header_with_non_ascii_is_a_bad_signature() -> None:
    with pytest.raises(BadSignature):
        verify("whsec_x", "t=1,v1=\u00e9\u00e9", b"{}", now=1)


def test_a_range_with_thousands_of_digits_is_unsatisfiable() -> None:
    assert _byte_range("bytes=" + "9" * 5000 + "-", 1000) is False
    assert _byte_range("bytes=-" + "9" * 5000, 1000) is False
    assert _byte_range("bytes=0-99", 1000) == (0, 99)
