"""The private parts of livekit-agents phoneagent relies on, checked exactly, so that an upgrade that
changes them fails here, by name, instead of at a worker's start or in the middle of a call.

- ``cli.cli._run_worker(server, args)`` with ``proto.CliArgs(log_level=..., dev=...)``: the only way
  to run an AgentServer from phoneagent's own command line (``phoneagent/worker/runner.py``).
- ``stt.RecognizeStream``'s subclass protocol (``_run``, ``_input_ch``, ``_event_ch``,
  ``_FlushSentinel``, ``_metrics_monitor_task``): what every streaming STT plugin implements, and
  what the speculative stream implements (``phoneagent/speech/speculative.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import AsyncIterable
from typing import Any

from livekit.agents import __version__ as livekit_agents_version
from livekit.agents import stt, utils
from livekit.agents.cli import proto
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr
from livekit.agents.utils import AudioBuffer

from phoneagent.worker.runner import SUPPORTED_LIVEKIT_AGENTS


class SilentSTT(stt.STT[Any]):
    def __init__(self) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=False))

    async def _recognize_impl(
        self, buffer: AudioBuffer, *, language: NotGivenOr[str] = NOT_GIVEN, conn_options: APIConnectOptions
    ) -> stt.SpeechEvent:
        return stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT)


UPGRADE = (
    f"livekit-agents {livekit_agents_version} is installed; phoneagent supports "
    f"{', '.join(SUPPORTED_LIVEKIT_AGENTS)} (see README, 'Supported livekit-agents versions')"
)


def test_the_installed_livekit_agents_is_a_supported_one() -> None:
    assert livekit_agents_version in SUPPORTED_LIVEKIT_AGENTS, UPGRADE


def test_run_worker_takes_a_server_and_cli_args() -> None:
    from livekit.agents.cli import cli

    run_worker = getattr(cli, "_run_worker", None)
    assert run_worker is not None, f"livekit.agents.cli.cli._run_worker is gone: {UPGRADE}"
    params = list(inspect.signature(run_worker).parameters)
    assert params == ["server", "args"], f"_run_worker{params}: {UPGRADE}"
    fields = {f.name: f for f in dataclasses.fields(proto.CliArgs)}
    assert "log_level" in fields and "dev" in fields, f"proto.CliArgs fields {sorted(fields)}: {UPGRADE}"
    required = [
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    assert required == ["log_level"], f"proto.CliArgs requires {required}: {UPGRADE}"


def test_recognize_stream_subclass_protocol() -> None:
    base = stt.RecognizeStream
    assert "_run" in getattr(base, "__abstractmethods__", ()), f"RecognizeStream._run: {UPGRADE}"
    sentinel = getattr(base, "_FlushSentinel", None)
    assert isinstance(sentinel, type), f"RecognizeStream._FlushSentinel: {UPGRADE}"
    monitor = getattr(base, "_metrics_monitor_task", None)
    assert monitor is not None and inspect.iscoroutinefunction(monitor), UPGRADE
    assert list(inspect.signature(monitor).parameters) == ["self", "event_aiter"], UPGRADE
    assert list(inspect.signature(base.__init__).parameters)[:3] == ["self", "stt", "conn_options"], UPGRADE

    seen: dict[str, object] = {}

    class Probe(stt.RecognizeStream):
        async def _metrics_monitor_task(self, event_aiter: AsyncIterable[stt.SpeechEvent]) -> None:
            async for _ in event_aiter:
                pass

        async def _run(self) -> None:
            seen["input"], seen["events"] = self._input_ch, self._event_ch
            async for item in self._input_ch:
                seen.setdefault("flushed", isinstance(item, self._FlushSentinel))
            self._event_ch.send_nowait(stt.SpeechEvent(stt.SpeechEventType.END_OF_SPEECH))

    async def run() -> list[stt.SpeechEvent]:
        stream = Probe(stt=SilentSTT(), conn_options=DEFAULT_API_CONNECT_OPTIONS)
        stream.flush()
        stream.end_input()
        events = [ev async for ev in stream]
        await stream.aclose()
        return events

    events = asyncio.run(asyncio.wait_for(run(), 10))
    assert isinstance(seen.get("input"), utils.aio.Chan), f"RecognizeStream._input_ch: {UPGRADE}"
    assert isinstance(seen.get("events"), utils.aio.Chan), f"RecognizeStream._event_ch: {UPGRADE}"
    assert seen.get("flushed") is True, f"flush() no longer sends _FlushSentinel: {UPGRADE}"
    assert [e.type for e in events] == [stt.SpeechEventType.END_OF_SPEECH], UPGRADE
