#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, then run `phoneagent dev`
# (the local stack, the control plane and a worker that answers calls; it prints the number to dial).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec uv run --frozen --no-sync phoneagent dev
