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
from typing import Any, Literal

from livekit.agents import llm
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from phoneagent.config import Settings
from phoneagent.errors import ConfigError
from phoneagent.speech.providers import RETRY_INTERVAL_S, ProviderChoice, retries
from phoneagent.worker.scripted import ScriptedFlow, ScriptedLLM

DEFAULT_INSTRUCTIONS = (
    "You are a phone agent. The caller hears what you write, through a phone line: answer in one or "
    "two short, plain spoken sentences, with no lists, markup or emoji."
)
DEFAULT_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-6"}
Provider = Literal["openai", "anthropic", "local"]


def _http_url(v: str | None) -> str | None:
    if v is None:
        return None
    v = v.strip().rstrip("/")
    if not v.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return v


class LLMTarget(BaseModel):
    """One LLM: a provider, its model, and (for OpenAI-compatible ones) where it answers."""

    model_config = ConfigDict(extra="forbid")
    provider: Provider
    model: str | None = Field(default=None, min_length=1, max_length=200)
    base_url: str | None = None

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return _http_url(v)

    @model_validator(mode="after")
    def _base_url_applies(self) -> LLMTarget:
        if self.base_url and self.provider == "anthropic":
            raise ValueError("base_url applies to provider openai or local, not anthropic")
        return self


class BrainSpec(BaseModel):
    """The agent profile's ``llm`` dict, validated."""

    model_config = ConfigDict(extra="forbid")
    brain: Literal["scripted", "llm"] = "scripted"
    provider: Provider | None = None
    model: str | None = Field(default=None, min_length=1, max_length=200)
    base_url: str | None = None
    instructions: str | None = Field(default=None, min_length=1, max_length=20_000)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    fallbacks: list[LLMTarget] = Field(default_factory=list, max_length=4)
    # the scripted flow's intents (phoneagent.worker.scripted.Script.from_dict)
    script: dict[str, Any] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return _http_url(v)

    @model_validator(mode="after")
    def _llm_fields_need_the_llm_brain(self) -> BrainSpec:
        if self.brain == "scripted":
            given = [k for k in ("provider", "model", "base_url", "fallbacks") if getattr(self, k)]
            if given:
                raise ValueError(f"{', '.join(given)} set but brain is 'scripted'; set brain to 'llm'")
        return self

    @property
    def primary(self) -> LLMTarget | None:
        if self.brain != "llm":
            return None
        return LLMTarget(provider=self.provider or "openai", model=self.model, base_url=self.base_url)


def parse_brain(profile_llm: dict[str, Any] | None) -> BrainSpec:
    """The profile's ``llm`` dict as a BrainSpec; a ConfigError that names the field when it is wrong."""
    try:
        return BrainSpec.model_validate(profile_llm or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"llm.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else f"llm: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(
            f"agent profile brain is invalid: {problems}",
            hint='e.g. {"brain": "llm", "provider": "openai", "model": "gpt-4o-mini"}',
        ) from None


def instructions_for(spec: BrainSpec) -> str:
    return spec.instructions or DEFAULT_INSTRUCTIONS


def _choice(settings: Settings, target: LLMTarget) -> tuple[ProviderChoice, str | None]:
    """The target as a provider choice, with the key it may carry (None: no key)."""
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

    def __init__(self, instances: list[llm.LLM], **options: Any) -> None:
        super().__init__(instances, **options)
        self._built = list(instances)

    async def aclose(self) -> None:
        await super().aclose()
        await asyncio.gather(*(i.aclose() for i in self._built))


def build_llm(settings: Settings, profile_llm: dict[str, Any] | None, flow: ScriptedFlow) -> llm.LLM:
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
        # a local LLM's first token can take seconds on CPU: only a longer wait is a failure
        attempt_timeout=settings.llm_attempt_timeout_s,
        max_retry_per_llm=retries(settings, len(chain)),
        retry_interval=RETRY_INTERVAL_S,
    )


def describe_brain(settings: Settings, profile_llm: dict[str, Any] | None) -> str:
    """The brain for a log line: 'scripted' or the LLMs in order (never a key)."""
    chain = llm_chain(settings, parse_brain(profile_llm))
    return " then ".join(str(c) for c, _ in chain) if chain else "scripted"
