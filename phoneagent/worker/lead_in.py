"""The agent's first words as it said them, for the call's recording.

livekit-egress v1.8.6 starts recording a track 1.3 to 2.3 s after the track appears, and the agent's
track appears only as an inbound call is answered (livekit-sip answers once it hears it): the greeting,
the part a reviewer most often wants to hear, would be cut. Rather than make the caller wait for egress,
the worker keeps what it sends in its first utterance (up to ``LEAD_IN_MAX_S``), with the wall-clock
time its first frame went into the room, and reports it once that utterance ends. The control plane
joins it in front of egress's recording of the agent's track, aligned on the audio both hold
(``phoneagent.recording.lead_in``).

Only calls whose profile records keep anything; the audio goes where the call's events go (the
worker's spool, then the control plane), never anywhere else.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from livekit import rtc

from phoneagent.recording.lead_in import EVENT as EVENT  # the event this reports

# longer than the slowest egress start seen (2.3 s) with room to spare; a greeting rarely runs longer
LEAD_IN_MAX_S = 5.0


class LeadIn:
    """Collects the first utterance's frames (mono 16-bit, one sample rate: contiguous audio) and
    reports them once, as ``{"started_at", "sample_rate", "pcm16"}`` (base64)."""

    def __init__(
        self,
        report: Callable[[dict[str, Any]], object],
        *,
        max_s: float = LEAD_IN_MAX_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._report = report
        self._max_s = max_s
        self._clock = clock
        self._chunks: list[bytes] = []
        self._samples = 0
        self._rate = 0
        self._started_at: float | None = None
        self.done = False

    def add(self, frame: rtc.AudioFrame) -> None:
        """A frame on its way into the room (called before it is handed on)."""
        if self.done:
            return
        if self._started_at is None:
            self._started_at, self._rate = self._clock(), frame.sample_rate
        if frame.sample_rate != self._rate or frame.num_channels != 1:
            self.finish()  # not one contiguous mono stream any more: what came before is kept
            return
        pcm = np.frombuffer(frame.data, dtype=np.int16)
        room = int(self._max_s * self._rate) - self._samples
        take = pcm[:room]
        self._chunks.append(take.tobytes())
        self._samples += len(take)
        if self._samples >= int(self._max_s * self._rate):
            self.finish()

    def finish(self) -> None:
        """The first utterance ended (or was cut, or the call ended): report what was kept, once."""
        if self.done:
            return
        self.done = True
        if self._started_at is None or not self._samples:
            return
        self._report(
            {
                "started_at": self._started_at,
                "sample_rate": self._rate,
                "pcm16": base64.b64encode(b"".join(self._chunks)).decode("ascii"),
            }
        )
