"""The agent profile's ``llm`` dict, validated: shared by the worker (which builds the brain from it)
and the control plane (which refuses a profile the worker could not use). No livekit import here:
the control plane loads it at start."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from phoneagent.errors import ConfigError
from phoneagent.telephony.destinations import normalize_destination
from phoneagent.urls import check_http_url

DEFAULT_INSTRUCTIONS = (
    "You are a phone agent. The caller hears what you write, through a phone line: answer in one or "
    "two short, plain spoken sentences, with no lists, markup or emoji."
)
DEFAULT_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-6"}
Provider = Literal["openai", "anthropic", "local"]


def _http_url(v: str | None) -> str | None:
    if v is None:
        return None
    return check_http_url(v.strip().rstrip("/"))


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


BRIEFING_FIELD = r"\{([a-z_][a-z0-9_]{0,39})\}"


class WarmTransferSpec(BaseModel):
    """How the agent makes a warm transfer (``llm.warm_transfer``): it dials the person through the
    tenant's outbound trunk while the caller hears ``hold``, briefs them, and connects the caller once
    they accept (see ``phoneagent.worker.warm_transfer``)."""

    model_config = ConfigDict(extra="forbid")
    # the trunk that dials the person; default: the call's own trunk (outbound calls) or the tenant's
    # only outbound trunk
    outbound_trunk_id: str | None = Field(default=None, min_length=1, max_length=40)
    ring_timeout_s: int = Field(default=20, ge=5, le=60)
    # what the caller hears on hold: a soft two-note chime every few seconds, a short beep, or nothing
    hold: Literal["chime", "beep", "none"] = "chime"
    # what the scripted flow tells the person (an LLM brain summarises the call instead): {caller},
    # {intent}, {last_words} and any slot the flow collected, e.g. {day}
    briefing: str = Field(
        default="A caller on {caller} is holding about {intent}. They said: {last_words}.",
        min_length=1,
        max_length=1000,
    )
    # how long the person has to accept (a key or a yes) once briefed
    answer_timeout_s: int = Field(default=15, ge=5, le=60)

    @field_validator("briefing")
    @classmethod
    def _plain(cls, v: str) -> str:
        if any(ord(ch) < 32 and ch not in "\n\t" for ch in v):
            raise ValueError("no control characters")
        return v


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
    # where the agent may transfer a call (the LLM's transfer_call tool); the scripted flow's own
    # transfer_to destinations are allowed besides. Nothing else: a caller cannot talk the agent into
    # a premium number or an outside SIP address.
    transfer_destinations: list[str] = Field(default_factory=list, max_length=20)
    # warm transfers (the scripted flow's warm_transfer action, the LLM's warm_transfer_call tool) go
    # to the same destinations, phone numbers only: they are dialed through an outbound trunk
    warm_transfer: WarmTransferSpec = Field(default_factory=WarmTransferSpec)

    @field_validator("transfer_destinations")
    @classmethod
    def _destinations(cls, v: list[str]) -> list[str]:
        out = []
        for d in v:
            uri = normalize_destination(d)
            if uri is None:
                raise ValueError(f"{d!r} is not a tel:+<number> or sip:user@host destination")
            out.append(uri)
        return out

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


def check_profile_url(allowed: Sequence[str], url: str | None) -> None:
    """A profile's ``base_url`` is used only when the operator listed it (PHONEAGENT_PROFILE_LLM_URLS):
    a tenant's profile must not make the worker send requests where it chooses (this host, the
    private network), in any mode. The worker and the control plane both ask here."""
    if url and url.rstrip("/") not in allowed:
        raise ConfigError(
            f"the agent profile's llm base_url {url!r} is not one the operator allows",
            hint="leave base_url out (the operator's OPENAI_BASE_URL / LOCAL_LLM_URL answer), or ask the "
            "operator to list it in PHONEAGENT_PROFILE_LLM_URLS",
        )
