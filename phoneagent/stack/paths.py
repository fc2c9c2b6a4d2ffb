"""Where the stack keeps things: binaries in the cache (shared by clones), runtime state per stack."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from phoneagent.config import Settings
from phoneagent.stack.versions import GoBinary


@dataclass(frozen=True)
class StackPaths:
    state: Path
    cache: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> StackPaths:
        return cls(state=settings.state_dir.expanduser(), cache=settings.cache_dir.expanduser())

    def binary(self, spec: GoBinary) -> Path:
        return self.cache / "bin" / spec.key / spec.name

    def build_log(self, spec: GoBinary) -> Path:
        return self.cache / "bin" / f"{spec.key}.build.log"

    @property
    def run(self) -> Path:
        return self.state / "run"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def conf(self) -> Path:
        return self.state / "conf"

    @property
    def secrets(self) -> Path:
        return self.state / "secrets.json"

    def pidfile(self, service: str) -> Path:
        return self.run / f"{service}.pid"

    def logfile(self, service: str) -> Path:
        return self.logs / f"{service}.log"


def template(name: str) -> Traversable:
    """A config template shipped in the package (``phoneagent/stack/templates/``), installed or not."""
    found = resources.files("phoneagent.stack").joinpath("templates", name)
    if not found.is_file():
        raise FileNotFoundError(f"no config template {name!r} in phoneagent/stack/templates")
    return found
