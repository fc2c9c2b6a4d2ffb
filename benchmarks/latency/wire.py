"""Voice at the wire: every RTP packet between SIP phones and livekit-sip on loopback, with the time the
kernel saw it, decoded from G.711 and cut into speech by its energy.

A packet socket (``AF_PACKET`` on ``lo``; needs root or CAP_NET_RAW) sees each UDP datagram once as it
is delivered, stamped by the kernel (``SO_TIMESTAMPNS``, the wall clock). Both directions of every
call are read on that one clock, so the time from the caller's last sound to the agent's first is
measured where the carrier would see it: after the phone, before livekit-sip, and back.

A packet carries 20 ms of audio. The caller's phone sends a packet once its 20 ms are recorded, so
its last sample left at the packet's time; livekit-sip's packet to the phone starts playing when it
arrives. Within a packet, 5 ms windows place an onset or offset more finely than the packet.
"""

from __future__ import annotations

import socket
import struct
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # G.711 exactly; in the standard library up to Python 3.12 (we pin 3.11)

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # a loopback datagram is seen twice: as sent (skipped) and as delivered
SO_TIMESTAMPNS = 35
PCMU, PCMA = 0, 8
RATE = 8000
WINDOW = RATE // 200  # 5 ms
SPEECH_DBFS = -45.0


@dataclass(frozen=True)
class Packet:
    at: float  # wall-clock seconds, as the kernel stamped the datagram
    src: int  # UDP ports
    dst: int
    seq: int
    pcm: np.ndarray  # int16 at 8 kHz


def parse(frame: bytes) -> tuple[int, int, int, int, bytes] | None:
    """(src port, dst port, RTP payload type, sequence, payload) of an Ethernet/IPv4/UDP/RTP frame."""
    if len(frame) < 14 + 20 + 8 + 12 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[0] >> 4 != 4 or ip[9] != 17:
        return None
    src, dst = struct.unpack("!HH", ip[ihl : ihl + 4])
    rtp = ip[ihl + 8 :]
    if rtp[0] >> 6 != 2:
        return None
    start = 12 + 4 * (rtp[0] & 0x0F)
    if rtp[0] & 0x10:  # a header extension
        if len(rtp) < start + 4:
            return None
        start += 4 + 4 * struct.unpack("!H", rtp[start + 2 : start + 4])[0]
    payload = rtp[start:]
    if rtp[0] & 0x20 and payload:  # padding
        payload = payload[: -payload[-1]]
    return src, dst, rtp[1] & 0x7F, struct.unpack("!H", rtp[2:4])[0], payload


def decode(pt: int, payload: bytes) -> np.ndarray | None:
    if pt == PCMU:
        return np.frombuffer(audioop.ulaw2lin(payload, 2), dtype=np.int16)
    if pt == PCMA:
        return np.frombuffer(audioop.alaw2lin(payload, 2), dtype=np.int16)
    return None  # telephone-event and anything else is not audio


class RtpCapture(threading.Thread):
    """G.711 RTP packets to or from ``ports`` (the phones' RTP ports), until :meth:`close`."""

    def __init__(self, ports: range) -> None:
        super().__init__(daemon=True, name="rtp-capture")
        self._ports = ports
        self._lock = threading.Lock()
        self._packets: list[Packet] = []
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sock.bind(("lo", 0))
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._sock.settimeout(0.2)
        self._closed = threading.Event()

    def run(self) -> None:
        while not self._closed.is_set():
            try:
                frame, anc, _flags, addr = self._sock.recvmsg(2048, 64)
            except TimeoutError:
                continue
            except OSError:
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            parsed = parse(frame)
            if parsed is None:
                continue
            src, dst, pt, seq, payload = parsed
            if src not in self._ports and dst not in self._ports:
                continue
            pcm = decode(pt, payload)
            if pcm is None:
                continue
            at = next(
                (
                    sec + nsec / 1e9
                    for level, kind, data in anc
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS
                    for sec, nsec in [struct.unpack("qq", data[:16])]
                ),
                None,
            )
            if at is None:
                continue
            with self._lock:
                self._packets.append(Packet(at, src, dst, seq, pcm))

    def close(self) -> None:
        self._closed.set()
        self.join(timeout=2)
        self._sock.close()

    def packets(self) -> list[Packet]:
        with self._lock:
            return list(self._packets)


@dataclass
class Stream:
    """One direction of one call: its packets, in the order they were seen."""

    packets: list[Packet]
    _loud: list[npt.NDArray[np.bool_]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.packets = sorted(self.packets, key=lambda p: p.at)
        self._loud = [loud_windows(p.pcm) for p in self.packets]

    def speech(self, *, min_gap_s: float) -> list[tuple[float, float]]:
        """Loud stretches as (onset, offset) wall-clock times; gaps shorter than ``min_gap_s`` are
        joined. A packet's audio is taken to span the 20 ms before its time (``sent``) or after it."""
        out: list[tuple[float, float]] = []
        for p, loud in zip(self.packets, self._loud, strict=True):
            if not loud.any():
                continue
            step = WINDOW / RATE
            first, last = int(np.argmax(loud)), int(len(loud) - 1 - np.argmax(loud[::-1]))
            start = p.at + first * step
            end = p.at + (last + 1) * step
            if out and start - out[-1][1] < min_gap_s:
                out[-1] = (out[-1][0], end)
            else:
                out.append((start, end))
        return out

    def shifted(self, seconds: float) -> Stream:
        """The same audio with every time moved by ``seconds`` (e.g. -0.02: a sender's packet time is
        when its 20 ms *ended*)."""
        return Stream([Packet(p.at + seconds, p.src, p.dst, p.seq, p.pcm) for p in self.packets])


def loud_windows(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.bool_]:
    """Which 5 ms windows of a packet are louder than SPEECH_DBFS."""
    n = pcm.size // WINDOW
    if n == 0:
        return np.zeros(0, dtype=bool)
    w = pcm[: n * WINDOW].astype(np.float64).reshape(n, WINDOW)
    rms: npt.NDArray[np.float64] = np.sqrt(np.mean(w**2, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-9) / 32768.0) > SPEECH_DBFS
