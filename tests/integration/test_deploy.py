"""deploy/ checked by the real tools, offline: `helm lint` and `helm template` (Helm built from its Go
module) for the default, small and large values; every rendered object decoded strictly against the
Kubernetes API types (deploy/tools/kubecheck); the Compose file against the Compose specification's
JSON schema. Each checker is shown refusing a broken input too. `pytest -m deploy` runs these alone.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from phoneagent.config import Settings
from phoneagent.stack.services import Stack
from phoneagent.stack.versions import EGRESS, LIVEKIT_SERVER, LIVEKIT_SIP
from tests.deploy_tools import (
    COMPOSE_FILE,
    VALUES,
    ComposeSchema,
    Helm,
    Kubecheck,
    Ran,
    cache,
    objects,
)

pytestmark = pytest.mark.deploy

# what the chart's pods take from the Secret, never from a value or a ConfigMap
SECRET_ENV = {
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "REDIS_PASSWORD",
    "PHONEAGENT_WORKER_SECRET",
    "PHONEAGENT_SESSION_SECRET",
    "PHONEAGENT_S3_ACCESS_KEY",
    "PHONEAGENT_S3_SECRET_KEY",
    "POSTGRES_PASSWORD",
    "MINIO_ROOT_USER",
    "MINIO_ROOT_PASSWORD",
}
# the env entry of each LiveKit component that carries its config, and the template it came from
CONFIG_ENV = {
    "livekit": ("LIVEKIT_CONFIG", "livekit.yaml"),
    "sip": ("SIP_CONFIG_BODY", "livekit-sip.yaml"),
    "egress": ("EGRESS_CONFIG_BODY", "egress.yaml"),
    "redis": ("REDIS_CONF", "redis.conf"),
}


@pytest.fixture(scope="module")
def helm() -> Helm:
    return Helm(cache())  # built once (about 75 s on 2 cores), then cached by version


@pytest.fixture(scope="module")
def kubecheck() -> Kubecheck:
    return Kubecheck(cache())  # built once per source digest (about 30 s)


@pytest.fixture(scope="module")
def rendered(helm: Helm) -> dict[str, str]:
    out = {}
    for name, values in VALUES.items():
        done = helm.template(values)
        assert done.returncode == 0, done.err
        out[name] = done.out
    return out


def _pods(manifests: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(component, pod spec) of every Deployment, StatefulSet and Job."""
    for obj in objects(manifests):
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            component = obj["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
            yield component, obj["spec"]["template"]["spec"]


def _env(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for container in pod.get("initContainers", []) + pod["containers"]:
        yield from container.get("env", [])


@pytest.mark.parametrize("values", list(VALUES))
def test_helm_lint_passes_strictly(helm: Helm, values: str) -> None:
    done = helm.lint(VALUES[values])
    assert done.returncode == 0, done.out + done.err
    assert "0 chart(s) failed" in done.out


@pytest.mark.parametrize("values", list(VALUES))
def test_every_rendered_object_decodes_strictly(
    kubecheck: Kubecheck, rendered: dict[str, str], values: str
) -> None:
    done = kubecheck.check(rendered[values])
    assert done.returncode == 0, done.out + done.err
    checked = [line.split()[1] for line in done.out.splitlines() if line.startswith("ok ")]
    kinds = {label.split("/")[0] for label in checked}
    assert {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler", "Job"} <= kinds
    names = {label.split("/")[1] for label in checked}
    for part in ("livekit", "sip", "egress", "redis", "api", "worker", "migrations"):
        assert f"pa-phoneagent-{part}" in names, part
    bundled = values != "large"  # the large site has its own PostgreSQL and S3
    assert ("pa-phoneagent-postgresql" in names) is bundled
    assert ("pa-phoneagent-minio" in names) is bundled
    print(f"{values}: {len(checked)} objects decoded strictly")


def _deployment(rendered: str, name: str) -> dict[str, Any]:
    return next(o for o in objects(rendered) if o["kind"] == "Deployment" and o["metadata"]["name"] == name)


def _refused(done: Ran) -> str:
    assert done.returncode == 1, done.out
    return next(line for line in done.out.splitlines() if line.startswith("REFUSED"))


def test_kubecheck_refuses_a_misspelled_field_and_a_wrong_type(
    kubecheck: Kubecheck, rendered: dict[str, str]
) -> None:
    good = _deployment(rendered["default"], "pa-phoneagent-worker")
    misspelled = copy.deepcopy(good)
    misspelled["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    line = _refused(kubecheck.check(yaml.safe_dump(misspelled)))
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolicyy"' in line

    wrong_type = copy.deepcopy(good)
    wrong_type["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "half an hour"
    line = _refused(kubecheck.check(yaml.safe_dump(wrong_type)))
    assert "terminationGracePeriodSeconds" in line and "int64" in line

    unknown_kind = {"apiVersion": "v1", "kind": "Servce", "metadata": {"name": "x"}}
    assert "no kind" in _refused(kubecheck.check(yaml.safe_dump(unknown_kind)))
    # and the good one passes, alone
    assert kubecheck.check(yaml.safe_dump(good)).returncode == 0


def test_secrets_come_only_from_the_secret(rendered: dict[str, str]) -> None:
    for values, manifests in rendered.items():
        objs = objects(manifests)
        assert not [o for o in objs if o["kind"] == "Secret"], "the chart creates no Secret"
        for cm in (o for o in objs if o["kind"] == "ConfigMap"):
            for key, value in cm.get("data", {}).items():
                assert not re.search(r"KEY|SECRET|PASSWORD|TOKEN", key), (values, key)
                assert "$(" not in value, (values, key)
        for component, pod in _pods(manifests):
            for entry in _env(pod):
                if entry["name"] in SECRET_ENV:
                    ref = entry["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == "phoneagent", (values, component, entry)
                # a config carrying a secret carries only its reference
                value = entry.get("value", "")
                assert not re.search(r"(password|api_secret|requirepass)[: ]+[^$\s]", value), (
                    values,
                    component,
                    entry["name"],
                )


def test_a_secret_in_plain_values_is_refused(helm: Helm) -> None:
    done = helm.template(None, "env.OPENAI_API_KEY=sk-test")
    assert done.returncode != 0
    assert "env.OPENAI_API_KEY looks like a secret" in done.err


def test_several_control_plane_replicas_need_postgresql(helm: Helm) -> None:
    done = helm.template(None, "controlPlane.replicas=2", "database.mode=sqlite")
    assert done.returncode != 0
    assert "controlPlane.replicas > 1 needs PostgreSQL" in done.err
    one = helm.template(None, "controlPlane.replicas=1", "database.mode=sqlite")
    assert one.returncode == 0, one.err
    api = _deployment(one.out, "pa-phoneagent-api")
    assert api["spec"]["strategy"]["type"] == "Recreate"  # one SQLite file, one process at a time
    # no migrations hook: the control plane migrates its own file before it starts
    assert not [o for o in objects(one.out) if o["kind"] == "Job" and "migrations" in o["metadata"]["name"]]
    assert api["spec"]["template"]["spec"]["initContainers"][0]["command"] == ["phoneagent", "db", "upgrade"]


def test_migrations_run_as_a_hook_before_every_upgrade(rendered: dict[str, str]) -> None:
    for values, hooks in (("default", "post-install,pre-upgrade"), ("large", "pre-install,pre-upgrade")):
        job = next(
            o for o in objects(rendered[values]) if o["metadata"]["name"] == "pa-phoneagent-migrations"
        )
        assert job["metadata"]["annotations"]["helm.sh/hook"] == hooks, values
        assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["phoneagent", "db", "upgrade"]
        api = _deployment(rendered[values], "pa-phoneagent-api")
        wait = api["spec"]["template"]["spec"]["initContainers"][0]
        assert wait["name"] == "wait-for-schema" and "phoneagent db check" in wait["command"][-1]


def test_workers_scale_on_active_calls(rendered: dict[str, str]) -> None:
    for values in VALUES:
        hpa = next(o for o in objects(rendered[values]) if o["kind"] == "HorizontalPodAutoscaler")
        metric = hpa["spec"]["metrics"][0]
        assert metric["type"] == "Pods"
        assert metric["pods"]["metric"]["name"] == "phoneagent_worker_active_calls"
        assert hpa["spec"]["scaleTargetRef"]["name"] == "pa-phoneagent-worker"
        worker = _deployment(rendered[values], "pa-phoneagent-worker")
        assert "replicas" not in worker["spec"]  # the autoscaler owns the count


def _key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key's dotted path; under ``keys`` (the API key itself is a key) only ``keys``."""
    if isinstance(value, dict) and prefix != "keys.":
        out = set()
        for k, v in value.items():
            out |= {f"{prefix}{k}"} | _key_paths(v, f"{prefix}{k}.")
        return out
    return set()


def _config_text(value: str, name: str) -> dict[str, Any] | list[str]:
    if name == "redis.conf":
        return sorted(line.split()[0] for line in value.splitlines() if line and not line.startswith("#"))
    loaded: dict[str, Any] = yaml.safe_load(value.replace("$(", "ref-").replace(")", ""))
    return loaded


def test_the_pods_configs_are_the_local_stacks_templates(rendered: dict[str, str], tmp_path: Path) -> None:
    """Same keys as what `phoneagent stack up` renders (only values differ): drift between the chart
    and the dev stack's templates fails here, besides the byte check of the unit tier."""
    stack = Stack(Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache"))
    stack.services()
    for values, manifests in rendered.items():
        pods = dict(_pods(manifests))
        for component, (env_name, config) in CONFIG_ENV.items():
            entry = next(e for e in _env(pods[component]) if e["name"] == env_name)
            dev = _config_text((stack.paths.conf / config).read_text(), config)
            prod = _config_text(entry["value"], config)
            if isinstance(dev, dict) and isinstance(prod, dict):
                assert _key_paths(prod) == _key_paths(dev), (values, config)
            else:
                assert prod == dev, (values, config)
    pods = dict(_pods(rendered["default"]))
    lk = _config_text(next(e for e in _env(pods["livekit"]) if e["name"] == "LIVEKIT_CONFIG")["value"], "x")
    assert isinstance(lk, dict)
    assert lk["rtc"]["node_ip"] == "ref-NODE_IP"
    assert lk["keys"] == {"ref-LIVEKIT_API_KEY": "ref-LIVEKIT_API_SECRET"}
    assert lk["webhook"]["urls"] == ["http://pa-phoneagent-api:8000/webhooks/livekit"]
    assert pods["livekit"]["hostNetwork"] is True and pods["sip"]["hostNetwork"] is True


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


@pytest.fixture(scope="module")
def compose_schema() -> ComposeSchema:
    return ComposeSchema(cache())  # compose-go's schema/compose-spec.json, via `go mod download`


def test_compose_file_follows_the_compose_specification(compose_schema: ComposeSchema) -> None:
    doc = _compose()
    assert compose_schema.errors(doc) == []
    assert {"redis", "postgres", "minio", "livekit", "sip", "egress", "migrations", "api", "worker"} <= set(
        doc["services"]
    )
    assert all(svc["network_mode"] == "host" for svc in doc["services"].values())
    # each generated config, its variables filled as Compose fills them, is a config of the dev
    # template's shape (the same keys as `phoneagent stack up` renders)
    env = {"PHONEAGENT_PUBLIC_IP": "203.0.113.7", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s"}
    env["REDIS_PASSWORD"] = "p"
    filled = {name: _interpolate(config["content"], env) for name, config in doc["configs"].items()}
    assert set(filled) == {"livekit.yaml", "livekit-sip.yaml", "egress.yaml", "redis.conf"}
    for name, text in filled.items():
        assert "$" not in text, name
    sip = yaml.safe_load(filled["livekit-sip.yaml"])
    assert sip["nat_1_to_1_ip"] == "203.0.113.7" and sip["listen_ip"] == "0.0.0.0"
    assert sip["sip_port"] == 5060 and sip["rtp_port"] == "10000-10499"
    lk = yaml.safe_load(filled["livekit.yaml"])
    assert lk["bind_addresses"] == ["127.0.0.1"] and lk["keys"] == {"k": "s"}
    with pytest.raises(KeyError, match="PHONEAGENT_PUBLIC_IP"):  # Compose refuses to start without it
        _interpolate(doc["configs"]["livekit-sip.yaml"]["content"], {**env, "PHONEAGENT_PUBLIC_IP": ""})


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} (the last raising when VAR is unset or empty)."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m[1], m[2] or "", m[3] or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, text)


def test_compose_schema_refuses_a_misspelled_key_and_a_wrong_type(compose_schema: ComposeSchema) -> None:
    doc = _compose()
    doc["services"]["api"]["network_mod"] = "host"
    doc["services"]["worker"]["stop_grace_period"] = ["30m"]
    errors = compose_schema.errors(doc)
    assert any(e.startswith("services/api") and "network_mod" in e for e in errors), errors
    assert any(e.startswith("services/worker/stop_grace_period") for e in errors), errors


def test_compose_and_chart_name_the_pinned_binaries() -> None:
    """The image both use builds the stack's pinned versions (deploy/docker/Dockerfile runs
    `phoneagent stack install`); what the README says about versions follows versions.py."""
    readme = (COMPOSE_FILE.parents[1] / "README.md").read_text()
    for spec in (LIVEKIT_SERVER, LIVEKIT_SIP, EGRESS):
        assert f"{spec.name} {spec.version}" in readme, spec.key
