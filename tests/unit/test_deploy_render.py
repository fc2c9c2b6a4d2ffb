"""deploy/'s LiveKit, SIP, egress and Redis configs are a render of the local stack's templates: the
committed files must equal a fresh render (`python -m phoneagent.stack.deploy_render` regenerates)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from phoneagent.config import Settings
from phoneagent.db.engine import make_engine
from phoneagent.db.migrate import schema_state, upgrade
from phoneagent.stack import deploy_render
from phoneagent.stack.deploy_render import COMMAND, COMPOSE, CONFIGS, HELM, RenderError, Target, render
from phoneagent.stack.install import local_go_binary

REPO = Path(__file__).resolve().parents[2]


def test_committed_deploy_configs_are_a_fresh_render_of_the_stack_templates() -> None:
    stale = deploy_render.stale(REPO)
    assert stale == [], f"{[str(p.relative_to(REPO)) for p in stale]} differ: run `{COMMAND}` to regenerate"


def test_check_fails_when_a_generated_file_was_edited(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REPO / "deploy", tmp_path / "deploy", ignore=shutil.ignore_patterns("kubecheck"))
    assert deploy_render.main(["--root", str(tmp_path), "--check"]) == 0
    edited = tmp_path / "deploy/helm/phoneagent/files/livekit-sip.yaml"
    edited.write_text(edited.read_text().replace("health_port: 0", "health_port: 8089"))
    compose = tmp_path / "deploy/compose/compose.yaml"
    compose.write_text(compose.read_text().replace("target_load: 1.0", "target_load: 0.7"))
    assert deploy_render.main(["--root", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr()
    assert "deploy/helm/phoneagent/files/livekit-sip.yaml: differs" in out.out
    assert "deploy/compose/compose.yaml: differs" in out.out and COMMAND in out.err
    assert deploy_render.main(["--root", str(tmp_path)]) == 0  # regenerates both
    assert deploy_render.stale(tmp_path) == []


def test_a_placeholder_without_a_production_value_stops_the_render() -> None:
    partial = Target(common={k: v for k, v in HELM.common.items() if k != "livekit_ws_url"}, per_config={})
    with pytest.raises(
        RenderError, match="egress.yaml.tmpl has placeholders without a production value: livekit_ws_url"
    ):
        render("egress.yaml", partial)


def test_production_renders_hold_no_loopback_address_and_no_secret() -> None:
    for config in CONFIGS:
        helm = render(config, HELM)
        assert "127.0.0.1" not in helm, config  # every address is the chart's
        assert not [line for line in helm.splitlines()[1:] if line.lstrip().startswith("#")], config
    sip = render("livekit-sip.yaml", HELM)
    assert "nat_1_to_1_ip: $(NODE_IP)" in sip and "listen_ip: {{ .Values.sip.listenIP }}" in sip
    assert "api_secret: $(LIVEKIT_API_SECRET)" in sip and "password: $(REDIS_PASSWORD)" in sip
    compose_sip = render("livekit-sip.yaml", COMPOSE)
    assert "nat_1_to_1_ip: ${PHONEAGENT_PUBLIC_IP:?" in compose_sip
    # Compose's defaults are phoneagent's own settings' defaults
    assert f"sip_port: ${{PHONEAGENT_SIP_PORT:-{Settings.model_fields['sip_port'].default}}}" in compose_sip


def test_listen_host_moves_only_the_listening_address() -> None:
    assert Settings().listen_address == "127.0.0.1"
    pod = Settings(listen_host="0.0.0.0")
    assert pod.listen_address == "0.0.0.0" and pod.bind_host == "127.0.0.1"
    with pytest.raises(ValidationError):
        Settings(listen_host="not-an-address")


def test_db_check_passes_the_latest_schema_or_a_newer_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    empty = schema_state(url)
    assert empty.current is None and not empty.usable
    upgrade(url, "0001")
    assert not schema_state(url).usable  # behind: wait for the migrations
    upgrade(url)
    latest = schema_state(url)
    assert latest.current == latest.head and latest.usable and not latest.ahead
    # a newer version migrated it (a rollback, an old replica restarting mid-upgrade): usable
    with make_engine(url).begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    newer = schema_state(url)
    assert newer.ahead and newer.usable


def test_a_local_go_module_is_cached_under_a_digest_of_its_source(tmp_path: Path) -> None:
    src = tmp_path / "tool"
    src.mkdir()
    (src / "main.go").write_text("package main\n\nfunc main() {}\n")
    first = local_go_binary("tool", src)
    assert first.version.startswith("src-") and first.source == str(src)
    assert local_go_binary("tool", src) == first
    (src / "main.go").write_text("package main\n\nfunc main() { println() }\n")
    assert local_go_binary("tool", src).version != first.version
