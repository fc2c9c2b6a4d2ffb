"""Per-tenant rate limits of costly requests: a sliding window per (tenant, action), in this process.

Beyond the limit the request is refused with 429 and ``Retry-After`` (seconds until a slot frees). Each
control-plane replica counts its own requests, so N replicas allow up to N times the limit.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException

RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "too many requests of this kind from this tenant; `Retry-After` says when to retry",
        "headers": {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}},
    }
}


class RateLimiter:
    def __init__(self, per_window: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._limit = per_window
        self._window = window_s
        self._clock = clock
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, tenant: str, action: str) -> None:
        """Count one request; HTTPException(429) when the tenant has had its share of this window."""
        now = self._clock()
        with self._lock:
            hits = self._hits.setdefault((tenant, action), deque())
            while hits and hits[0] <= now - self._window:
                hits.popleft()
            if len(hits) >= self._limit:
                wait = max(1, math.ceil(hits[0] + self._window - now))
                raise HTTPException(
                    429,
                    f"too many {action} requests: at most {self._limit} per {self._window:g} s; "
                    f"try again in {wait} s",
                    headers={"Retry-After": str(wait)},
                )
            hits.append(now)
