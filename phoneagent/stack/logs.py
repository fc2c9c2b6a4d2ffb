"""`phoneagent stack logs`: the last lines of each service's log, optionally followed."""

from __future__ import annotations

import time

from phoneagent.errors import StackError
from phoneagent.stack.services import Stack


def show_logs(stack: Stack, service: str | None, *, lines: int, follow: bool) -> None:
    names = [svc.name for svc in stack.services()]
    if service is not None and service not in names:
        raise StackError(f"unknown service {service!r}", hint=f"one of: {', '.join(names)}")
    chosen = [service] if service else names
    files = {name: stack.paths.logfile(name) for name in chosen}
    offsets: dict[str, int] = {}
    for name, path in files.items():
        text = path.read_text(errors="replace") if path.exists() else ""
        for line in text.splitlines()[-lines:]:
            print(f"[{name}] {line}")
        offsets[name] = len(text.encode())
    while follow:
        time.sleep(0.5)
        for name, path in files.items():
            if not path.exists():
                continue
            with path.open("rb") as fh:
                fh.seek(offsets[name])
                chunk = fh.read()
            offsets[name] += len(chunk)
            for line in chunk.decode(errors="replace").splitlines():
                print(f"[{name}] {line}")
