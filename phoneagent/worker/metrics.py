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
``phoneagent_worker_call_capacity`` and ``phoneagent_worker_active_calls`` (its load is the one over the
other, :class:`phoneagent.worker.main.CallSlots`).

The series are made on first use, in the job processes; never in the worker's main process. There,
made at import, they would open the main process's files in the directory, and livekit-agents empties
the directory when the worker starts: everything the main process wrote afterwards, its own
``lk_agents_active_job_count`` too, would go to deleted files that no scrape reads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from phoneagent.worker.timing import SLICES

LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0)
STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class _Series:
    reply: Histogram
    stage: Histogram
    component: Histogram
    fallbacks: Counter
    calls: Counter
    spool: Gauge
    capacity: Gauge
    active: Gauge


COMPONENTS = ("stt", "brain", "tts")  # the turn event's <component>_s timings
FALLBACK_COMPONENTS = ("stt", "tts", "llm")  # phoneagent.speech.fallbacks


@functools.cache
def _series() -> _Series:
    series = _Series(
        reply=Histogram(
            "phoneagent_reply_latency_seconds",
            "From the caller's end of speech to the reply's first audio, at the worker",
            buckets=LATENCY_BUCKETS,
        ),
        stage=Histogram(
            "phoneagent_reply_stage_seconds",
            "Where a reply's time went, by stage",
            ["stage"],
            buckets=STAGE_BUCKETS,
        ),
        component=Histogram(
            "phoneagent_reply_component_seconds",
            "Speech-to-text delay, the brain's time to first token and text-to-speech time to first audio",
            ["component"],
            buckets=STAGE_BUCKETS,
        ),
        fallbacks=Counter(
            "phoneagent_fallbacks", "A provider given up for the next in its chain", ["component"]
        ),
        calls=Counter("phoneagent_worker_calls", "Calls the worker answered"),
        spool=Gauge(
            "phoneagent_event_spool_depth",
            "Call events on disk not yet taken by the control plane",
            multiprocess_mode="livemax",  # the job processes share one spool directory: each sees all of it
        ),
        capacity=Gauge(
            "phoneagent_worker_call_capacity", "Calls the worker takes at once", multiprocess_mode="livemax"
        ),
        active=Gauge(
            "phoneagent_worker_active_calls",
            "Calls the worker runs now (its job processes running a call)",
            multiprocess_mode="livesum",  # each job process counts its own call; a dead one counts no more
        ),
    )
    # every label value known in advance is there from the start, at 0: a series that first appears
    # with its first observation has no increase in PromQL's eyes (a first call's stages would be NaN)
    for stage in SLICES:
        series.stage.labels(stage)
    for component in COMPONENTS:
        series.component.labels(component)
    for component in FALLBACK_COMPONENTS:
        series.fallbacks.labels(component)
    return series


def set_capacity(calls: int) -> None:
    _series().capacity.set(calls)  # made here with every other series: active calls show 0, not nothing


def set_spool_depth(events: int) -> None:
    _series().spool.set(events)


def call_started() -> Callable[[], Coroutine[None, None, None]]:
    """Count this job process's call as active; the returned callback (a job shutdown callback)
    counts it out."""
    active = _series().active
    active.inc()

    async def call_over() -> None:
        active.dec()

    return call_over


def _seconds(value: object) -> float | None:
    return (
        float(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        else None
    )


def observe(type_: str, data: dict[str, Any]) -> None:
    """Count one call event the worker reports (see the module's docstring for the series)."""
    series = _series()
    if type_ == "answered":
        series.calls.inc()
    elif type_ == "fallback" and data.get("available") is False:
        series.fallbacks.labels(str(data.get("component", "unknown"))).inc()
    elif type_ == "turn" and data.get("speaker") == "agent":
        total = _seconds(data.get("total_s"))
        if total is not None:
            series.reply.observe(total)
        for component in COMPONENTS:
            took = _seconds(data.get(f"{component}_s"))
            if took is not None:
                series.component.labels(component).observe(took)
        split = data.get("split_ms")
        if isinstance(split, dict):
            for stage, ms in split.items():
                took = _seconds(ms)
                if took is not None:
                    series.stage.labels(str(stage)).observe(took / 1000)
