"""End of turn: VAD endpointing (the default), or LiveKit's local turn detector where it loads.

``PHONEAGENT_TURN_DETECTION=vad`` waits ``PHONEAGENT_ENDPOINTING_MIN_DELAY_S`` of silence after speech.
``turn-detector`` uses livekit-agents' ``inference.TurnDetector(version="v1-mini")``: its weights are
compiled into the ``livekit-local-inference`` wheel and it runs in the job process (no model hub, no
cloud); it lets the wait be short when the sentence sounds complete and long (``max_delay``) when
not. The version is always pinned: left to itself, livekit-agents may pick its cloud model. If the
local model cannot load, the worker says so and uses VAD endpointing.
"""

from __future__ import annotations

import logging
from typing import Any

from phoneagent.config import Settings

log = logging.getLogger("phoneagent.worker")

LOCAL_MODEL = "v1-mini"


def load_turn_detector(settings: Settings) -> Any | None:
    """The local turn detector, loaded and tried once (prewarm); None for VAD endpointing."""
    if settings.turn_detection != "turn-detector":
        return None
    try:
        import numpy as np
        from livekit import local_inference
        from livekit.agents import inference

        local_inference.init_eot()
        p = local_inference.EOT().predict(np.zeros(local_inference.EOT_MAX_SAMPLES, dtype=np.int16))
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"end-of-turn probability {p} out of range")
        detector = inference.TurnDetector(version=LOCAL_MODEL)
    except Exception as exc:  # noqa: BLE001 - any failure to load means: fall back, and say so
        log.error(
            "the local turn detector cannot load; using VAD endpointing",
            extra={"model": LOCAL_MODEL, "error": f"{type(exc).__name__}: {exc}"[:300]},
        )
        return None
    return detector


def turn_handling(settings: Settings, detector: Any | None) -> dict[str, Any]:
    endpointing: dict[str, Any] = {"min_delay": settings.endpointing_min_delay_s}
    if detector is not None:
        endpointing["max_delay"] = settings.endpointing_max_delay_s
    return {
        "turn_detection": detector if detector is not None else "vad",
        "endpointing": endpointing,
        # barge-in by VAD: the adaptive interruption detector is a cloud service
        "interruption": {"mode": "vad"},
    }


def describe(settings: Settings, detector: Any | None) -> str:
    if detector is not None:
        return (
            f"LiveKit turn detector {LOCAL_MODEL} (local), min {settings.endpointing_min_delay_s} s, "
            f"max {settings.endpointing_max_delay_s} s"
        )
    return f"VAD endpointing, min {settings.endpointing_min_delay_s} s"
