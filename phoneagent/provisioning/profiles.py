"""An agent profile as the worker will use it, checked when it is saved: a profile the worker could
not use, or one that points the worker somewhere it must not go, is a 422 naming the field.

- ``stt``: the worker's own reading (:meth:`WhisperOptions.from_profile`: known keys, models, values)
  and its API ``provider``, one the operator's settings enable (:mod:`phoneagent.speech.profile_speech`);
- ``tts``: its API ``provider`` and ``voice``, likewise;
- ``llm``: the worker's own schema (:class:`phoneagent.worker.brain_spec.BrainSpec`); a ``base_url``
  (also in ``fallbacks``) only when the operator listed it (``PHONEAGENT_PROFILE_LLM_URLS``);
- ``llm.script``: the scripted flow's own reading (:meth:`Script.from_dict`: intents, actions, the
  slots they collect);
- transfer destinations (``llm.transfer_destinations`` and the scripted flow's ``transfer_to``):
  numbers the operator's number policy allows (no premium-rate, shared-cost or unknown numbers,
  only the allowed countries);
- ``success`` (its shape is the API schema's): with the scripted brain, an intent of the flow and
  slots its intents collect (a condition no call could meet is a mistake).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from phoneagent.config import Settings
from phoneagent.errors import ConfigError, InvalidField
from phoneagent.provisioning.tenants import number_policy_for
from phoneagent.speech.profile_speech import stt_provider_of, tts_choice_of
from phoneagent.telephony.destinations import check_destinations
from phoneagent.worker.brain_spec import BrainSpec, check_profile_url, parse_brain
from phoneagent.worker.script_spec import DEFAULT_SCRIPT_DATA, Script, ScriptError


def check_profile(
    settings: Settings,
    session: Session,
    tenant_id: str,
    llm: dict[str, Any] | None,
    stt: dict[str, Any] | None = None,
    success: dict[str, Any] | None = None,
    tts: dict[str, Any] | None = None,
) -> None:
    for section, read in (("stt", stt_provider_of), ("tts", tts_choice_of)):
        try:
            read(settings, stt if section == "stt" else tts)
        except ConfigError as exc:
            raise InvalidField(section, f"{exc.message} ({exc.hint})" if exc.hint else exc.message) from None
    if stt:
        # the worker's own reading of the section (imported only when a profile sets one: it loads
        # livekit-agents)
        from phoneagent.speech.whisper_stt import WhisperOptions

        try:
            WhisperOptions.from_profile(stt)
        except ConfigError as exc:
            raise InvalidField("stt", f"{exc.message} ({exc.hint})" if exc.hint else exc.message) from None
    try:
        spec = parse_brain(llm)
    except ConfigError as exc:
        raise InvalidField("llm", exc.message) from None
    for url in (spec.base_url, *(f.base_url for f in spec.fallbacks)):
        try:
            check_profile_url(settings.profile_llm_urls, url)  # the worker's own check
        except ConfigError as exc:
            raise InvalidField("llm", f"{exc.message} ({exc.hint})") from None
    script = _script(spec)
    if success:
        _check_success(spec, script, success)
    intents = spec.script.get("intents", []) if isinstance(spec.script, dict) else []
    flow_targets = [str(i["transfer_to"]) for i in intents if isinstance(i, dict) and i.get("transfer_to")]
    try:
        numbers = number_policy_for(session, settings, tenant_id)
        check_destinations([*spec.transfer_destinations, *flow_targets], numbers)
    except ValueError as exc:
        raise InvalidField("llm", f"transfer destination: {exc}") from None


def _script(spec: BrainSpec) -> Script:
    """The flow the worker will run (the built-in one when the profile declares none)."""
    try:
        return Script.from_dict(spec.script or DEFAULT_SCRIPT_DATA, greeting="")
    except ScriptError as exc:
        raise InvalidField("llm", str(exc)) from None


def _check_success(spec: BrainSpec, script: Script, success: dict[str, Any]) -> None:
    if spec.brain != "scripted":
        return  # an LLM brain's outcome is what its tools record: nothing to check it against
    intent = success.get("intent")
    if intent and intent not in {i.name for i in script.intents}:
        raise InvalidField("success", f"intent {intent!r} is not an intent of the profile's script")
    named = {*success.get("slots", []), *success.get("values", {})}
    unknown = sorted(named - script.slot_names())
    if unknown:
        raise InvalidField(
            "success", f"slot {', '.join(unknown)} is collected by no intent of the profile's script"
        )
