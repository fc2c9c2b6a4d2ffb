"""The post-call extraction, on SQLite and PostgreSQL, against a local OpenAI wire-format server
(``FakeOpenAI``): an agent profile's outcome_schema checked when saved, filled from an ended call's
transcript into ``outcome.extracted`` (the worker's outcome kept), retried on 5xx and network errors,
failed at once on a 4xx or a wrong answer, queued once and stored once across a control plane that
stops mid-way, the ``call.outcome`` webhook queued once, no other tenant's profile applied, and the
migration both ways. The extractor's passes are run by the tests, on a clock they move."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from phoneagent.api.app import create_app
from phoneagent.calls.extraction import Extractor, RetryPolicy
from phoneagent.calls.extraction_llm import ChatCompletionsLLM, ExtractionTarget
from phoneagent.calls.outcome_schema import wire_schema
from phoneagent.calls.worker_events import ingest_worker_events
from phoneagent.config import Settings
from phoneagent.db.engine import make_engine, session_factory
from phoneagent.db.migrate import alembic_config, upgrade
from phoneagent.db.models import AgentProfile, Call, OutcomeExtraction, WebhookDelivery, WebhookEndpoint
from phoneagent.provisioning.keys import create_key
from tests.integration.test_review_routes import _sign_in
from tests.peers.fake_telephony import FakeClock
from tests.peers.local_server import closed_port_url
from tests.peers.openai_wire import FakeOpenAI
from tests.peers.postgres import TempPostgres

KEY = "sk-extraction-test"
MODEL = "gpt-test-mini"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "day": {"type": "string", "enum": ["monday", "friday"], "description": "the day booked"},
        "party_size": {"type": "integer"},
        "wants_callback": {"type": "boolean"},
    },
    "required": ["day"],
}
ANSWER = {"day": "friday", "party_size": 4, "wants_callback": None}
WORKER_OUTCOME: dict[str, Any] = {
    "intent": "booking",
    "intents": [{"name": "booking", "via": "voice", "turn": 1}],
    "confirmations": [],
    "slots": {},
}
CALLER_WORDS = "A table for four on Friday, please."


@dataclass
class World:
    client: TestClient
    sessions: sessionmaker[Session]
    h: dict[str, str]
    tenant: str
    other_tenant: str
    llm: FakeOpenAI
    clock: FakeClock
    rooms: int = 0

    def profile(self, **body: Any) -> str:
        r = self.client.post("/agents", headers=self.h, json={"name": f"p{self.rooms}", **body})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def ended_call(
        self,
        agent: str | None,
        *,
        tenant: str | None = None,
        caller: str | None = CALLER_WORDS,
        reported: bool = True,
    ) -> str:
        """A call of ``agent`` that had a greeting, the caller's words (unless None), the worker's
        outcome, and ended (the worker hung up), as the worker reports them."""
        self.rooms += 1
        room = f"call-x{self.rooms}"
        with self.sessions() as s:
            call = Call(
                tenant_id=tenant or self.tenant,
                direction="inbound",
                status="in_progress",
                room_name=room,
                agent_profile_id=agent,
            )
            s.add(call)
            s.commit()
            call_id = call.id
            at = datetime.now(UTC).timestamp() - 30
            events = [
                _event(f"{room}-t0", room, "turn", at, {"seq": 0, "speaker": "agent", "text": "Hello."})
            ]
            if caller is not None:
                turn = {"seq": 1, "speaker": "caller", "text": caller}
                events.append(_event(f"{room}-t1", room, "turn", at + 1, turn))
            if reported:
                events.append(_event(f"{room}-o", room, "outcome", at + 2, WORKER_OUTCOME))
            events.append(_event(f"{room}-h", room, "hangup", at + 3, {"reason": "agent_hangup"}))
            ingest_worker_events(s, events)
        return call_id

    def extractor(self, *, llm_url: str | None = None, off: bool = False, **policy: Any) -> Extractor:
        target = ExtractionTarget(llm_url or self.llm.base_url, MODEL, KEY)
        return Extractor(
            self.sessions,
            None if off else ChatCompletionsLLM(target, timeout_s=5.0),
            policy=RetryPolicy(**{"jitter": 0.0, **policy}),
            timeout_s=5.0,
            clock=self.clock,
        )

    def outcome(self, call_id: str) -> dict[str, Any]:
        r = self.client.get(f"/calls/{call_id}", headers=self.h)
        assert r.status_code == 200, r.text
        return dict(r.json()["outcome"] or {})

    def deliveries(self, call_id: str, event_type: str = "call.outcome") -> list[WebhookDelivery]:
        with self.sessions() as s:
            return list(
                s.scalars(
                    select(WebhookDelivery).where(
                        WebhookDelivery.call_id == call_id, WebhookDelivery.event_type == event_type
                    )
                )
            )

    def row(self, call_id: str) -> OutcomeExtraction | None:
        with self.sessions() as s:
            return s.get(OutcomeExtraction, call_id)


def _event(event_id: str, room: str, type_: str, at: float, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "room": room, "type": type_, "at": at, "data": data}


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(key=KEY, reply=json.dumps(ANSWER)) as server:
        yield server


@pytest.fixture
def world(db_url: str, tmp_path: Path, llm: FakeOpenAI) -> Iterator[World]:
    settings = Settings(state_dir=tmp_path / "state", database_url=db_url, background=False)
    app = create_app(settings)
    with app.state.sessions() as s:
        token, key = create_key(s, tenant_name="acme")
        _, other = create_key(s, tenant_name="other")
        s.add(WebhookEndpoint(tenant_id=key.tenant_id, url="https://example.com/hook", secret="whsec_x"))
        s.commit()
    # the extraction is due the ended grace after the call ended: this clock is past it
    clock = FakeClock(datetime.now(UTC) + timedelta(seconds=10))
    with TestClient(app) as c:
        yield World(
            c,
            app.state.sessions,
            {"Authorization": f"Bearer {token}"},
            key.tenant_id,
            other.tenant_id,
            llm,
            clock,
        )
    app.state.engine.dispose()


# ---- the profile's schema --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ({"type": "object", "properties": {"day": {"type": "string", "pattern": "^[a-z]+$"}}}, "pattern"),
        ({"type": "object", "properties": {"a": {"type": "object"}}}, "properties.a.type"),
        ({"type": "string"}, '"object"'),
        ({"type": "object", "properties": {f"f{i}": {"type": "string"} for i in range(51)}}, "at most 50"),
        ({"type": "object", "properties": {"a": {"type": "string", "description": "x" * 20_000}}}, "16 kB"),
        ("a schema", "dictionary"),
    ],
)
def test_a_profile_with_an_outcome_schema_outside_the_subset_is_a_422_naming_the_field(
    world: World, schema: Any, says: str
) -> None:
    r = world.client.post("/agents", headers=world.h, json={"name": "bad", "outcome_schema": schema})
    assert r.status_code == 422, r.text
    assert any(d["field"].endswith("outcome_schema") and says in d["reason"] for d in r.json()["detail"]), (
        r.text
    )
    agent = world.profile()
    r = world.client.patch(f"/agents/{agent}", headers=world.h, json={"outcome_schema": schema})
    assert r.status_code == 422, r.text


def test_a_profile_keeps_its_outcome_schema_and_an_empty_one_removes_it(world: World) -> None:
    agent = world.profile(outcome_schema=SCHEMA)
    assert world.client.get(f"/agents/{agent}", headers=world.h).json()["outcome_schema"] == SCHEMA
    r = world.client.patch(f"/agents/{agent}", headers=world.h, json={"greeting": "Hi"})
    assert r.json()["outcome_schema"] == SCHEMA
    r = world.client.patch(f"/agents/{agent}", headers=world.h, json={"outcome_schema": {}})
    assert r.status_code == 200 and r.json()["outcome_schema"] is None
    call_id = world.ended_call(agent)
    assert world.row(call_id) is None  # no schema: nothing queued


# ---- the extraction ---------------------------------------------------------------------------------------


async def test_local_openai_wire_format_server_fills_the_schema_from_the_transcript(world: World) -> None:
    agent = world.profile(outcome_schema=SCHEMA)
    call_id = world.ended_call(agent)
    extractor = world.extractor()
    try:
        assert await extractor.extract_due() == 1
        assert await extractor.extract_due() == 0  # once
    finally:
        await extractor.aclose()
    (req,) = world.llm.requests
    assert req.path == "/v1/chat/completions" and req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.body["model"] == MODEL and req.body.get("stream") is False
    assert "Caller: " + CALLER_WORDS in req.body["messages"][-1]["content"]
    assert "Agent: Hello." in req.body["messages"][-1]["content"]
    fmt = req.body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"] == wire_schema(SCHEMA)
    outcome = world.outcome(call_id)
    assert outcome["extracted"] == {"day": "friday", "party_size": 4}  # wants_callback null: left out
    assert outcome["extraction"]["status"] == "done" and outcome["extraction"]["model"] == MODEL
    assert "error" not in outcome["extraction"] and outcome["extraction"]["at"]
    assert outcome["intent"] == "booking"  # the worker's outcome is kept
    # a worker outcome arriving later keeps the extraction's part
    with world.sessions() as s:
        room = s.get(Call, call_id).room_name  # type: ignore[union-attr]
        later = {**WORKER_OUTCOME, "intent": "change"}
        ingest_worker_events(
            s, [_event("late-o", str(room), "outcome", datetime.now(UTC).timestamp(), later)]
        )
    outcome = world.outcome(call_id)
    assert outcome["intent"] == "change" and outcome["extracted"] == {"day": "friday", "party_size": 4}
    # call.outcome queued once, with the outcome; call.ended (rendered later) is its own
    (delivery,) = world.deliveries(call_id)
    assert delivery.event_id == f"evt_{call_id}_call_outcome"
    assert delivery.payload is not None and delivery.payload["outcome"]["extracted"] == outcome["extracted"]
    assert delivery.payload["outcome"]["extraction"]["status"] == "done"
    assert len(world.deliveries(call_id, "call.ended")) == 1


async def test_a_5xx_and_a_dropped_connection_are_retried_after_a_backoff_then_it_succeeds(
    world: World,
) -> None:
    agent = world.profile(outcome_schema=SCHEMA)
    call_id = world.ended_call(agent)
    world.llm.answers = [503]
    extractor = world.extractor(max_attempts=4, base_s=10.0)
    try:
        assert await extractor.extract_due() == 1
        row = world.row(call_id)
        assert row is not None and row.status == "pending" and row.attempts == 1
        assert row.last_error == "the LLM answered HTTP 503"
        assert "extraction" not in world.outcome(call_id)  # nothing decided yet
        assert await extractor.extract_due() == 0  # not before the backoff
        world.clock.advance(10.0)
        world.llm.fail = "close"  # the connection ends without an answer
        assert await extractor.extract_due() == 1
        row = world.row(call_id)
        assert row is not None and row.attempts == 2 and "could not be reached" in (row.last_error or "")
        world.clock.advance(29.0)
        assert await extractor.extract_due() == 0  # the second backoff is 3x the first
        world.clock.advance(1.0)
        world.llm.fail = None
        assert await extractor.extract_due() == 1
    finally:
        await extractor.aclose()
    assert len(world.llm.requests) == 3
    outcome = world.outcome(call_id)
    assert outcome["extraction"]["status"] == "done" and outcome["extracted"]["day"] == "friday"
    assert len(world.deliveries(call_id)) == 1


async def test_attempts_used_up_fail_the_extraction_with_the_last_reason(world: World) -> None:
    agent = world.profile(outcome_schema=SCHEMA)
    call_id = world.ended_call(agent)
    world.llm.answers = [500, 502]
    extractor = world.extractor(max_attempts=2, base_s=1.0)
    try:
        assert await extractor.extract_due() == 1
        world.clock.advance(1.0)
        assert await extractor.extract_due() == 1
        world.clock.advance(3600.0)
        assert await extractor.extract_due() == 0
    finally:
        await extractor.aclose()
    assert len(world.llm.requests) == 2
    report = world.outcome(call_id)["extraction"]
    assert report["status"] == "failed" and report["error"] == "the LLM answered HTTP 502 (after 2 attempts)"
    assert len(world.deliveries(call_id)) == 1


async def test_an_unreachable_llm_is_retried_like_a_5xx(world: World) -> None:
    agent = world.profile(outcome_schema=SCHEMA)
    call_id = world.ended_call(agent)
    extractor = world.extractor(llm_url=f"{closed_port_url()}/v1", max_attempts=2, base_s=1.0)
    try:
        assert await extractor.extract_due() == 1
        world.clock.advance(1.0)
        assert await extractor.extract_due() == 1
    finally:
        await extractor.aclose()
    report = world.outcome(call_id)["extraction"]
    assert report["status"] == "failed" and "could not be reached" in report["error"]


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (400, "the LLM answered HTTP 400"),
        (401, "the LLM answered HTTP 401"),
        ("this is not JSON", "the LLM's answer is not JSON"),
        (json.dumps({"day": "sunday"}), "the LLM's answer: day: not one of the enum's values"),
        (json.dumps({"party_size": 2}), "the LLM's answer: day: required, and missing"),
        (json.dumps(["friday"]), "the LLM's answer: the answer is not a JSON object"),
    ],
)
async def test_a_4xx_or_a_wrong_answer_fails_at_once(world: World, answer: str | int, says: str) -> None:
    agent = world.profile(outcome_schema=SCHEMA)
    call_id = world.ended_call(agent)
    world.llm.answers = [answer]
    extractor = world.extractor(max_attempts=4)
    try:
        assert await extractor.extract_due() == 1
        world.clock.advance(3600.0)
        assert await extractor.extract_due() == 0
    finally:
        await extractor.aclose()
    assert len(world.llm.requests) == 1
    outcome = world.outcome(call_id)
    assert outcome["extraction"] == {
        "status": "failed",
        "model": MODEL,
        "error": says,
        "at": outcome["extraction"]["at"],
    }
    assert "extracted" not in outcome and outcome["intent"] == "booking"
    (delivery,) = world.deliveries(call_id)
    assert delivery.payload is not None and delivery.payload["outcome"]["extraction"]["status"] == "failed"


async def test_no_schema_no_caller_words_or_extraction_off_ask_nothing(world: World) -> None:
    plain = world.ended_call(world.profile())
    no_profile = world.ended_call(None)
    with_schema = world.profile(outcome_schema=SCHEMA)
    silent = world.ended_call(with_schema, caller=None)
    blank = world.ended_call(with_schema, caller="   ")
    assert world.row(plain) is None and world.row(no_profile) is None
    extractor = world.extractor()
    try:
        assert await extractor.extract_due() == 2
    finally:
        await extractor.aclose()
    for call_id in (silent, blank):
        report = world.outcome(call_id)["extraction"]
        assert report["status"] == "skipped" and report["error"] == "the caller said nothing"
        assert world.deliveries(call_id) == []
    assert "extraction" not in world.outcome(plain)
    off_call = world.ended_call(with_schema)
    off = world.extractor(off=True)
    try:
        assert await off.extract_due() == 1
    finally:
        await off.aclose()
    report = world.outcome(off_call)["extraction"]
    assert report == {
        "status": "skipped",
        "model": None,
        "error": "outcome extraction is off on this control plane",
        "at": report["at"],
    }
    assert world.llm.requests == [] and world.deliveries(off_call) == []


async def test_a_control_plane_stopping_between_lease_and_result_neither_loses_nor_repeats_it(
    world: World,
) -> None:
    agent = world.profile(outcome_schema=SCHEMA)
    call_id = world.ended_call(agent)
    first = world.extractor()
    (lease,) = first.lease_due()  # the first control plane took the call, and stops here
    second = world.extractor()  # the restarted one
    try:
        assert await second.extract_due() == 0  # the lease holds: the first may still be asking
        assert world.llm.requests == []
        world.clock.advance(second.lease_for.total_seconds())
        (taken,) = second.lease_due()  # the lease ended: the call is not lost
        # the first comes back with an answer after all, while the second asks: too late, its lease
        # was taken over
        assert first.record(lease, "done", extracted={"day": "monday"}) is False
        assert await second.extract(taken) is True
        assert await second.extract_due() == 0
        assert first.record(lease, "done", extracted={"day": "monday"}) is False
    finally:
        await first.aclose()
        await second.aclose()
    assert len(world.llm.requests) == 1
    outcome = world.outcome(call_id)
    assert outcome["extracted"] == {"day": "friday", "party_size": 4}
    assert len(world.deliveries(call_id)) == 1
    row = world.row(call_id)
    assert row is not None and (row.status, row.attempts) == ("done", 2)


async def test_a_call_that_stops_its_control_plane_on_every_attempt_fails_after_the_last(
    world: World,
) -> None:
    agent = world.profile(outcome_schema=SCHEMA)
    call_id = world.ended_call(agent)
    extractor = world.extractor(max_attempts=2)
    try:
        for _ in range(2):
            assert len(extractor.lease_due()) == 1  # leased, and the process died before an answer
            world.clock.advance(extractor.lease_for.total_seconds())
        assert await extractor.extract_due() == 1
    finally:
        await extractor.aclose()
    assert world.llm.requests == []
    report = world.outcome(call_id)["extraction"]
    assert report["status"] == "failed" and report["error"] == "no answer after 2 attempts"


async def test_a_profile_of_another_tenant_never_applies(world: World) -> None:
    acme_profile = world.profile(outcome_schema=SCHEMA)
    # a call of the other tenant that names acme's profile (only a row written by hand can)
    call_id = world.ended_call(acme_profile, tenant=world.other_tenant)
    assert world.row(call_id) is None
    extractor = world.extractor()
    try:
        assert await extractor.extract_due() == 0
    finally:
        await extractor.aclose()
    assert world.llm.requests == []
    with world.sessions() as s:
        call = s.get(Call, call_id)
        assert call is not None and "extraction" not in (call.outcome or {})


async def test_the_review_page_shows_the_extracted_fields(world: World) -> None:
    agent = world.profile(outcome_schema=SCHEMA)
    call_id = world.ended_call(agent)
    extractor = world.extractor()
    try:
        assert await extractor.extract_due() == 1
    finally:
        await extractor.aclose()
    with world.sessions() as s:
        token, _ = create_key(s, tenant_name="acme")
    _sign_in(world.client, token)
    page = world.client.get(f"/review/calls/{call_id}").text
    section = page[page.index('id="outcome"') : page.index('id="recording-title"')]
    assert "Extracted from the transcript" in section
    assert f"After the call, {MODEL} filled" in section
    assert '<th scope="row">day</th><td class="outcome-value">friday</td>' in section
    assert '<th scope="row">party_size</th><td class="outcome-value">4</td>' in section


async def test_success_rates_count_an_extracted_outcome_and_not_a_skipped_one(world: World) -> None:
    agent = world.profile(outcome_schema=SCHEMA)
    extracted = world.ended_call(agent, reported=False)
    world.ended_call(agent, caller=None, reported=False)  # skipped: the caller said nothing
    extractor = world.extractor()
    try:
        assert await extractor.extract_due() == 2
    finally:
        await extractor.aclose()
    assert world.outcome(extracted)["extracted"]["day"] == "friday"
    rates = world.client.get("/calls/outcomes", headers=world.h).json()["agent_profiles"]
    (mine,) = [r for r in rates if r["id"] == agent]
    assert (mine["ended"], mine["with_outcome"]) == (2, 1)


# ---- the migration ------------------------------------------------------------------------------------


def _migrate_both_ways(url: str) -> None:
    upgrade(url, "0009")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tenants (id, name, created_at, allowed_countries)"
                " VALUES ('ten_a', 'a', '2026-10-01', '[]')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO agent_profiles (id, tenant_id, name, greeting, language, voice, stt, tts, llm,"
                " max_duration_s, silence_timeout_s, tools, recording, recording_format, recording_layout,"
                " created_at, updated_at) VALUES ('agt_1', 'ten_a', 'p', '', 'en', 'v', '{}', '{}', '{}',"
                " 60, 20, '[]', false, 'ogg', 'dual', '2026-10-01', '2026-10-01')"
            )
        )
    upgrade(url)
    with session_factory(engine)() as s:
        profile = s.get(AgentProfile, "agt_1")
        assert profile is not None and profile.outcome_schema is None  # an older profile: none, not JSON null
        assert s.scalar(text("SELECT count(*) FROM agent_profiles WHERE outcome_schema IS NULL")) == 1
        profile.outcome_schema = SCHEMA
        s.add(Call(id="call_1", tenant_id="ten_a", direction="inbound", status="ended"))
        s.flush()
        s.add(OutcomeExtraction(call_id="call_1", schema=SCHEMA))
        s.commit()
    engine.dispose()
    command.downgrade(alembic_config(url), "0009")
    engine = make_engine(url)
    assert "outcome_schema" not in {c["name"] for c in inspect(engine).get_columns("agent_profiles")}
    assert "outcome_extractions" not in inspect(engine).get_table_names()
    engine.dispose()
    upgrade(url)
    engine = make_engine(url)
    assert "outcome_schema" in {c["name"] for c in inspect(engine).get_columns("agent_profiles")}
    assert {"ix_outcome_extractions_due"} <= {
        i["name"] for i in inspect(engine).get_indexes("outcome_extractions")
    }
    engine.dispose()


def test_the_extraction_migration_upgrades_and_downgrades_on_sqlite(tmp_path: Path) -> None:
    _migrate_both_ways(f"sqlite:///{tmp_path / 'old.db'}")


def test_the_extraction_migration_upgrades_and_downgrades_on_postgresql(postgres: TempPostgres) -> None:
    _migrate_both_ways(postgres.create_database("extraction_migration"))
