"""The baresip configuration that ``phoneagent dev`` prints for calling the local stack (and that the
tests' and benchmarks' SIP phone uses): Debian's baresip over UDP on loopback, G.711 PCMU at 8 kHz.

baresip hangs up when its WAV source ends, so the source is padded with silence for as long as a
call may last, and by default it advertises the machine's non-loopback address for media, so
``net_interface`` pins it to the given host.
"""

from __future__ import annotations

import wave
from pathlib import Path

_CONFIG = """\
poll_method		epoll
sip_listen		{host}:{listen_port}
net_interface		{host}
audio_player		aufile,/dev/null
audio_source		aufile,{source}
audio_alert		aufile,/dev/null
audio_srate		8000
audio_channels		1
module_path		/usr/lib/baresip/modules
module			stdio.so
module			g711.so
module			aufile.so
module			sndfile.so
module_app		account.so
module_app		menu.so
snd_path		{rec}
rtp_ports		{rtp_start}-{rtp_end}
rtp_timeout		{rtp_timeout}
"""


def _write_silence(path: Path, seconds: float, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(2 * int(seconds * rate)))
    return path


def write_phone_config(
    workdir: Path,
    *,
    source: Path | None = None,
    host: str = "127.0.0.1",
    rtp_ports: tuple[int, int] = (40000, 40099),
    user: str = "tester",
    max_call_s: float = 600.0,
    listen_port: int = 0,
    auto_answer: bool = False,
    rtp_timeout_s: int = 0,
    tls: bool = False,
    certificate: Path | None = None,
    cafile: Path | None = None,
    mediaenc: str = "",
) -> Path:
    """Write a baresip config dir. Without ``source``, the phone sends silence for ``max_call_s``.

    As a callee (``auto_answer``), it listens on ``listen_port`` and picks up every call at once. With
    ``rtp_timeout_s``, it hangs up a call that has received no RTP for that long (as carriers do; 0:
    never).

    ``tls``: its account speaks SIP over TLS (a callee listens for TLS on ``listen_port`` + 1, with
    ``certificate``: its certificate and key in one PEM file); ``cafile`` is what it trusts.
    ``mediaenc``: SRTP with SDES keys, ``srtp`` (offered, RTP/AVP) or ``srtp-mand`` (RTP/SAVP only)."""
    workdir.mkdir(parents=True, exist_ok=True)
    rec = workdir / "rec"
    rec.mkdir(exist_ok=True)
    if source is None:
        source = _write_silence(workdir / "silence.wav", max_call_s)
    extra = "".join(
        f"{line}\n"
        for line, wanted in (
            (f"sip_certificate\t\t{certificate}", certificate is not None),
            (f"sip_cafile\t\t{cafile}", cafile is not None),
            ("module\t\t\tsrtp.so", bool(mediaenc)),
        )
        if wanted
    )
    (workdir / "config").write_text(
        _CONFIG.format(
            host=host,
            source=source,
            rec=rec,
            rtp_start=rtp_ports[0],
            rtp_end=rtp_ports[1],
            listen_port=listen_port,
            rtp_timeout=rtp_timeout_s,
        )
        + extra
    )
    answer = ";answermode=auto" if auto_answer else ""
    uri = f"sip:{user}@{host};transport=tls" if tls else f"sip:{user}@{host}"
    enc = f";mediaenc={mediaenc}" if mediaenc else ""
    (workdir / "accounts").write_text(f"<{uri}>;regint=0;audio_codecs=PCMU{answer}{enc}\n")
    (workdir / "contacts").touch()
    return workdir
