"""Running the worker's AgentServer: the one place phoneagent uses a private livekit-agents function.

livekit-agents 1.8.9 has no public call that runs an ``AgentServer`` from a program with a command
line of its own: ``cli.run_app`` parses ``sys.argv`` for its own (deprecated) commands, and
``python -m livekit.agents start`` imports the server from a module-level global. Both end in
``livekit.agents.cli.cli._run_worker(server, proto.CliArgs(...))``, which sets up livekit-agents'
logging, the signal handling (drain on the first SIGTERM/SIGINT, exit on the second) and the loop
monitor; phoneagent calls it here and nowhere else. ``tests/unit/test_livekit_contract.py`` checks
its signature against :data:`SUPPORTED_LIVEKIT_AGENTS` and fails, naming the version, when an
upgrade changes it.
"""

from __future__ import annotations

from livekit.agents import AgentServer
from livekit.agents.cli import proto

# the livekit-agents releases whose private parts phoneagent relies on (here and in speech/speculative.py)
SUPPORTED_LIVEKIT_AGENTS = ("1.8.9",)


def run_agent_server(server: AgentServer, *, log_level: str, dev: bool = False) -> None:
    """Run ``server`` until SIGTERM/SIGINT (then drain its calls, unless ``dev``), blocking."""
    from livekit.agents.cli.cli import _run_worker  # private: see the module docstring

    _run_worker(server, proto.CliArgs(log_level=log_level, dev=dev))
