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
    # environment for `go mod download` and `go build` (e.g. GONOSUMDB for a module sum.golang.org lacks)
    env: tuple[tuple[str, str], ...] = field(default=())
    # files a `//go:embed` needs that the module zip lacks: the build runs in a writable copy with them
    placeholders: tuple[str, ...] = field(default=())
    # Debian packages whose headers the cgo build needs (named in the hint when pkg-config fails)
    apt_hint: str = ""
    # a module in this repository (its directory) instead of one from the proxy: see `local_go_binary`
    source: str = ""
    tags: tuple[str, ...] = field(default=())  # Go build tags (`go build -tags`)

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
    apt_hint="libopus-dev libopusfile-dev libsoxr-dev",
)

# Call recording. v1.8.6, not the current v1.14: the Go module proxy serves only v1.8.0 and v1.8.6 of
# livekit/egress (403 for the rest), and sum.golang.org has no entry for them (404), hence GONOSUMDB for
# this one module (every dependency is still checked against egress's go.sum). Its `cmd/server` embeds
# the Chrome layout bundle, which the module zip lacks: a placeholder stands in (no Chrome egress here).
# In v1.8.6 every RoomComposite egress runs Chrome; audio-only SDK composites came in v1.13/1.14. So
# phoneagent records with TrackEgress (one OGG/Opus file per audio track, no Chrome) and mixes itself.
EGRESS = GoBinary(
    name="egress",
    module="github.com/livekit/egress",
    version="v1.8.6",
    package="./cmd/server",
    pkg_config=("gstreamer-1.0", "gstreamer-app-1.0", "gstreamer-controller-1.0"),
    env=(("GONOSUMDB", "github.com/livekit/egress"),),
    placeholders=("cmd/server/templates/index.html",),
    apt_hint="libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev",
)

GO_BINARIES = (LIVEKIT_SERVER, LIVEKIT_SIP, EGRESS)

# An S3-compatible server for the recording-storage tests only (never part of the stack). The proxy
# refuses MinIO's release tags (403); this is the pseudo-version `@latest` resolves to.
MINIO = GoBinary(
    name="minio",
    module="github.com/minio/minio",
    version="v0.0.0-20260212201848-7aac2a2c5b7c",
    package=".",
)
# The deployment checks only (tests/integration/test_deploy.py): `helm lint` and `helm template` of the
# chart in deploy/helm/phoneagent.
HELM = GoBinary(
    name="helm",
    module="helm.sh/helm/v3",
    version="v3.22.0",
    package="./cmd/helm",
)


@dataclass(frozen=True)
class GoModuleFile:
    """One file of a Go module, fetched through the Go module proxy (`go mod download`) and cached."""

    module: str
    version: str
    path: str  # inside the module

    @property
    def key(self) -> str:
        return f"{self.module.replace('/', '+')}-{self.version}"


# The Compose specification's JSON schema, as compose-go (Docker Compose's loader) ships it; the
# deployment tests validate deploy/compose/compose.yaml against it.
COMPOSE_SPEC_SCHEMA = GoModuleFile(
    module="github.com/compose-spec/compose-go/v2",
    version="v2.16.2",
    path="schema/compose-spec.json",
)

# Prometheus for the monitoring tests only (tests/integration/test_monitoring.py,
# tests/e2e/test_metrics_scrape.py): promtool checks and unit-tests deploy/prometheus/rules.yml and the
# dashboard's queries, the server scrapes a live stack. Module v0.316.0 is Prometheus 3.16.0.
# `remove_all_sd` leaves out the cloud service discoveries (AWS, Azure, GCE, Kubernetes, ...): static
# targets are all the tests scrape, and their SDKs need not be downloaded and compiled. Without
# `builtinassets` the server has no web UI, only its HTTP API. Both binaries come from one module: the
# second build reuses the first's download and compiled packages (first builds on 2 busy cores, every
# module downloaded: promtool 192 s, then prometheus 129 s). The module zip carries a go.work naming
# modules it does not hold: GOWORK=off builds the module alone.
PROMETHEUS_MODULE, PROMETHEUS_VERSION = "github.com/prometheus/prometheus", "v0.316.0"
PROMTOOL = GoBinary(
    name="promtool",
    module=PROMETHEUS_MODULE,
    version=PROMETHEUS_VERSION,
    package="./cmd/promtool",
    tags=("remove_all_sd",),
    env=(("GOWORK", "off"),),
)
PROMETHEUS = GoBinary(
    name="prometheus",
    module=PROMETHEUS_MODULE,
    version=PROMETHEUS_VERSION,
    package="./cmd/prometheus",
    tags=("remove_all_sd",),
    env=(("GOWORK", "off"),),
)
TEST_GO_BINARIES = (MINIO, HELM, PROMTOOL, PROMETHEUS)

# Debian packages: what each is for, so a missing one gets an exact hint.
APT_RUNTIME = {
    "redis-server": "Redis, the bus between livekit-server and livekit-sip",
    "libopus0": "Opus codec used by livekit-sip",
    "libopusfile0": "Opus files used by livekit-sip",
    "libsoxr0": "resampler used by livekit-sip",
    "libgstreamer1.0-0": "GStreamer, the media engine of egress (call recording)",
    "libgstreamer-plugins-base1.0-0": "GStreamer app/audio libraries egress links",
    "gstreamer1.0-plugins-base": "Opus, Ogg, audio mixing elements egress records with",
    "gstreamer1.0-plugins-good": "RTP depayloading for egress, WAV for recording checks",
    "gstreamer1.0-tools": "gst-launch-1.0, which merges a call's track recordings into one file",
}
APT_BUILD = {
    "pkg-config": "finds the C libraries of livekit-sip's cgo build",
    "libopus-dev": "headers for livekit-sip's cgo build",
    "libopusfile-dev": "headers for livekit-sip's cgo build",
    "libsoxr-dev": "headers for livekit-sip's cgo build",
    "gcc": "the C compiler of the cgo builds (livekit-sip, egress)",
    "libgstreamer1.0-dev": "headers for egress's cgo build (GStreamer)",
    "libgstreamer-plugins-base1.0-dev": "headers for egress's cgo build (gstreamer-app)",
}
APT_TEST = {
    "baresip-core": "the SIP phone that calls the stack in tests (plays and records 8 kHz G.711)",
    "sip-tester": "sipp, a scriptable SIP peer",
    "postgresql": "PostgreSQL server: the test suite runs every database test on it as well as SQLite",
    "chromium": "the browser Playwright drives in the call log review page tests",
    "espeak-ng": "espeak-ng voices: callers unlike the agent's Piper voice for the speech benchmark",
    "openssl": "makes the throwaway CA and certificates of the SIP-over-TLS tests",
}

MIN_GO = (1, 26)
