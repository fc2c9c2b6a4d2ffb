"""Provider fallbacks recorded on the call: the FallbackAdapters' availability events, as call events.

When a provider fails, its adapter marks it unavailable, moves on to the next one within the same
turn, and emits ``{stt,tts,llm}_availability_changed``; when a background probe finds it working
again, the same event says ``available=True``. :func:`report_fallbacks` turns each of these into one
``report("fallback", {"component", "provider", "model", "available"})`` call, with the provider named
as the settings name it (each adapter phoneagent builds knows which choice made which provider).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from livekit.agents import llm, stt, tts

from phoneagent.speech.providers import MadeFrom, ProviderChoice

log = logging.getLogger("phoneagent.speech")

Report = Callable[[str, dict[str, Any]], object]


def fallback_data(
    component: str, instance: Any, available: bool, choice: ProviderChoice | None = None
) -> dict[str, Any]:
    if choice is not None:
        provider, model = choice.provider, choice.model
    else:
        provider, model = str(instance.provider).lower(), instance.model
    return {"component": component, "provider": provider, "model": model, "available": available}


def _unwrapped(component: object) -> object:
    # a FallbackAdapter over request/response STTs sits inside one StreamAdapter (see providers.py)
    if isinstance(component, stt.StreamAdapter):
        return component.wrapped_stt
    return component


def report_fallbacks(report: Report, *components: object) -> int:
    """Send every availability change of these components' FallbackAdapters to ``report``.

    Pass the session's STT, TTS and LLM; those that are not FallbackAdapters (a local model alone,
    the scripted brain) are skipped. Returns how many adapters are watched. The callbacks are
    synchronous (livekit's event emitter refuses coroutines) and do no I/O beyond ``report``'s.
    An adapter built by phoneagent (:class:`~phoneagent.speech.providers.MadeFrom`) names each
    provider as the settings do; another adapter's providers are named by their own properties.
    """

    def watch(component: str, adapter: object) -> Callable[[Any, bool], None]:
        made_from: MadeFrom | None = getattr(adapter, "made_from", None)

        def send(instance: Any, available: bool) -> None:
            # livekit's STT adapter wraps each request/response STT it was given in a StreamAdapter
            instance = _unwrapped(instance)
            choice = made_from.choice_of(instance) if made_from is not None else None
            data = fallback_data(component, instance, available, choice)
            fields = {k: data[k] for k in ("component", "provider", "model")}
            if available:
                log.info("provider available again", extra=fields)
            else:
                log.warning("provider failed; the next one takes over", extra=fields)
            report("fallback", data)

        return send

    watched = 0
    for c in map(_unwrapped, components):
        if isinstance(c, stt.FallbackAdapter):
            on_stt = watch("stt", c)
            c.on("stt_availability_changed", lambda ev, send=on_stt: send(ev.stt, ev.available))
        elif isinstance(c, tts.FallbackAdapter):
            on_tts = watch("tts", c)
            c.on("tts_availability_changed", lambda ev, send=on_tts: send(ev.tts, ev.available))
        elif isinstance(c, llm.FallbackAdapter):
            on_llm = watch("llm", c)
            c.on("llm_availability_changed", lambda ev, send=on_llm: send(ev.llm, ev.available))
        else:
            continue
        watched += 1
    return watched
