#!/usr/bin/env bash
# Installs what phoneagent needs on a fresh Debian 12 machine, idempotently:
# Debian packages (Redis, the C libraries livekit-sip links, GStreamer for egress and for merging
# recordings, a SIP phone; for the tests sipp, PostgreSQL, Chromium, espeak-ng, openssl), uv, the locked Python environment (.venv), and the LiveKit
# binaries (built once per pinned version into ~/.cache/phoneagent/bin). Usage: scripts/setup.sh [--tests]
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
packages=(redis-server gcc pkg-config libopus-dev libopusfile-dev libsoxr-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-tools baresip-core)  # baresip: the phone `phoneagent dev` tells you to call it with
if [[ "${1:-}" == "--tests" ]]; then
  packages+=(sip-tester postgresql chromium espeak-ng openssl)
fi

say() { printf '[setup] %s\n' "$*"; }

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { say "need root to install: ${missing[*]}"; exit 1; }
    sudo=sudo
  fi
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v python3.11 >/dev/null || { say "Python 3.11 is required (python3.11 not on PATH)"; exit 1; }
command -v go >/dev/null || { say "Go >= 1.26 is required to build LiveKit: https://go.dev/doc/install"; exit 1; }

if ! command -v uv >/dev/null || [[ "$(uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]]; then
  say "installing uv $UV_VERSION"
  python3.11 -m pip install -q "uv==$UV_VERSION"
fi

export UV_PYTHON_DOWNLOADS=never
say "syncing the locked Python environment (.venv)"
uv sync -q --frozen --all-extras --python python3.11

say "building or reusing the LiveKit binaries"
uv run --frozen --no-sync phoneagent stack install
