"""What holds secrets or callers' words is the owner's alone: the state directory 0700, the database
and its WAL 0600 (also after an older version left them 0755 / 0644), the worker's spooled events
0600, and everything a phoneagent command creates (umask 077)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from phoneagent.worker.reporter import EventReporter


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _run(*args: str, state: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHONEAGENT_")}
    env["PHONEAGENT_STATE_DIR"] = str(state)
    subprocess.run(
        [sys.executable, "-m", "phoneagent.cli", *args],
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
        umask=0o022,
    )


def test_a_new_state_directory_and_database_are_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _run("db", "upgrade", state=state)
    assert _mode(state) == 0o700
    assert _mode(state / "phoneagent.db") == 0o600
    for path in state.rglob("*"):  # the WAL, keys, anything else the command wrote
        assert _mode(path) & 0o077 == 0, (path, oct(_mode(path)))


def test_an_older_installs_modes_are_narrowed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    db = state / "phoneagent.db"
    db.touch()
    db.chmod(0o644)
    wal = state / "phoneagent.db-wal"
    wal.touch()
    wal.chmod(0o644)
    _run("db", "upgrade", state=state)
    assert (_mode(state), _mode(db)) == (0o700, 0o600)
    # SQLite removes the WAL when its last connection closes; while it is there it is 0600
    assert not wal.exists() or _mode(wal) == 0o600


def test_spooled_events_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        reporter = EventReporter(url="http://127.0.0.1:9", token="t", spool_dir=tmp_path / "spool")
        reporter.report("room", "turn", {"text": "my card number is ..."})
        reporter.written()
    finally:
        os.umask(old)
    assert _mode(tmp_path / "spool") == 0o700
    [event] = reporter.pending()
    assert _mode(event) == 0o600
