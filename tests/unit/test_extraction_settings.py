"""Where the post-call extraction asks, from the operator's settings (and the settings it refuses),
and how the review page words what it gave."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from phoneagent.calls.background import Background
from phoneagent.calls.extraction_llm import DEFAULT_OPENAI_MODEL, ExtractionTarget, extraction_target
from phoneagent.config import Settings
from phoneagent.db.engine import make_engine, session_factory
from phoneagent.db.models import Call
from phoneagent.review.views import outcome_view

MakeSettings = Callable[..., Settings]


def test_extraction_is_off_unless_the_operator_turns_it_on(make_settings: MakeSettings) -> None:
    assert extraction_target(make_settings()) is None


def test_openai_extraction_takes_the_openai_endpoint_and_key(make_settings: MakeSettings) -> None:
    s = make_settings(
        AGENT_MODE="api",
        OPENAI_API_KEY="sk-op",
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        PHONEAGENT_OUTCOME_EXTRACTION="openai",
    )
    target = extraction_target(s)
    assert target == ExtractionTarget("http://127.0.0.1:9/v1", DEFAULT_OPENAI_MODEL, "sk-op")
    assert "sk-op" not in repr(target)
    named = make_settings(
        AGENT_MODE="hybrid",
        OPENAI_API_KEY="sk-op",
        PHONEAGENT_OUTCOME_EXTRACTION="openai",
        PHONEAGENT_OUTCOME_EXTRACTION_MODEL="gpt-4.1-nano",
    )
    assert extraction_target(named) == ExtractionTarget("https://api.openai.com/v1", "gpt-4.1-nano", "sk-op")


def test_local_extraction_takes_the_local_llm_without_a_key(make_settings: MakeSettings) -> None:
    s = make_settings(
        LOCAL_LLM_URL="http://127.0.0.1:11434/v1",
        OPENAI_API_KEY="sk-op",
        PHONEAGENT_OUTCOME_EXTRACTION="local",
    )
    assert extraction_target(s) == ExtractionTarget("http://127.0.0.1:11434/v1", "llama3.2:3b", None)


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"PHONEAGENT_OUTCOME_EXTRACTION": "local"}, "needs LOCAL_LLM_URL"),
        ({"PHONEAGENT_OUTCOME_EXTRACTION": "openai", "OPENAI_API_KEY": "sk-op"}, "AGENT_MODE=local"),
        ({"PHONEAGENT_OUTCOME_EXTRACTION": "openai", "AGENT_MODE": "api"}, "needs OPENAI_API_KEY"),
        ({"PHONEAGENT_OUTCOME_EXTRACTION": "anthropic"}, "outcome_extraction"),
    ],
)
def test_extraction_settings_that_cannot_work_are_refused_at_start(
    make_settings: MakeSettings, values: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValidationError, match=says):
        make_settings(**values)


def test_the_review_page_words_the_extracted_fields() -> None:
    call = Call(
        id="call_1",
        outcome={
            "extracted": {"day": "friday", "party": 4, "callback": True, "topics": ["menu", "parking"]},
            "extraction": {"status": "done", "model": "m", "at": "2026-12-08T09:00:00+00:00"},
        },
    )
    view = outcome_view(call, [])
    assert view is not None and view.extraction is not None
    assert view.extraction.fields == [
        ("day", "friday"),
        ("party", "4"),
        ("callback", "yes"),
        ("topics", "menu, parking"),
    ]
    assert (view.extraction.status, view.extraction.model, view.extraction.error) == ("done", "m", "")
    failed = Call(
        id="call_2", outcome={"extraction": {"status": "failed", "model": "m", "error": "HTTP 400"}}
    )
    failed_view = outcome_view(failed, [])
    assert failed_view is not None and failed_view.extraction is not None
    assert (failed_view.extraction.fields, failed_view.extraction.error) == ([], "HTTP 400")
    plain = outcome_view(Call(id="call_3", outcome={"intent": "x"}), [])
    assert plain is not None and plain.extraction is None


async def test_the_background_work_runs_an_extractor_built_from_the_settings(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = make_settings(
        PHONEAGENT_STATE_DIR=str(tmp_path),
        LOCAL_LLM_URL="http://127.0.0.1:9/v1",
        PHONEAGENT_OUTCOME_EXTRACTION="local",
        PHONEAGENT_OUTCOME_EXTRACTION_MAX_ATTEMPTS=7,
        PHONEAGENT_OUTCOME_EXTRACTION_RETRY_BASE_S=2.0,
        PHONEAGENT_OUTCOME_EXTRACTION_TIMEOUT_S=20.0,
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    background = Background(settings, session_factory(engine))
    try:
        assert (background.extractor.policy.max_attempts, background.extractor.policy.base_s) == (7, 2.0)
        assert background.extractor.lease_for.total_seconds() == 50.0  # the timeout, and 30 s
    finally:
        await background.stop()
        engine.dispose()
