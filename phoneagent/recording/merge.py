"""One call recording from the two track recordings egress made: caller and agent, aligned in time.

Each TrackEgress file starts at its own ``FileInfo.started_at`` (Unix ns: the wall-clock time of the
file's first sample, give or take the 25-95 ms of transport before it). The recording that started
later is delayed by the difference, so both share one timeline; measured residual misalignment is
about 5 ms typically and up to about 50 ms (egress v1.8.6, tracks published without Opus DTX).

Debian's ``gst-launch-1.0`` (gstreamer1.0-tools, elements from plugins-base only) does the work:
``audiointerleave`` (dual: caller left, agent right) or ``audiomixer`` (mixed: mono) honour each
input's timestamps, and a pad ``offset`` (ns) places the later track. A lead-in of generated silence
joined in front with ``concat`` into plain ``interleave`` is *wrong* (it shifted one channel by 15 ms
and cut the end), so it is not used.

The merged file ends where the call ended (``end_ns``: the phone track's own end). A track egress
that is stopped (the agent's, when the agent stays in the room after the caller hung up) keeps
writing for egress's 4 s drain after the stop; that tail is cut off: the mixer emits fixed 10 ms
blocks and ``identity eos-after`` ends the stream after the call's length of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from phoneagent.errors import MissingToolError, PhoneagentError
from phoneagent.recording.ogg import OPUS_RATE

Layout = Literal["dual", "mixed"]

_MONO = f"audio/x-raw,format=F32LE,channels=1,rate={OPUS_RATE}"
_BLOCK_NS = 10_000_000  # the mixer's output block: the precision of the cut at the end
_BITRATE = {"dual": 64_000, "mixed": 32_000}


class MergeError(PhoneagentError):
    pass


@dataclass(frozen=True)
class TrackFile:
    path: Path
    started_ns: int  # FileInfo.started_at: wall-clock time of the file's first sample


def offsets_ns(tracks: list[TrackFile]) -> list[int]:
    """How far each track is placed from the start of the merged file (the earliest one: 0).

    Rounded to whole 48 kHz samples."""
    first = min(t.started_ns for t in tracks)
    samples = [round((t.started_ns - first) * OPUS_RATE / 1e9) for t in tracks]
    return [s * 1_000_000_000 // OPUS_RATE for s in samples]


def gst_launch() -> str:
    tool = shutil.which("gst-launch-1.0")
    if tool is None:
        raise MissingToolError(
            "gst-launch-1.0 is missing: it merges a call's track recordings",
            hint="apt-get install gstreamer1.0-tools gstreamer1.0-plugins-base",
        )
    return tool


def _decoded(track: TrackFile) -> list[str]:
    """Source elements up to mono float at Opus's rate: a track egress's Ogg/Opus, or a WAV."""
    if track.path.suffix == ".wav":
        head = ["filesrc", f"location={track.path}", "!", "wavparse"]
    else:
        head = ["filesrc", f"location={track.path}", "!", "oggdemux", "!", "opusdec"]
    return [*head, "!", "audioconvert", "!", "audioresample", "!", _MONO, "!", "queue", "!"]


def merge_pipeline(
    caller: TrackFile,
    agent: TrackFile,
    out: Path,
    layout: Layout,
    *,
    end_ns: int | None = None,
    lead: TrackFile | None = None,
) -> list[str]:
    """The gst-launch-1.0 arguments: caller on sink_0 (left), agent on sink_1 (right), cut at ``end_ns``
    (wall-clock ns, like the tracks' start times) when given. ``lead``: the agent's first words as the
    worker kept them (a WAV ending where the agent's track begins), on the agent's side: the agent's
    channel is then its own mixer of the two, each placed by its start time."""
    tracks = [caller, agent, *([lead] if lead else [])]
    off = offsets_ns(tracks)
    mixer = "audiointerleave" if layout == "dual" else "audiomixer"
    sink = [mixer, "name=m", f"output-buffer-duration={_BLOCK_NS}"]
    post = ["audioconvert"] if layout == "dual" else ["audioconvert", "!", "audio/x-raw,channels=1"]
    if end_ns is not None:
        blocks = max(1, round((end_ns - min(t.started_ns for t in tracks)) / _BLOCK_NS))
        post = ["identity", f"eos-after={blocks}", "!", *post]
    encode = ["opusenc", f"bitrate={_BITRATE[layout]}", "!", "oggmux", "!", "filesink", f"location={out}"]
    if lead is None or layout == "mixed":  # mixed: every input straight into the one mixer
        pads = [f"sink_{i}::offset={o}" for i, o in enumerate(off)]
        args = [*sink, *pads, "!", *post, "!", *encode]
        for i, track in enumerate(tracks):
            args += [*_decoded(track), f"m.sink_{i}"]
        return args
    # dual with a lead-in: the caller's pad placed on the file's timeline, and the agent's channel
    # made by a mixer whose pads carry the agent track's and the lead-in's places (it starts at 0)
    args = [*sink, f"sink_0::offset={off[0]}", "sink_1::offset=0", "!", *post, "!", *encode]
    args += [*_decoded(caller), "m.sink_0"]
    agent_side = ["audiomixer", "name=a", f"output-buffer-duration={_BLOCK_NS}"]
    args += [*agent_side, f"sink_0::offset={off[1]}", f"sink_1::offset={off[2]}", "!", _MONO, "!", "queue"]
    args += ["!", "m.sink_1", *_decoded(agent), "a.sink_0", *_decoded(lead), "a.sink_1"]
    return args


async def _run(args: list[str], *, timeout_s: float) -> None:
    proc = await asyncio.create_subprocess_exec(
        gst_launch(),
        "-q",
        "-e",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise MergeError(f"gst-launch-1.0 did not finish within {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        last = " ".join(out.decode(errors="replace").split())[-300:]
        raise MergeError(f"gst-launch-1.0 failed (exit {proc.returncode}): {last}")


async def merge_tracks(
    caller: TrackFile,
    agent: TrackFile,
    out: Path,
    *,
    layout: Layout = "dual",
    end_ns: int | None = None,
    lead: TrackFile | None = None,
) -> Path:
    """Write the merged OGG/Opus recording to ``out`` (atomically: a partial file never appears)."""
    for t in (caller, agent):
        if not t.path.is_file() or t.path.stat().st_size == 0:
            raise MergeError(f"the {t.path.name} track recording is missing or empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    longest = max(t.path.stat().st_size for t in (caller, agent)) / 4000  # ~32 kbit/s: seconds
    try:
        args = merge_pipeline(caller, agent, tmp, layout, end_ns=end_ns, lead=lead)
        await _run(args, timeout_s=60 + longest)
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise MergeError("gst-launch-1.0 wrote no output")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


async def decode_wav(src: Path, dst: Path, *, rate: int = OPUS_RATE, timeout_s: float = 120) -> Path:
    """Decode an Ogg/Opus file to 16-bit WAV, keeping its channels (for checks and transcription)."""
    caps = f"audio/x-raw,format=S16LE,rate={rate}"
    await _run(
        [
            "filesrc",
            f"location={src}",
            "!",
            "oggdemux",
            "!",
            "opusdec",
            "!",
            "audioconvert",
            "!",
            "audioresample",
            "!",
            caps,
            "!",
            "wavenc",
            "!",
            "filesink",
            f"location={dst}",
        ],
        timeout_s=timeout_s,
    )
    return dst
