"""The control plane application factory. Nothing is created at import time."""

from __future__ import annotations

from fastapi import FastAPI

from phoneagent import __version__
from phoneagent.config import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="phoneagent", version=__version__)
    app.state.settings = settings

    @app.get("/health", tags=["health"], summary="Liveness of the control plane")
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
