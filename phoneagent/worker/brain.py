"""The call's brain, chosen by the agent profile's ``llm`` dict: the scripted flow, or an LLM.

The scripted flow (:class:`ScriptedLLM`) is the default and needs no model. An LLM brain streams from
OpenAI or any OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp) or from Anthropic, always behind
livekit-agents' ``llm.FallbackAdapter`` (one LLM or several), whose availability events are recorded
on the call like the speech providers' (:func:`phoneagent.speech.fallbacks.report_fallbacks`).

The profile's ``llm`` dict::

    {"brain": "scripted", "script": {...}}                         # the default
    {"brain": "llm", "provider": "openai", "model": "gpt-4o-mini",
     "instructions": "You answer for Acme Dental ...", "temperature": 0.3,
     "fallbacks": [{"provider": "local", "model": "llama3.2:3b"}]}

``provider`` is ``openai`` (``base_url`` may point it at any compatible endpoint), ``anthropic``, or
``local`` (the OpenAI-compatible server at ``LOCAL_LLM_URL``, e.g. Ollama). In ``hybrid`` mode the
local server is added to the chain (after the others, or first with ``local_first``) when
``LOCAL_LLM_URL`` is set; ``local`` mode refuses providers over the network.

Keys never come from a profile. OPENAI_API_KEY / ANTHROPIC_API_KEY go only to the endpoint they are
configured for (OPENAI_BASE_URL / ANTHROPIC_BASE_URL): a profile that points ``base_url`` elsewhere
gets no key, so a profile cannot send the operator's key to a server of its choosing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from livekit.agents import llm

from phoneagent.config import Settings
from phoneagent.errors import ConfigError
from phoneagent.speech.providers import RETRY_INTERVAL_S, MadeFrom, ProviderChoice, retries
from phoneagent.telephony.destinations import TransferPolicy
from phoneagent.worker.brain_spec import (
    DEFAULT_INSTRUCTIONS,
    DEFAULT_MODELS,
    BrainSpec,
    LLMTarget,
    check_profile_url,
    parse_brain,
)
from phoneagent.worker.scripted import ScriptedFlow, ScriptedLLM


def transfer_policy(profile_llm: dict[str, Any] | None, script_destinations: list[str]) -> TransferPolicy:
    """The destinations a call's agent may transfer to: the profile's list and its flow's own."""
    try:
        listed = parse_brain(profile_llm).transfer_destinations
    except ConfigError:
        listed = []  # the brain is unusable (the scripted flow answers): its list is not trusted either
    return TransferPolicy.from_profile([*listed, *script_destinations])


def instructions_for(spec: BrainSpec) -> str:
    return spec.instructions or DEFAULT_INSTRUCTIONS


def _choice(settings: Settings, target: LLMTarget) -> tuple[ProviderChoice, str | None]:
    """The target as a provider choice, with the key it may carry (None: no key)."""
    check_profile_url(settings.profile_llm_urls, target.base_url)
    if target.provider == "local":
        url = target.base_url or settings.local_llm_url
        if not url:
            raise ConfigError(
                "the agent profile's brain uses provider 'local', and LOCAL_LLM_URL is not set",
                hint="set LOCAL_LLM_URL to an OpenAI-compatible server (Ollama: http://127.0.0.1:11434/v1)",
            )
        choice = ProviderChoice(
            "llm", "local", "openai-compatible", target.model or settings.local_llm_model, url
        )
        return choice, None
    if target.provider == "anthropic":
        key = settings.anthropic_api_key
        if key is None:
            raise ConfigError(
                "the agent profile's brain uses Anthropic, and ANTHROPIC_API_KEY is not set",
                hint="set ANTHROPIC_API_KEY, or choose provider 'openai' or 'local' in the profile",
            )
        model = target.model or DEFAULT_MODELS["anthropic"]
        return ProviderChoice("llm", "api", "anthropic", model, settings.anthropic_base_url), (
            key.get_secret_value()
        )
    url = target.base_url or settings.openai_base_url
    model = target.model or DEFAULT_MODELS["openai"]
    if url != settings.openai_base_url:  # another endpoint: it never gets the operator's key
        return ProviderChoice("llm", "api", "openai-compatible", model, url), None
    if settings.openai_api_key is None:
        raise ConfigError(
            "the agent profile's brain uses OpenAI, and OPENAI_API_KEY is not set",
            hint="set OPENAI_API_KEY, or choose provider 'local' (LOCAL_LLM_URL) in the profile",
        )
    return ProviderChoice("llm", "api", "openai", model, url), settings.openai_api_key.get_secret_value()


def llm_chain(settings: Settings, spec: BrainSpec) -> list[tuple[ProviderChoice, str | None]]:
    """The LLMs in the order they are tried, each with its key (empty for the scripted brain)."""
    primary = spec.primary
    if primary is None:
        return []
    targets = [primary, *spec.fallbacks]
    if settings.agent_mode == "local":
        remote = sorted({t.provider for t in targets if t.provider != "local"})
        if remote:
            raise ConfigError(
                f"AGENT_MODE=local keeps calls on this machine, and the agent profile's brain uses "
                f"{', '.join(remote)}",
                hint="use provider 'local' (LOCAL_LLM_URL) in the profile, or AGENT_MODE=hybrid",
            )
    has_local = any(t.provider == "local" for t in targets)
    if settings.agent_mode == "hybrid" and settings.local_llm_url and not has_local:
        local = LLMTarget(provider="local")
        targets = [*targets, local] if settings.fallback_order == "api_first" else [local, *targets]
    return [_choice(settings, t) for t in targets]


class ClosingLLMFallback(llm.FallbackAdapter):
    """An LLM FallbackAdapter that also closes the LLMs it was built over (their HTTP clients)."""

    def __init__(
        self, instances: list[llm.LLM[Any]], *, choices: Sequence[ProviderChoice], **options: Any
    ) -> None:
        super().__init__(instances, **options)
        self._built = list(instances)
        self.made_from = MadeFrom(instances, choices)

    async def aclose(self) -> None:
        await super().aclose()
        await asyncio.gather(*(i.aclose() for i in self._built))


def build_llm(settings: Settings, profile_llm: dict[str, Any] | None, flow: ScriptedFlow) -> llm.LLM[Any]:
    """The call's brain: the scripted flow, or a FallbackAdapter over the profile's LLMs.

    Raises ConfigError (naming the profile field or the variable) when the profile's brain cannot work.
    """
    spec = parse_brain(profile_llm)
    chain = llm_chain(settings, spec)
    if not chain:
        return ScriptedLLM(flow)
    from phoneagent.speech import plugins

    instances = [plugins.make_llm(c, api_key=key, temperature=spec.temperature) for c, key in chain]
    return ClosingLLMFallback(
        instances,
        choices=[c for c, _ in chain],
        # a local LLM's first token can take seconds on CPU: only a longer wait is a failure
        attempt_timeout=settings.llm_attempt_timeout_s,
        max_retry_per_llm=retries(settings, len(chain)),
        retry_interval=RETRY_INTERVAL_S,
    )


def describe_brain(settings: Settings, profile_llm: dict[str, Any] | None) -> str:
    """The brain for a log line: 'scripted' or the LLMs in order (never a key)."""
    chain = llm_chain(settings, parse_brain(profile_llm))
    return " then ".join(str(c) for c, _ in chain) if chain else "scripted"
