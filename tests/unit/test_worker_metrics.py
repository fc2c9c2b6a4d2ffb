"""The worker's metrics from the call events its job processes report."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from phoneagent.worker import metrics

pytestmark = pytest.mark.unit


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_replies_stages_fallbacks_and_answers_are_counted() -> None:
    before = {
        "reply": _value("phoneagent_reply_latency_seconds_count"),
        "brain": _value("phoneagent_reply_stage_seconds_sum", stage="brain"),
        "tts": _value("phoneagent_reply_component_seconds_count", component="tts"),
        "fallback": _value("phoneagent_fallbacks_total", component="stt"),
        "calls": _value("phoneagent_worker_calls_total"),
    }
    metrics.observe("answered", {})
    metrics.observe(
        "turn",
        {
            "speaker": "agent",
            "total_s": 0.61,
            "stt_s": 0.12,
            "brain_s": None,  # a scripted reply: no model time
            "tts_s": 0.2,
            "split_ms": {"vad": 200, "transcript": 120, "brain": 5, "tts": 180, "playout": 20},
        },
    )
    metrics.observe("turn", {"speaker": "caller", "stt_s": 0.1})  # the caller's turn: no reply
    metrics.observe("turn", {"speaker": "agent", "total_s": "soon", "split_ms": {"brain": -3}})  # junk
    metrics.observe("fallback", {"component": "stt", "available": False})
    metrics.observe("fallback", {"component": "stt", "available": True})  # back: not a fallback
    assert _value("phoneagent_reply_latency_seconds_count") == before["reply"] + 1
    assert _value("phoneagent_reply_stage_seconds_sum", stage="brain") == pytest.approx(
        before["brain"] + 0.005
    )
    assert _value("phoneagent_reply_component_seconds_count", component="tts") == before["tts"] + 1
    assert _value("phoneagent_reply_component_seconds_count", component="brain") == 0
    assert _value("phoneagent_fallbacks_total", component="stt") == before["fallback"] + 1
    assert _value("phoneagent_worker_calls_total") == before["calls"] + 1
