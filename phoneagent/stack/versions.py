"""Pinned versions of everything the stack builds or installs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GoBinary:
    name: str
    module: str
    version: str
    package: str  # main package inside the module
    pkg_config: tuple[str, ...] = field(default=())  # cgo libraries that must be found by pkg-config

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


LIVEKIT_SERVER = GoBinary(
    name="livekit-server",
    module="github.com/livekit/livekit-server",
    version="v1.13.5",
    package="./cmd/server",
)

# v1.8.0, not v1.11.0: the Go module proxy reachable here serves v1.8.0 (2026-07-23, built against
# the same protocol generation as livekit-server v1.13.5) and answers 403 for v1.9+.
LIVEKIT_SIP = GoBinary(
    name="livekit-sip",
    module="github.com/livekit/sip",
    version="v1.8.0",
    package="./cmd/livekit-sip",
    pkg_config=("opus", "opusfile", "soxr"),
)

GO_BINARIES = (LIVEKIT_SERVER, LIVEKIT_SIP)

# Debian packages: what each is for, so a missing one gets an exact hint.
APT_RUNTIME = {
    "redis-server": "Redis, the bus between livekit-server and livekit-sip",
    "libopus0": "Opus codec used by livekit-sip",
    "libopusfile0": "Opus files used by livekit-sip",
    "libsoxr0": "resampler used by livekit-sip",
}
APT_BUILD = {
    "pkg-config": "finds the C libraries of livekit-sip's cgo build",
    "libopus-dev": "headers for livekit-sip's cgo build",
    "libopusfile-dev": "headers for livekit-sip's cgo build",
    "libsoxr-dev": "headers for livekit-sip's cgo build",
}
APT_TEST = {
    "baresip-core": "the SIP phone that calls the stack in tests (plays and records 8 kHz G.711)",
    "sip-tester": "sipp, a scriptable SIP peer",
    "postgresql": "PostgreSQL server: the test suite runs every database test on it as well as SQLite",
    "espeak-ng": "espeak-ng voices: callers unlike the agent's Piper voice for the speech benchmark",
}

MIN_GO = (1, 26)
