"""The worker's event reporter: every event carries whose call it is, from the job's dispatch."""

from __future__ import annotations

import json
from pathlib import Path

from phoneagent.worker.reporter import EventReporter


def test_each_event_says_the_tenant_and_call_it_was_dispatched_for(tmp_path: Path) -> None:
    meta = {"tenant_id": "ten_a", "call_id": "call_1", "agent_profile_id": "agt_1", "direction": "outbound"}
    reporter = EventReporter(url="http://127.0.0.1:9", token="t", spool_dir=tmp_path, scope=meta)
    reporter.report("call-call_1", "answered")
    reporter.written()
    [spooled] = reporter.pending()
    body = json.loads(spooled.read_text())
    assert (body["room"], body["tenant_id"], body["call_id"]) == ("call-call_1", "ten_a", "call_1")
    assert "agent_profile_id" not in body and "direction" not in body


def test_an_inbound_job_names_its_tenant_only(tmp_path: Path) -> None:
    scope = {"tenant_id": "ten_b"}
    reporter = EventReporter(url="http://127.0.0.1:9", token="t", spool_dir=tmp_path, scope=scope)
    reporter.report("dsp_x_+1415_abc", "turn", {"seq": 0})
    reporter.written()
    body = json.loads(reporter.pending()[0].read_text())
    assert body["tenant_id"] == "ten_b" and "call_id" not in body and body["data"] == {"seq": 0}
