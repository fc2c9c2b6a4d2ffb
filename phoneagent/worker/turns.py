"""End of turn, by ``PHONEAGENT_TURN_DETECTION``:

- ``adaptive`` (the default): a short VAD silence, then a wait that follows what the caller said
  (:mod:`phoneagent.worker.endpoint`): none after a request the brain understands, up to
  ``max_delay`` after plainly unfinished words.
- ``vad``: ``min_delay`` after the VAD's silence, whatever was said.
- ``turn-detector``: livekit-agents' ``inference.TurnDetector(version="v1-mini")``, an audio model
  whose weights are compiled into the ``livekit-local-inference`` wheel; it runs in the job process
  (no model hub, no cloud). The version is always pinned: left to itself, livekit-agents may pick
  its cloud model. If the local model cannot load, the worker says so and uses VAD endpointing.

Timings per mode: :data:`phoneagent.config.TURN_TIMING`, each overridable by its setting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from livekit.agents import EndpointingOptions, TurnHandlingOptions

from phoneagent.config import Settings
from phoneagent.worker.endpoint import PhoneTurnDetector

log = logging.getLogger("phoneagent.worker")

LOCAL_MODEL: Literal["v1-mini"] = "v1-mini"


def load_turn_detector(settings: Settings) -> Any | None:
    """LiveKit's local turn detector, loaded and tried once (prewarm), in ``turn-detector`` mode; None
    otherwise (or when it cannot load: then VAD endpointing)."""
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


def turn_handling(
    settings: Settings,
    detector: Any | None,
    *,
    understood: Callable[[str], bool] | None = None,
    heard: Callable[[], list[str]] | None = None,
) -> TurnHandlingOptions:
    """The AgentSession's turn handling for one call. ``detector`` is what :func:`load_turn_detector`
    gave; ``understood`` tells whether the call's brain can act on the caller's words (the scripted
    flow; None for an LLM brain); ``heard`` gives the recognizer's transcripts of the last utterance."""
    timing = settings.turn_timing
    endpointing: EndpointingOptions = {"min_delay": timing.min_delay_s}
    turn_detection: Any = "vad"
    if settings.turn_detection == "adaptive":
        turn_detection = PhoneTurnDetector(understood=understood, heard=heard)
        endpointing["max_delay"] = timing.max_delay_s
    elif detector is not None:
        turn_detection = detector
        endpointing["max_delay"] = timing.max_delay_s
    return {
        "turn_detection": turn_detection,
        "endpointing": endpointing,
        # barge-in by VAD (the adaptive interruption detector is a cloud service), after a short
        # stretch of the caller's speech
        "interruption": {"mode": "vad", "min_duration": settings.barge_in_min_speech_s},
    }


def describe(settings: Settings, detector: Any | None) -> str:
    t = settings.turn_timing
    if settings.turn_detection == "adaptive":
        return (
            f"adaptive (by what was said): VAD silence {t.vad_silence_s} s, then {t.min_delay_s} s "
            f"when understood, up to {t.max_delay_s} s when unfinished"
        )
    if detector is not None:
        return (
            f"LiveKit turn detector {LOCAL_MODEL} (local), VAD silence {t.vad_silence_s} s, "
            f"min {t.min_delay_s} s, max {t.max_delay_s} s"
        )
    return f"VAD endpointing: silence {t.vad_silence_s} s + {t.min_delay_s} s"
