"""Rendering of the review pages: the Jinja2 environment, its filters, and the security headers every
page carries (a strict Content-Security-Policy: scripts and styles from our own static files only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from phoneagent import __version__
from phoneagent.review.formats import clock, duration, utc

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env = templates.env
    env.filters.update(utc=utc, duration=duration, clock=clock)
    env.globals.update(version=__version__)
    env.trim_blocks = True
    env.lstrip_blocks = True
    return templates


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def is_review_page(request: Request) -> bool:
    path = request.url.path
    return (path == "/review" or path.startswith("/review/")) and not path.startswith("/review/static/")


def error_page(request: Request, status_code: int, message: str, hint: str = "") -> HTMLResponse:
    return render(
        request, "error.html", {"status": status_code, "message": message, "hint": hint}, status_code
    )
