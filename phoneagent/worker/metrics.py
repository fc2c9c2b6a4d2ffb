"""The worker's Prometheus metrics, on ``PHONEAGENT_WORKER_METRICS_PORT`` (``/metrics``).

Each call runs in a job process of its own, so the series live in prometheus-client's multiprocess
mode: every process writes its values to files in ``<state dir>/worker-metrics/``, and the worker's
metrics server (livekit-agents' own, which also serves its ``lk_agents_*`` series: running jobs, CPU
load, child processes) adds them up when Prometheus scrapes. The directory must be named before
prometheus-client is first imported in the worker process (:mod:`phoneagent.worker.multiproc`), or the main
process's series (the capacity, livekit-agents' own) stay in its memory, unseen.

Series (all from the call events the job processes report, :func:`observe`):
``phoneagent_reply_latency_seconds`` (the caller's end of speech to the reply's first audio, as the
worker measures it), ``phoneagent_reply_stage_seconds{stage}`` (where that time went: vad,
transcript, end_of_turn, brain, tts, playout), ``phoneagent_reply_component_seconds{component}``
(stt, brain, tts as livekit-agents measures them), ``phoneagent_fallbacks_total{component}``
(a provider given up for the next in its chain), ``phoneagent_worker_calls_total`` (calls answered),
``phoneagent_event_spool_depth`` (call events on disk not yet taken by the control plane),
``phoneagent_worker_call_capacity`` and ``phoneagent_worker_active_calls`` (the worker's jobs now: its
load is the one over the other, :class:`phoneagent.worker.main.CallSlots`).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0)
STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)


REPLY = Histogram(
    "phoneagent_reply_latency_seconds",
    "From the caller's end of speech to the reply's first audio, at the worker",
    buckets=LATENCY_BUCKETS,
)
STAGE = Histogram(
    "phoneagent_reply_stage_seconds", "Where a reply's time went, by stage", ["stage"], buckets=STAGE_BUCKETS
)
COMPONENT = Histogram(
    "phoneagent_reply_component_seconds",
    "Speech-to-text delay, the brain's time to first token and text-to-speech time to first audio",
    ["component"],
    buckets=STAGE_BUCKETS,
)
FALLBACKS = Counter("phoneagent_fallbacks", "A provider given up for the next in its chain", ["component"])
CALLS = Counter("phoneagent_worker_calls", "Calls the worker answered")
SPOOL = Gauge(
    "phoneagent_event_spool_depth",
    "Call events on disk not yet taken by the control plane",
    multiprocess_mode="livemax",  # the job processes share one spool directory: each sees all of it
)
CAPACITY = Gauge(
    "phoneagent_worker_call_capacity", "Calls the worker takes at once", multiprocess_mode="livemax"
)
ACTIVE = Gauge(
    "phoneagent_worker_active_calls",
    "Calls the worker runs now (its job processes with a job)",
    multiprocess_mode="livemax",  # set by the worker's main process alone
)


def _seconds(value: object) -> float | None:
    return (
        float(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        else None
    )


def observe(type_: str, data: dict[str, Any]) -> None:
    """Count one call event the worker reports (see the module's docstring for the series)."""
    if type_ == "answered":
        CALLS.inc()
    elif type_ == "fallback" and data.get("available") is False:
        FALLBACKS.labels(str(data.get("component", "unknown"))).inc()
    elif type_ == "turn" and data.get("speaker") == "agent":
        total = _seconds(data.get("total_s"))
        if total is not None:
            REPLY.observe(total)
        for component in ("stt", "brain", "tts"):
            took = _seconds(data.get(f"{component}_s"))
            if took is not None:
                COMPONENT.labels(component).observe(took)
        split = data.get("split_ms")
        if isinstance(split, dict):
            for stage, ms in split.items():
                took = _seconds(ms)
                if took is not None:
                    STAGE.labels(str(stage)).observe(took / 1000)
