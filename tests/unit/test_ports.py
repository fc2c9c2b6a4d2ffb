from __future__ import annotations

import os
import socket

import pytest

from phoneagent.stack import ports


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_taken_port_is_reported_with_its_process(proto: str) -> None:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        if proto == "tcp":
            s.listen()
        port = s.getsockname()[1]
        assert not ports.is_free("127.0.0.1", port, proto)
        assert ports.owner(port, proto).startswith(f"pid {os.getpid()} (")
    assert ports.is_free("127.0.0.1", port, proto)


def test_owner_of_unused_port_is_unknown() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert ports.owner(port, "tcp") == "an unknown process"
