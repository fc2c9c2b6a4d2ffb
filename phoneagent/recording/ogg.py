"""Just enough of Ogg/Opus (RFC 7845) to know a file's length without decoding it.

An Ogg/Opus file's last page carries the granule position of its last sample, counted at 48 kHz from
the start of the stream, which includes the encoder's pre-skip (in the ``OpusHead`` packet).
"""

from __future__ import annotations

import struct
from pathlib import Path

from phoneagent.errors import PhoneagentError

OPUS_RATE = 48_000
_TAIL = 65_307 * 2  # two maximal Ogg pages: the last page header is in there


class NotOggOpus(PhoneagentError):
    pass


def opus_duration_s(path: Path) -> float:
    """The playing time of an Ogg/Opus file, in seconds."""
    with path.open("rb") as fh:
        head = fh.read(4096)
        if not head.startswith(b"OggS") or b"OpusHead" not in head:
            raise NotOggOpus(f"{path.name} is not an Ogg/Opus file")
        i = head.index(b"OpusHead")
        (pre_skip,) = struct.unpack_from("<H", head, i + 10)
        size = fh.seek(0, 2)
        fh.seek(max(0, size - _TAIL))
        tail = fh.read()
    last = tail.rfind(b"OggS")
    while last >= 0:
        if len(tail) >= last + 14 and tail[last + 4] == 0:  # stream structure version 0
            (granule,) = struct.unpack_from("<q", tail, last + 6)
            if granule >= 0:
                return max(0.0, (granule - pre_skip) / OPUS_RATE)
        last = tail.rfind(b"OggS", 0, last)
    raise NotOggOpus(f"{path.name} has no complete Ogg page")
