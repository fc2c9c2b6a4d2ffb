"""Is a port free, and if not, which process holds it (read from /proc, no extra tools)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

_PROTO_FILES = {"tcp": ("tcp", "tcp6"), "udp": ("udp", "udp6")}


def is_free(host: str, port: int, proto: str = "tcp") -> bool:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        if proto == "tcp":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def held(host: str, pool: range, proto: str = "udp") -> list[int]:
    """The ports of ``pool`` that some process holds now."""
    return [port for port in pool if not is_free(host, port, proto)]


def _owner_inodes(port: int, proto: str) -> set[str]:
    inodes: set[str] = set()
    for name in _PROTO_FILES[proto]:
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            # tcp: only listeners (0A); udp: any bound socket
            if int(local.rsplit(":", 1)[1], 16) == port and (proto == "udp" or state == "0A"):
                inodes.add(inode)
    return inodes


def owner(port: int, proto: str = "tcp") -> str:
    """'pid 1234 (redis-server)' for the process holding the port, or 'an unknown process'."""
    inodes = _owner_inodes(port, proto)
    if not inodes:
        return "an unknown process"
    targets = {f"socket:[{i}]" for i in inodes}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        fd_dir = f"/proc/{pid}/fd"
        try:
            for fd in os.listdir(fd_dir):
                if os.readlink(f"{fd_dir}/{fd}") in targets:
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                    return f"pid {pid} ({comm})"
        except OSError:
            continue
    return "a process of another user"
