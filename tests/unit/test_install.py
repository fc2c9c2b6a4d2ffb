from __future__ import annotations

from pathlib import Path

import pytest

from phoneagent.errors import MissingToolError
from phoneagent.stack import install
from phoneagent.stack.paths import StackPaths
from phoneagent.stack.versions import GoBinary


def test_missing_go_is_diagnosed_with_a_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no go on it
    spec = GoBinary(name="x", module="example.com/x", version="v1.0.0", package="./cmd/x")
    with pytest.raises(MissingToolError) as err:
        install.ensure_go_binary(spec, StackPaths(state=tmp_path / "s", cache=tmp_path / "c"))
    assert "Go is not installed" in err.value.message and "go.dev" in err.value.hint


def test_missing_system_library_is_named_with_its_package() -> None:
    spec = GoBinary(
        name="x",
        module="example.com/x",
        version="v1.0.0",
        package=".",
        pkg_config=("opus", "no-such-library-phoneagent"),
        apt_hint="libx-dev",
    )
    with pytest.raises(MissingToolError, match="no-such-library-phoneagent") as err:
        install._require_pkg_config(spec)
    assert err.value.hint == "apt-get install libx-dev"


def test_missing_debian_package_names_the_install_command() -> None:
    with pytest.raises(MissingToolError) as err:
        install.ensure_apt({"phoneagent-no-such-package": "for the test"}, install=False)
    assert "phoneagent-no-such-package: for the test" in err.value.message
    assert "apt-get install" in err.value.hint


def test_cached_binary_is_reused_without_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = GoBinary(name="tool", module="example.com/tool", version="v9.9.9", package="./cmd/tool")
    paths = StackPaths(state=tmp_path / "s", cache=tmp_path / "c")
    binary = paths.binary(spec)
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))  # no go: a rebuild attempt would fail
    assert install.ensure_go_binary(spec, paths) == binary
