"""Files that hold secrets or personal data are the owner's alone.

The state directory holds the database (webhook signing secrets, SIP trunk passwords, transcripts),
the keys, the worker's event spool and the logs; recordings hold callers' voices. phoneagent's
processes run with umask 077, so that everything they (and the stack's services they start) create
is 0600 / 0700; ``make_private`` also narrows what an older version left readable.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

UMASK = 0o077


def private_umask() -> None:
    """Every file and directory this process (and its children) creates: the owner's only."""
    os.umask(UMASK)


def make_private(path: Path) -> None:
    """A directory 0700, a file 0600 (if it exists); nothing else about it changes."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    path.chmod(0o700 if stat.S_ISDIR(mode) else 0o600)


def private_dir(path: Path) -> Path:
    """``path`` made (with its parents) and narrowed to 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    make_private(path)
    return path


def private_file(path: Path) -> Path:
    """``path`` created empty if missing, and narrowed to 0600 (before anything secret is written)."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    make_private(path)
    return path
