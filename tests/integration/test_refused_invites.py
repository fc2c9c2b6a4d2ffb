"""A call livekit-sip turns away before any room exists leaves no call record: `phoneagent stack
refused` finds it in livekit-sip's log (a real INVITE from baresip to a number no trunk has)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from phoneagent.stack.services import Stack
from tests.peers.sip_phone import BaresipPhone, wait_until
from tests.stack_fixtures import settings_env

NOBODYS_NUMBER = "+15559990001"


def test_an_invite_to_a_number_no_trunk_has_is_listed_by_stack_refused(stack: Stack, tmp_path: Path) -> None:
    s = stack.settings
    out: list[str] = []

    def listed() -> bool:
        cmd = [sys.executable, "-m", "phoneagent.cli", "stack", "refused"]
        done = subprocess.run(
            cmd, env=settings_env(s), capture_output=True, text=True, timeout=60, check=True
        )
        out[:] = [ln for ln in done.stdout.splitlines() if NOBODYS_NUMBER in ln and "stranger" in ln]
        return bool(out)

    phone = BaresipPhone(tmp_path / "phone", rtp_ports=(45300, 45349), user="stranger").start()
    try:
        phone.start_dial(f"sip:{NOBODYS_NUMBER}@{s.bind_host}:{s.sip_port}")
        wait_until(listed, timeout=60, what="the refused INVITE in `phoneagent stack refused`")
    finally:
        phone.close()
    print("\n".join(out))
    assert "404" in out[0] or "dropped, no answer" in out[0], out
    assert not any("Call established" in ln for ln in phone.output)
