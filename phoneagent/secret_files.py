"""Secrets mounted as files (Kubernetes and Docker secrets): ``PHONEAGENT_<NAME>_FILE`` instead of the
value itself, read once when the settings are made (``phoneagent.config``)."""

from __future__ import annotations

from pathlib import Path


def read_secret_file(path: Path, setting: str) -> str:
    """The secret in ``path``, surrounding whitespace dropped (a mounted secret usually ends with a
    newline). ValueError naming ``setting`` when the file is missing, unreadable or empty."""
    path = path.expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{setting}: {path} does not exist") from None
    except PermissionError:
        raise ValueError(f"{setting}: {path} is not readable by this user (permission denied)") from None
    except IsADirectoryError:
        raise ValueError(f"{setting}: {path} is a directory, not a file") from None
    except UnicodeDecodeError:
        raise ValueError(f"{setting}: {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(f"{setting}: cannot read {path} ({exc.strerror})") from None
    value = text.strip()
    if not value:
        raise ValueError(f"{setting}: {path} is empty")
    return value
