"""One set of local speech models for every call on a worker host.

livekit-agents runs each call in a job process of its own. Loading Whisper and Piper in each one
multiplies their memory and has every call fight for the same cores with its own copy. Instead the
worker starts one model host process (``python -m phoneagent.speech.shared``); its job processes
ask it over a Unix socket (mode 0600, in the state directory):

- ``transcribe``: 16 kHz float32 audio and Whisper options -> the words. Whisper runs in
  ``--whisper-workers`` CTranslate2 replicas of one thread each (one copy of the weights), so two
  calls that finish speaking at once are decoded side by side; a request its caller cancelled (a
  speculative guess the caller's next words made void) is dropped if it has not started.
- ``synthesize``: text -> 8 kHz int16 PCM, from one cache of what the voice has said for all calls
  (a scripted agent's lines are made once per host, not once per call).
- ``prepare``: texts to synthesize ahead of need, after everything asked for now.

A frame is ``!II`` (header length, payload length), a JSON header, and the payload. Replies carry
the request's ``id``; a job process sends many requests over its one connection at once.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import functools
import itertools
import json
import logging
import os
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from phoneagent.errors import SharedModelsError
from phoneagent.speech.whisper_stt import WhisperOptions

log = logging.getLogger("phoneagent.speech")

_FRAME = struct.Struct("!II")
MAX_HEADER = 1 << 20
MAX_PAYLOAD = 64 << 20  # 30 s of 16 kHz float32 is 1.9 MB


async def send_frame(writer: asyncio.StreamWriter, header: dict[str, Any], payload: bytes = b"") -> None:
    head = json.dumps(header).encode()
    writer.write(_FRAME.pack(len(head), len(payload)) + head + payload)
    await writer.drain()


async def read_frame(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes]:
    head_len, payload_len = _FRAME.unpack(await reader.readexactly(_FRAME.size))
    if head_len > MAX_HEADER or payload_len > MAX_PAYLOAD:
        raise SharedModelsError(f"frame too large ({head_len} + {payload_len} bytes)")
    header = json.loads(await reader.readexactly(head_len))
    return header, await reader.readexactly(payload_len) if payload_len else b""


# ---- the host ------------------------------------------------------------------------------------


class ModelHost:
    """Serves the models over ``socket_path``. Whisper sizes and Piper voices load on first use (the
    defaults before the host says it is ready)."""

    def __init__(self, *, whisper_workers: int = 2, piper_threads: int = 1) -> None:
        self._whisper_workers = whisper_workers
        self._whisper: dict[str, Any] = {}
        self._voices: dict[str, Any] = {}
        self._caches: dict[str, Any] = {}
        self._stt_pool = concurrent.futures.ThreadPoolExecutor(whisper_workers, thread_name_prefix="whisper")
        self._tts_pool = concurrent.futures.ThreadPoolExecutor(piper_threads, thread_name_prefix="piper")
        self._prepare_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="prepare")
        self._load_lock = asyncio.Lock()
        self.listening = asyncio.Event()
        self.served = {"transcribe": 0, "synthesize": 0, "cancelled": 0, "cache_hits": 0}

    async def load(self, whisper: list[str], voices: list[str]) -> None:
        for name in whisper:
            await self._whisper_model(name)
        for voice in voices:
            await self._voice(voice)

    async def _whisper_model(self, name: str) -> Any:
        async with self._load_lock:
            if name not in self._whisper:
                from phoneagent.speech.whisper_stt import load_whisper

                self._whisper[name] = await asyncio.to_thread(
                    load_whisper, name, threads=1, workers=self._whisper_workers
                )
        return self._whisper[name]

    async def _voice(self, name: str) -> tuple[Any, Any]:
        async with self._load_lock:
            if name not in self._voices:
                from phoneagent.speech.piper_tts import SpeechCache, load_piper_voice

                self._voices[name] = await asyncio.to_thread(load_piper_voice, name)
                self._caches[name] = SpeechCache()
        return self._voices[name], self._caches[name]

    async def serve(self, socket_path: Path) -> None:
        """Answer on ``socket_path`` (its directory exists; a stale socket file is gone) for ever."""
        server = await asyncio.start_unix_server(self._client, path=str(socket_path))
        os.chmod(socket_path, 0o600)
        self.listening.set()
        log.info("speech models ready", extra={"socket": str(socket_path)})
        async with server:
            await server.serve_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lock = asyncio.Lock()  # one reply written at a time on this connection
        waiting: dict[int, concurrent.futures.Future[Any]] = {}  # requests handed to a model's threads
        called_off: set[int] = set()  # cancelled before they were handed
        tasks: set[asyncio.Task[None]] = set()

        def cancel(rid: int) -> None:
            job = waiting.get(rid)
            if job is None:
                called_off.add(rid)
            elif job.cancel():  # only one that no thread has started
                self.served["cancelled"] += 1

        def handed(rid: int, job: concurrent.futures.Future[Any]) -> None:
            waiting[rid] = job
            if rid in called_off:
                called_off.discard(rid)
                cancel(rid)

        async def reply(header: dict[str, Any], payload: bytes = b"") -> None:
            async with lock:
                await send_frame(writer, header, payload)

        async def handle(header: dict[str, Any], payload: bytes) -> None:
            rid = int(header.get("id", -1))
            try:
                out, data = await self._handle(header, payload, functools.partial(handed, rid))
                await reply({"id": rid, "ok": True, **out}, data)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the connection is closing
                await reply({"id": rid, "ok": False, "error": "cancelled"})  # its caller called it off
            except Exception as exc:  # noqa: BLE001 - any failure goes back to the caller, who raises it
                log.warning("speech request failed", extra={"op": header.get("op"), "error": repr(exc)[:300]})
                await reply({"id": rid, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]})
            finally:
                waiting.pop(rid, None)
                called_off.discard(rid)

        try:
            while True:
                header, payload = await read_frame(reader)
                if header.get("op") == "cancel":
                    cancel(int(header.get("target", -1)))
                    continue
                task = asyncio.create_task(handle(header, payload))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the job process is gone
        finally:
            for task in tasks:
                task.cancel()
            writer.close()

    async def _handle(
        self, header: dict[str, Any], payload: bytes, handed: Callable[[concurrent.futures.Future[Any]], None]
    ) -> tuple[dict[str, Any], bytes]:
        """One request; ``handed`` learns of the job given to a model's threads (it may be cancelled
        until a thread takes it)."""
        loop = asyncio.get_running_loop()
        op = header.get("op")

        def run(pool: concurrent.futures.ThreadPoolExecutor, fn: Callable[..., Any], *args: Any) -> Any:
            job = pool.submit(fn, *args)
            handed(job)
            return asyncio.wrap_future(job)

        if op == "transcribe":
            from phoneagent.speech.whisper_stt import hypotheses_blocking

            options = WhisperOptions(**header["options"])
            model = await self._whisper_model(options.model)
            audio = np.frombuffer(payload, dtype=np.float32)
            started = time.perf_counter()
            texts = await run(self._stt_pool, hypotheses_blocking, model, audio, options)
            self.served["transcribe"] += 1
            return {"texts": texts, "seconds": round(time.perf_counter() - started, 4)}, b""
        if op == "synthesize":
            from phoneagent.speech.piper_tts import synthesize_phone_audio

            voice, cache = await self._voice(header["voice"])
            text = str(header["text"])
            pcm = cache.get(text)
            if pcm is None:
                pcm = await run(self._tts_pool, synthesize_phone_audio, voice, text)
                cache.put(text, pcm)
            else:
                self.served["cache_hits"] += 1
            self.served["synthesize"] += 1
            return {}, pcm
        if op == "prepare":
            from phoneagent.speech.piper_tts import synthesize_phone_audio

            voice, cache = await self._voice(header["voice"])
            for text in header["texts"]:
                if text and cache.get(text) is None:
                    cache.put(
                        text,
                        await loop.run_in_executor(self._prepare_pool, synthesize_phone_audio, voice, text),
                    )
            return {}, b""
        if op == "stats":
            return {
                "served": self.served,
                "whisper": sorted(self._whisper),
                "voices": sorted(self._voices),
            }, b""
        raise SharedModelsError(f"unknown op {op!r}")


# ---- a job process's side ------------------------------------------------------------------------


class SharedModels:
    """A job process's connection to the host: a Whisper transcriber and a Piper synthesizer (see
    :class:`phoneagent.speech.whisper_stt.Transcriber`, :class:`phoneagent.speech.piper_tts.Synthesizer`).
    Connects on first use and again after the host was restarted."""

    def __init__(
        self, socket_path: Path, *, voice: str = "en_US-joe-medium", timeout_s: float = 30.0
    ) -> None:
        self._path = socket_path
        self._voice = voice
        self._timeout_s = timeout_s
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[tuple[dict[str, Any], bytes]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()
        self._write_lock = asyncio.Lock()

    async def _connection(self) -> asyncio.StreamWriter:
        async with self._connecting:
            if self._writer is None or self._writer.is_closing():
                try:
                    reader, self._writer = await asyncio.open_unix_connection(str(self._path))
                except OSError as exc:
                    raise SharedModelsError(
                        f"the speech model host at {self._path} is not answering: {exc}"
                    ) from None
                self._reader_task = asyncio.create_task(self._read(reader))
            return self._writer

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                header, payload = await read_frame(reader)
                fut = self._pending.pop(header.get("id", -1), None)
                if fut is not None and not fut.done():
                    fut.set_result((header, payload))
        except (asyncio.IncompleteReadError, ConnectionError, SharedModelsError) as exc:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(SharedModelsError(f"the speech model host went away: {exc!r}"))
            self._pending.clear()
            if self._writer is not None:
                self._writer.close()

    async def request(self, header: dict[str, Any], payload: bytes = b"") -> tuple[dict[str, Any], bytes]:
        writer = await self._connection()
        rid = next(self._ids)
        fut: asyncio.Future[tuple[dict[str, Any], bytes]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        async with self._write_lock:
            await send_frame(writer, {**header, "id": rid}, payload)
        try:
            reply, data = await asyncio.wait_for(asyncio.shield(fut), self._timeout_s)
        except asyncio.CancelledError:
            self._pending.pop(rid, None)
            with contextlib.suppress(ConnectionError, RuntimeError):
                async with self._write_lock:
                    await send_frame(writer, {"op": "cancel", "target": rid})
            raise
        except TimeoutError:
            self._pending.pop(rid, None)
            raise SharedModelsError(
                f"the speech model host did not answer {header['op']} within {self._timeout_s} s"
            ) from None
        if not reply.get("ok"):
            raise SharedModelsError(f"the speech model host refused {header['op']}: {reply.get('error')}")
        return reply, data

    async def transcribe(self, audio: np.ndarray, options: WhisperOptions) -> list[str]:
        reply, _ = await self.request(
            {"op": "transcribe", "options": asdict(options)},
            np.ascontiguousarray(audio, dtype=np.float32).tobytes(),
        )
        return [str(t) for t in reply["texts"]]

    async def stream(self, text: str) -> AsyncIterator[bytes]:
        _, pcm = await self.request({"op": "synthesize", "voice": self._voice, "text": text})
        yield pcm

    async def prepare(self, texts: list[str]) -> None:
        await self.request({"op": "prepare", "voice": self._voice, "texts": texts})

    async def stats(self) -> dict[str, Any]:
        reply, _ = await self.request({"op": "stats"})
        return reply

    async def aclose(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._writer is not None:
            self._writer.close()


def main() -> None:
    ap = argparse.ArgumentParser(description="phoneagent's shared speech models (started by the worker)")
    ap.add_argument("--socket", type=Path, required=True)
    ap.add_argument("--whisper", action="append", default=[])
    ap.add_argument("--voice", action="append", default=[])
    ap.add_argument("--whisper-workers", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    os.umask(0o077)  # the socket is born 0600: only this user's processes may use the models
    host = ModelHost(whisper_workers=args.whisper_workers)

    args.socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileNotFoundError):
        args.socket.unlink()

    async def run() -> None:
        await host.load(args.whisper, args.voice)
        await host.serve(args.socket)

    asyncio.run(run())


if __name__ == "__main__":
    main()
