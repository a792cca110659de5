"""Writing outputs safely: a file appears whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def check_writable(directory: Path) -> str | None:
    """Create `directory` if needed; None if a file can be written there, else why not."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".transcript-check-"):
            pass
    except OSError as err:
        return f"{directory}: output directory is not writable ({err.strerror or err})"
    return None


def write_atomically(target: Path, text: str) -> None:
    """Write via a temporary file in the same directory, then rename: never a partial file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
