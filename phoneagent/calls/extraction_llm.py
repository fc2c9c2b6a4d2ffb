"""The post-call extraction's LLM: OpenAI's chat completions wire format, one request per attempt.

The one place its answers and failures are read. Which server answers is the operator's choice
(``PHONEAGENT_OUTCOME_EXTRACTION``): ``openai`` (``OPENAI_BASE_URL`` with ``OPENAI_API_KEY``, or any
compatible server there) or ``local`` (``LOCAL_LLM_URL``: Ollama, vLLM, llama.cpp; no key), the
model ``PHONEAGENT_OUTCOME_EXTRACTION_MODEL`` (empty: gpt-4o-mini, or ``LOCAL_LLM_MODEL``).

The request asks for structured output (``response_format`` ``json_schema``, strict), which OpenAI,
Ollama and vLLM all take; the answer is the message's content, a JSON object. Failures become an
:class:`~phoneagent.errors.ExtractionError`: retryable for a 5xx, 408 or 429, a timeout or a network
error; not for any other 4xx, a refusal, or an answer that is not a JSON object. What a failure
says goes on the tenant's call record: never the provider's own message (OpenAI's names part of the
key; some servers echo the request, the caller's words with it). The operator's log gets the HTTP
status and the error's code and type only.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from phoneagent.calls.outcome_schema import wire_schema
from phoneagent.config import Settings
from phoneagent.errors import ExtractionError

log = logging.getLogger("phoneagent.extraction")

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
INSTRUCTIONS = (
    "You read the transcript of a phone call between a caller and an automated phone agent, and fill "
    "in the fields of the given JSON schema with what the call says. Use only what the transcript "
    "says: give null for a field the call does not settle. Answer with the JSON object only."
)
RETRYABLE_STATUS = frozenset({408, 429})


@dataclass(frozen=True)
class ExtractionTarget:
    base_url: str
    model: str
    key: str | None = field(default=None, repr=False)


def extraction_target(settings: Settings) -> ExtractionTarget | None:
    """Where the extraction asks, from the operator's settings; None when extraction is off."""
    if settings.outcome_extraction == "off":
        return None
    if settings.outcome_extraction == "local":
        model = settings.outcome_extraction_model or settings.local_llm_model
        return ExtractionTarget(settings.local_llm_url, model)
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    model = settings.outcome_extraction_model or DEFAULT_OPENAI_MODEL
    return ExtractionTarget(settings.openai_base_url, model, key)


class ExtractionLLM(Protocol):
    model: str

    async def extract(self, transcript: str, schema: dict[str, Any]) -> Any:
        """The JSON value the LLM answered for ``schema`` from ``transcript``; ExtractionError."""
        ...

    async def aclose(self) -> None: ...


class ChatCompletionsLLM:
    """An OpenAI-compatible ``/chat/completions`` endpoint, asked for the schema as structured output."""

    def __init__(self, target: ExtractionTarget, *, timeout_s: float = 60.0) -> None:
        self.model = target.model
        self._url = f"{target.base_url.rstrip('/')}/chat/completions"
        headers = {"Authorization": f"Bearer {target.key}"} if target.key else {}
        self._client = httpx.AsyncClient(timeout=timeout_s, headers=headers, follow_redirects=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    def request_body(self, transcript: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": INSTRUCTIONS},
                {"role": "user", "content": f"The call's transcript:\n\n{transcript}"},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "call_outcome", "strict": True, "schema": wire_schema(schema)},
            },
            "temperature": 0,
            "stream": False,
        }

    async def extract(self, transcript: str, schema: dict[str, Any]) -> Any:
        try:
            resp = await self._client.post(self._url, json=self.request_body(transcript, schema))
        except httpx.TimeoutException:
            raise ExtractionError("the LLM did not answer in time", retryable=True) from None
        except httpx.HTTPError as exc:
            log.info("extraction LLM unreachable", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
            raise ExtractionError(
                f"the LLM could not be reached ({type(exc).__name__})", retryable=True
            ) from None
        if resp.status_code >= 400:
            # the error's code and type only: a provider's message may quote part of the key, and some
            # servers echo the request, which holds the caller's words
            log.info(
                "extraction LLM refused the request",
                extra={"status_code": resp.status_code, **_error_kind(resp)},
            )
            retryable = resp.status_code >= 500 or resp.status_code in RETRYABLE_STATUS
            raise ExtractionError(f"the LLM answered HTTP {resp.status_code}", retryable=retryable)
        return _content(resp)


def _error_kind(resp: httpx.Response) -> dict[str, str]:
    try:
        err = resp.json().get("error")
    except (ValueError, AttributeError):
        return {}
    if not isinstance(err, dict):
        return {}
    return {k: str(err[k])[:80] for k in ("code", "type") if isinstance(err.get(k), str | int)}


def _content(resp: httpx.Response) -> Any:
    """The JSON value in a chat completion's first message; ExtractionError (not retryable) else."""
    try:
        message = resp.json()["choices"][0]["message"]
        finish = resp.json()["choices"][0].get("finish_reason")
    except (ValueError, KeyError, IndexError, TypeError):
        raise ExtractionError("the LLM's answer is not a chat completion") from None
    if not isinstance(message, dict):
        raise ExtractionError("the LLM's answer is not a chat completion")
    if message.get("refusal"):
        raise ExtractionError("the LLM refused to answer")
    if finish == "length":
        raise ExtractionError("the LLM's answer was cut off (its length limit)")
    content = message.get("content")
    if not isinstance(content, str):
        raise ExtractionError("the LLM's answer has no content")
    try:
        return json.loads(content)
    except ValueError:
        raise ExtractionError("the LLM's answer is not JSON") from None
