"""Builds through the real Go toolchain and module proxy."""

from __future__ import annotations

from pathlib import Path

import pytest

from phoneagent.errors import BuildError
from phoneagent.stack import install
from phoneagent.stack.paths import StackPaths
from phoneagent.stack.versions import GoBinary


def test_unknown_module_version_fails_with_the_proxy_answer(tmp_path: Path) -> None:
    spec = GoBinary(
        name="nope",
        module="github.com/livekit/sip",
        version="v0.0.0-phoneagent-none",
        package="./cmd/livekit-sip",
    )
    with pytest.raises(BuildError, match="cannot download github.com/livekit/sip@v0.0.0-phoneagent-none"):
        install.ensure_go_binary(spec, StackPaths(state=tmp_path / "s", cache=tmp_path / "c"))
    assert not (tmp_path / "c" / "bin" / spec.key / "nope").exists()
