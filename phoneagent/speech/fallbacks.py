"""Provider fallbacks recorded on the call: the FallbackAdapters' availability events, as call events.

When a provider fails, its adapter marks it unavailable, moves on to the next one within the same
turn, and emits ``{stt,tts,llm}_availability_changed``; when a background probe finds it working
again, the same event says ``available=True``. :func:`report_fallbacks` turns each of these into one
``report("fallback", {"component", "provider", "model", "available"})`` call, with the provider named
as the settings name it (:mod:`phoneagent.speech.plugins` remembers which choice made which object).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from livekit.agents import llm, stt, tts

from phoneagent.speech.providers import ProviderChoice

log = logging.getLogger("phoneagent.speech")

Report = Callable[[str, dict[str, Any]], object]
T = TypeVar("T")

_CHOICES: weakref.WeakKeyDictionary[object, ProviderChoice] = weakref.WeakKeyDictionary()


def remember(instance: T, choice: ProviderChoice) -> T:
    """Note which settings choice made ``instance`` (for the names in fallback events)."""
    _CHOICES[instance] = choice
    return instance


def choice_of(instance: object) -> ProviderChoice | None:
    if isinstance(instance, stt.StreamAdapter):  # the adapter wraps request/response STTs
        instance = instance.wrapped_stt
    return _CHOICES.get(instance)


def fallback_data(component: str, instance: stt.STT | tts.TTS | llm.LLM, available: bool) -> dict[str, Any]:
    choice = choice_of(instance)
    if choice is not None:
        provider, model = choice.provider, choice.model
    else:
        provider, model = instance.provider.lower(), instance.model
    return {"component": component, "provider": provider, "model": model, "available": available}


def _adapter(component: object) -> object:
    # a FallbackAdapter over request/response STTs sits inside one StreamAdapter (see providers.py)
    if isinstance(component, stt.StreamAdapter):
        return component.wrapped_stt
    return component


def report_fallbacks(report: Report, *components: object) -> int:
    """Send every availability change of these components' FallbackAdapters to ``report``.

    Pass the session's STT, TTS and LLM; those that are not FallbackAdapters (a local model alone,
    the scripted brain) are skipped. Returns how many adapters are watched. The callbacks are
    synchronous (livekit's event emitter refuses coroutines) and do no I/O beyond ``report``'s.
    """

    def send(component: str, instance: Any, available: bool) -> None:
        data = fallback_data(component, instance, available)
        fields = {k: data[k] for k in ("component", "provider", "model")}
        if available:
            log.info("provider available again", extra=fields)
        else:
            log.warning("provider failed; the next one takes over", extra=fields)
        report("fallback", data)

    watched = 0
    for c in map(_adapter, components):
        if isinstance(c, stt.FallbackAdapter):
            c.on("stt_availability_changed", lambda ev: send("stt", ev.stt, ev.available))
        elif isinstance(c, tts.FallbackAdapter):
            c.on("tts_availability_changed", lambda ev: send("tts", ev.tts, ev.available))
        elif isinstance(c, llm.FallbackAdapter):
            c.on("llm_availability_changed", lambda ev: send("llm", ev.llm, ev.available))
        else:
            continue
        watched += 1
    return watched
