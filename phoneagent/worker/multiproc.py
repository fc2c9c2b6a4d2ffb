"""Where the worker's job processes write their Prometheus series (see ``phoneagent.worker.metrics``).

Kept apart from the metrics themselves: prometheus-client reads ``PROMETHEUS_MULTIPROC_DIR`` when it
is first imported, so the worker command sets it before importing anything that imports it
(livekit-agents does).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

log = logging.getLogger("phoneagent.worker")


def use_multiprocess_dir(state_dir: Path) -> Path:
    """Point prometheus-client at a fresh ``<state dir>/worker-metrics`` for this worker and its job
    processes (they inherit the environment). Call before anything imports prometheus_client."""
    path = state_dir.expanduser() / "worker-metrics"
    shutil.rmtree(path, ignore_errors=True)  # a previous worker's files would be added in
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    if "prometheus_client" in sys.modules:
        log.warning("prometheus_client was imported before its multiprocess directory was set")
    return path
