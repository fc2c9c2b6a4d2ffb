"""The reference: a bare FastAPI endpoint (one pydantic body in, JSON out), served exactly like the
control plane (uvicorn, one process), so that the control plane's numbers can be read as a ratio."""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class Body(BaseModel):
    to: str
    agent_profile_id: str
    outbound_trunk_id: str


def app() -> FastAPI:
    a = FastAPI()

    @a.post("/echo", status_code=201)
    def echo(body: Body) -> dict[str, str]:
        return {"id": "call_x", "status": "queued", **body.model_dump()}

    return a


if __name__ == "__main__":
    uvicorn.run(app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
