"""Install what the stack needs: Debian packages, and the LiveKit binaries built from their Go modules.

The binaries are built once per pinned version into the cache (``~/.cache/phoneagent/bin/<name>-<version>/``),
so a second clone or a re-run reuses them. Builds go through ``go mod download`` and ``go build`` in the
downloaded module rather than ``go install MODULE@VERSION``: ``go install`` also asks the proxy for the
module's version list (to print deprecations), which the reachable proxy refuses for livekit/sip. A
module that needs files its zip lacks (egress embeds a web bundle) is built in a writable copy with
placeholders; nothing else of the downloaded source is changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from phoneagent.errors import BuildError, MissingToolError
from phoneagent.stack.paths import StackPaths
from phoneagent.stack.versions import MIN_GO, GoBinary, GoModuleFile

log = logging.getLogger("phoneagent.stack")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _tool(name: str) -> str:
    """The full path of a program the install runs (never a bare name looked up by the child)."""
    path = shutil.which(name)
    if path is None:
        raise MissingToolError(f"{name} is not installed or not on PATH", hint=f"install {name}")
    return path


def missing_apt(packages: Iterable[str]) -> list[str]:
    names = list(packages)
    if not names or shutil.which("dpkg-query") is None:
        return names if shutil.which("dpkg-query") is None else []
    out = subprocess.run(
        [_tool("dpkg-query"), "-W", "-f=${Package} ${db:Status-Status}\n", *names],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    return [n for n in names if n not in installed]


def ensure_apt(packages: Mapping[str, str], *, install: bool = True) -> None:
    """Install missing Debian packages (as root), or say exactly which are missing and why."""
    missing = missing_apt(packages)
    if not missing:
        return
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    why = "; ".join(f"{n}: {packages[n]}" for n in missing)
    if not install or os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise MissingToolError(f"missing Debian packages: {why}", hint="run: sudo " + " ".join(cmd))
    log.info("installing Debian packages", extra={"packages": missing})
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([_tool("apt-get"), "update", "-q"], check=False, capture_output=True, env=env)
    done = subprocess.run([_tool("apt-get"), *cmd[1:]], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        last = "\n".join(done.stderr.splitlines()[-10:])
        raise MissingToolError(f"apt-get could not install {' '.join(missing)}:\n{last}", hint=" ".join(cmd))


def go_version() -> tuple[int, int] | None:
    go = shutil.which("go")
    if go is None:
        return None
    out = subprocess.run([go, "version"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"go(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _require_go() -> None:
    found = go_version()
    need = ".".join(map(str, MIN_GO))
    if found is None:
        raise MissingToolError(
            "Go is not installed; the LiveKit binaries are built from their Go modules",
            hint=f"install Go >= {need} (https://go.dev/doc/install) and put `go` on PATH",
        )
    if found < MIN_GO:
        raise MissingToolError(
            f"Go {found[0]}.{found[1]} is too old for the pinned LiveKit modules",
            hint=f"install Go >= {need}",
        )


def _require_pkg_config(spec: GoBinary) -> None:
    libs = list(spec.pkg_config)
    if not libs:
        return
    if shutil.which("pkg-config") is None:
        raise MissingToolError(
            f"pkg-config is missing (needed by {spec.name}'s cgo build)", hint="apt-get install pkg-config"
        )
    pkg_config = _tool("pkg-config")
    missing = [
        lib for lib in libs if subprocess.run([pkg_config, "--exists", lib], check=False).returncode != 0
    ]
    if missing:
        raise MissingToolError(
            f"pkg-config cannot find: {', '.join(missing)}", hint=f"apt-get install {spec.apt_hint}"
        )


def _writable_copy(module_dir: Path, spec: GoBinary, into: Path) -> Path:
    """The module's source (read-only in the module cache), copied with the placeholders it needs."""
    src = into / f"{spec.name}-{spec.version}"
    shutil.copytree(module_dir, src)
    for root, dirs, files in os.walk(src):
        for name in dirs + files:
            p = Path(root) / name
            p.chmod(p.stat().st_mode | 0o200)
    src.chmod(src.stat().st_mode | 0o200)
    for rel in spec.placeholders:
        target = src / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("placeholder: not built from the module zip (unused by phoneagent)\n")
    return src


