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


async def test_a_call_counts_as_active_until_its_job_shuts_down() -> None:
    before = _value("phoneagent_worker_active_calls")
    first, second = metrics.call_started(), metrics.call_started()
    assert _value("phoneagent_worker_active_calls") == before + 2
    await first()
    assert _value("phoneagent_worker_active_calls") == before + 1
    await second()
    assert _value("phoneagent_worker_active_calls") == before


def test_every_known_label_is_there_at_zero_before_its_first_observation() -> None:
    """A series PromQL first sees with its first observation shows no increase: the stages, the
    components and the fallbacks are all there (at 0 until used) once the worker reports its capacity."""
    metrics.set_capacity(3)
    assert REGISTRY.get_sample_value("phoneagent_worker_call_capacity") == 3
    for stage in ("vad", "transcript", "end_of_turn", "brain", "tts", "playout"):
        assert REGISTRY.get_sample_value("phoneagent_reply_stage_seconds_count", {"stage": stage}) is not None
    for component in ("stt", "tts", "llm"):
        assert REGISTRY.get_sample_value("phoneagent_fallbacks_total", {"component": component}) is not None
    assert REGISTRY.get_sample_value("phoneagent_worker_active_calls") is not None
