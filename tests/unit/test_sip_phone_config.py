from __future__ import annotations

import wave
from pathlib import Path

from phoneagent.stack.dev_phone import write_phone_config
from tests.peers.wav import read_growing_wav, write_wav


def test_phone_stays_on_loopback_with_pcmu(tmp_path: Path) -> None:
    d = write_phone_config(tmp_path / "phone", rtp_ports=(41000, 41009), max_call_s=2)
    config = (d / "config").read_text()
    assert "net_interface\t\t127.0.0.1" in config and "sip_listen\t\t127.0.0.1:0" in config
    assert "rtp_ports\t\t41000-41009" in config
    assert "audio_codecs=PCMU" in (d / "accounts").read_text()
    assert "rtp_timeout\t\t0" in config  # baresip's default: never
    with wave.open(str(d / "silence.wav")) as w:  # padded so baresip does not hang up early
        assert (w.getframerate(), w.getnframes()) == (8000, 16000)


def test_phone_can_hang_up_a_call_without_rtp(tmp_path: Path) -> None:
    d = write_phone_config(tmp_path / "phone", rtp_timeout_s=10, max_call_s=1)
    assert "rtp_timeout\t\t10\n" in (d / "config").read_text()


def test_growing_wav_reads_samples_before_the_header_is_final(tmp_path: Path) -> None:
    import numpy as np

    path = write_wav(tmp_path / "a.wav", np.arange(100, dtype=np.int16), 8000)
    with path.open("ab") as fh:  # appended samples: the header's sizes are now stale
        fh.write(np.arange(10, dtype=np.int16).tobytes())
    assert read_growing_wav(path).size == 110


def test_trailing_silence_and_speech_meters() -> None:
    import numpy as np

    from tests.peers.wav import speech_seconds, trailing_silence_seconds

    t = np.arange(8000) / 8000
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    audio = np.concatenate([np.zeros(4000, np.int16), tone, np.zeros(12000, np.int16)])
    assert abs(speech_seconds(audio) - 1.0) < 0.05
    assert abs(trailing_silence_seconds(audio) - 1.5) < 0.05


def test_phone_over_tls_with_srtp(tmp_path: Path) -> None:
    d = write_phone_config(
        tmp_path / "phone",
        max_call_s=1,
        tls=True,
        certificate=tmp_path / "me.pem",
        cafile=tmp_path / "ca.crt",
        mediaenc="srtp-mand",
    )
    config = (d / "config").read_text()
    assert (
        f"sip_certificate\t\t{tmp_path / 'me.pem'}\n" in config
        and f"sip_cafile\t\t{tmp_path / 'ca.crt'}\n" in config
    )
    assert "module\t\t\tsrtp.so\n" in config  # mediaenc names a module's encryption
    account = (d / "accounts").read_text()
    assert account.startswith("<sip:tester@127.0.0.1;transport=tls>;") and ";mediaenc=srtp-mand" in account
    plain = (write_phone_config(tmp_path / "plain", max_call_s=1) / "config").read_text()
    assert "sip_certificate\t" not in plain and "srtp.so" not in plain