def local_go_binary(name: str, source: Path, package: str = ".") -> GoBinary:
    """A program whose Go module lives in this repository (its own go.mod and go.sum in ``source``),
    cached like the others under a version named by a digest of its source: an edit builds anew."""
    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return GoBinary(
        name=name,
        module=f"./{source.name}",
        version="src-" + digest.hexdigest()[:16],
        package=package,
        source=str(source),
    )


def _download_module(module: str, version: str, env: Mapping[str, str]) -> tuple[Path, str]:
    """``go mod download`` of one module version: its directory in the module cache, and go's output."""
    dl = subprocess.run(
        [_tool("go"), "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        env=dict(env),
        check=False,
    )
    info = json.loads(dl.stdout) if dl.stdout.strip().startswith("{") else {}
    if dl.returncode != 0 or "Dir" not in info:
        reason = info.get("Error") or dl.stderr.strip() or "no module directory"
        raise BuildError(
            f"cannot download {module}@{version}: {reason}",
            hint="check that the Go module proxy is reachable (GOPROXY)",
        )
    return Path(info["Dir"]), dl.stdout + dl.stderr


def ensure_go_module_file(spec: GoModuleFile, paths: StackPaths) -> Path:
    """Return the cached copy of one file of a Go module, downloading the module first if needed."""
    target = paths.cache / "files" / spec.key / spec.path
    if target.is_file():
        return target
    _require_go()
    module_dir, _ = _download_module(spec.module, spec.version, os.environ)
    found = module_dir / spec.path
    if not found.is_file():
        raise BuildError(f"{spec.module}@{spec.version} has no file {spec.path}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(found, tmp)
    tmp.replace(target)
    return target


def _tags(spec: GoBinary) -> list[str]:
    return ["-tags", ",".join(spec.tags)] if spec.tags else []


def ensure_go_binary(spec: GoBinary, paths: StackPaths) -> Path:
    """Return the cached binary for ``spec``, building it first if it is not there."""
    target = paths.binary(spec)
    if target.is_file() and os.access(target, os.X_OK):
        return target
    _require_go()
    _require_pkg_config(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    build_log = paths.build_log(spec)
    log.info(
        "building from Go module (first run only; a few minutes)",
        extra={"go_module": spec.module, "version": spec.version},
    )
    env = {**os.environ, "CGO_ENABLED": "1" if spec.pkg_config else "0", **dict(spec.env)}
    started = time.monotonic()
    with build_log.open("w") as fh, tempfile.TemporaryDirectory(prefix="build-", dir=target.parent) as work:
        if spec.source:  # a module of this repository: built where it is, its go.sum checks the rest
            module_dir = Path(spec.source)
        else:
            module_dir, output = _download_module(spec.module, spec.version, env)
            fh.write(output)
        tmp = target.with_name(target.name + ".tmp")
        src = _writable_copy(module_dir, spec, Path(work)) if spec.placeholders else module_dir
        fh.flush()
        built = subprocess.run(
            # -buildvcs=false: a module inside this repository's checkout is not stamped with its commit
            [_tool("go"), "build", "-trimpath", "-buildvcs=false", *_tags(spec), "-o", str(tmp)]
            + [spec.package],
            cwd=src,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
        )
        fh.write(f"\nbuilt in {time.monotonic() - started:.0f} s\n")
    if built.returncode != 0:
        raise BuildError(f"go build of {spec.key} failed:\n{_tail(build_log)}", hint=f"full log: {build_log}")
    tmp.replace(target)
    log.info("built", extra={"go_module": spec.module, "seconds": round(time.monotonic() - started)})
    return target
