"""Keys and sessions that can be ended: a tenant lists, makes, revokes and rotates its own keys (API
and CLI); a revoked key stops working at once; sign-out ends the session on the server, so a copied
cookie stops working too; cookies are Secure behind a TLS proxy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from phoneagent.api.app import create_app
from phoneagent.config import Settings
from phoneagent.review.session import COOKIE, SIGN_IN_COOKIE
from tests.db_fixtures import app_state, new_key
from tests.review_fixtures import ReviewClient


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the form"
    return m.group(1)


def _sign_in(c: TestClient, token: str) -> Any:  # the TestClient's response class (httpx or httpx2)
    r = c.post("/review/sign-in", data={"api_key": token, "csrf_token": _csrf(c.get("/review/sign-in").text)})
    assert r.status_code == 200 and r.url.path == "/review/calls", r.text[:300]
    return r


def test_a_tenant_lists_makes_revokes_and_rotates_its_keys(client: TestClient) -> None:
    h = new_key(client, "acme")
    other = new_key(client, "globex")
    made = client.post("/keys", headers=h, json={"name": "ci"})
    assert made.status_code == 201 and made.json()["key"].startswith("pa_"), made.text
    second = {"Authorization": f"Bearer {made.json()['key']}"}
    listed = client.get("/keys", headers=h).json()
    assert len(listed) == 2 and all("key" not in k and "secret" not in str(k) for k in listed)
    assert client.get("/agents", headers=second).status_code == 200
    # another tenant's key cannot be touched
    assert client.post(f"/keys/{made.json()['prefix']}/revoke", headers=other).status_code == 404
    rotated = client.post(f"/keys/{made.json()['prefix']}/rotate", headers=h)
    assert rotated.status_code == 201 and rotated.json()["name"] == "ci", rotated.text
    assert client.get("/agents", headers=second).status_code == 401  # the old one stopped at once
    third = {"Authorization": f"Bearer {rotated.json()['key']}"}
    assert client.get("/agents", headers=third).status_code == 200
    assert client.post(f"/keys/{rotated.json()['prefix']}/revoke", headers=h).json()["revoked_at"]
    assert client.get("/agents", headers=third).status_code == 401
    again = client.post(f"/keys/{made.json()['prefix']}/rotate", headers=h)
    assert again.status_code == 409, again.text


def test_the_cli_lists_revokes_and_rotates(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHONEAGENT_")}
    env["PHONEAGENT_STATE_DIR"] = str(tmp_path / "state")

    def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [sys.executable, "-m", "phoneagent.cli", *args],
            env=env,
            text=True,
            capture_output=True,
            timeout=120,
        )
        assert (r.returncode == 0) is ok, r.stderr
        return r

    cli("db", "upgrade")
    cli("keys", "create", "--tenant", "acme", "--name", "first")
    token = cli("keys", "create", "--tenant", "acme", "--name", "second").stdout.strip()
    prefix = token.split("_")[1]
    listed = cli("keys", "list", "--tenant", "acme").stdout
    assert listed.count("active") == 2 and f"pa_{prefix}" in listed and token not in listed
    rotated = cli("keys", "rotate", "--key", prefix).stdout.strip()
    assert rotated.startswith("pa_") and rotated != token
    listed = cli("keys", "list", "--tenant", "acme").stdout
    assert f"pa_{prefix}  revoked" in listed and listed.count("active") == 2
    assert "needs --key" in cli("keys", "revoke", ok=False).stderr
    assert "no API key" in cli("keys", "revoke", "--key", "000000000000", ok=False).stderr


def test_sign_out_ends_the_session_on_the_server(review: ReviewClient) -> None:
    c, d = review.client, review.data
    r = _sign_in(c, d.token)
    stolen = c.cookies.get(COOKIE, path="/review")
    assert stolen
    r = c.post("/review/sign-out", data={"csrf_token": _csrf(r.text)}, follow_redirects=False)
    assert r.status_code == 303
    thief = TestClient(c.app)
    thief.cookies.set(COOKIE, stolen, path="/review")
    assert thief.get("/review/calls", follow_redirects=False).status_code == 303  # to the sign-in page
    # signing in again works at once
    _sign_in(c, d.token)


def test_cookies_are_secure_behind_a_tls_proxy(review: ReviewClient) -> None:
    """The proxy speaks https to the browser and http to the control plane: with
    PHONEAGENT_COOKIE_SECURE (or a trusted proxy's X-Forwarded-Proto) the cookies still get Secure."""
    settings: Settings = review.settings.model_copy(update={"cookie_secure": True})
    with TestClient(create_app(settings)) as c:  # plain http, as behind the proxy
        form = c.get("/review/sign-in")
        sign_in = next(h for h in form.headers.get_list("set-cookie") if h.startswith(f"{SIGN_IN_COOKIE}="))
        assert "Secure" in sign_in
        # the browser (on https) sends the Secure cookie back; this client is on http, so by hand
        raw = {"cookie": sign_in.split(";", 1)[0]}
        r = c.post(
            "/review/sign-in",
            data={"api_key": review.data.token, "csrf_token": _csrf(form.text)},
            headers=raw,
            follow_redirects=False,
        )
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}="))
        assert "Secure" in cookie
        app_state(c).engine.dispose()
