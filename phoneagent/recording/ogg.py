"""The length of an Ogg/Opus file, read by PyAV's demuxer (FFmpeg) without decoding the audio.

FFmpeg reads the granule position of the file's last page: the count of 48 kHz samples from the
start of the stream, which includes the encoder's pre-skip (``OpusHead``; FFmpeg's codec ``delay``).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from phoneagent.errors import PhoneagentError

OPUS_RATE = 48_000  # Opus always decodes at 48 kHz, and Ogg/Opus counts its granules at it


class NotOggOpus(PhoneagentError):
    pass


def opus_duration_s(path: Path) -> float:
    """The playing time of an Ogg/Opus file, in seconds."""
    try:
        with av.open(str(path)) as container:
            stream = next((s for s in container.streams.audio if s.codec_context.name == "opus"), None)
            if container.format.name != "ogg" or stream is None:
                raise NotOggOpus(f"{path.name} is not an Ogg/Opus file")
            time_base = stream.time_base or Fraction(1, OPUS_RATE)
            if stream.duration is not None:
                samples = stream.duration - stream.codec_context.delay
            else:  # no length from the last page: where the last packet ends (its times exclude pre-skip)
                samples = 0
                for packet in container.demux(stream):
                    if packet.pts is not None and packet.duration is not None:
                        samples = max(samples, packet.pts + packet.duration)
            return max(0.0, float(samples * time_base))
    except av.FFmpegError as exc:
        raise NotOggOpus(f"{path.name} is not a readable Ogg/Opus file ({type(exc).__name__})") from None
