"""Writing outputs safely: a file appears whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def check_writable(directory: Path) -> str | None:
    """Create `directory` if needed; None if a file can be written there, else why not (a
    phrase that follows the directory's name)."""
    if directory.exists() and not directory.is_dir():
        return f"{directory} is a file, not a directory"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".transcript-check-"):
            pass
    except OSError as err:
        return f"{directory} is not writable ({err.strerror or err})"
    return None


def write_atomically(target: Path, text: str) -> None:
    """Write via a temporary file in the same directory, then rename: never a partial file.
    The file gets the mode a plain `open()` would give it (0666 less the umask), not
    `mkstemp`'s 0600."""
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        os.chmod(temporary, 0o666 & ~_umask())
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
