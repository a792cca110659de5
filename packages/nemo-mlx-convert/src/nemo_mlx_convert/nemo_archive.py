"""Reading a `.nemo` file: a tar (plain or gzipped) of config, weights and tokenizer files.

Nothing is extracted by the names inside the archive: members are read by the names the
config refers to and written where the converter decides, so a crafted member path can
never escape the output directory.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import yaml

from .errors import ConversionError

CONFIG_NAME = "model_config.yaml"
WEIGHTS_NAME = "model_weights.ckpt"
_CHUNK = 8 << 20


class NemoArchive:
    """An open `.nemo` archive. Use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise ConversionError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise ConversionError(f"{self.path}: is a directory, not a .nemo file")
        try:
            self._tar = tarfile.open(self.path, mode="r:*")  # noqa: SIM115  (closed by close())
            self._members = {_normalise(m.name): m for m in self._tar.getmembers() if m.isfile()}
        except (tarfile.TarError, EOFError, OSError) as err:
            raise ConversionError(f"{self.path}: {_open_problem(err)}") from None

    def __enter__(self) -> NemoArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._tar.close()

    def names(self) -> list[str]:
        return sorted(self._members)

    def has(self, name: str) -> bool:
        return _normalise(name) in self._members

    def size(self, name: str) -> int:
        return self._member(name).size

    def config(self) -> dict[str, Any]:
        """The parsed `model_config.yaml` (safe YAML: plain data only)."""
        try:
            data = yaml.safe_load(self.read_bytes(CONFIG_NAME))
        except yaml.YAMLError as err:
            raise ConversionError(
                f"{self.path}: {CONFIG_NAME} is not valid YAML ({_reason(err)})"
            ) from None
        if not isinstance(data, dict):
            raise ConversionError(f"{self.path}: {CONFIG_NAME} is not a mapping")
        return data

    def read_bytes(self, name: str) -> bytes:
        with self.open(name) as handle:
            return handle.read()

    def open(self, name: str) -> IO[bytes]:
        member = self._member(name)
        try:
            handle = self._tar.extractfile(member)
        except (tarfile.TarError, EOFError, OSError) as err:
            raise ConversionError(
                f"{self.path}: cannot read {member.name} ({_reason(err)})"
            ) from None
        if handle is None:
            raise ConversionError(f"{self.path}: {member.name} is not a regular file")
        return _Checked(handle, self.path, member)

    def extract(
        self, name: str, destination: Path, progress: Callable[[int], None] | None = None
    ) -> Path:
        """Copy one member to `destination` in chunks; `progress` gets the bytes of each chunk."""
        with self.open(name) as source, destination.open("wb") as target:
            for chunk in _chunks(source):
                target.write(chunk)
                if progress is not None:
                    progress(len(chunk))
        return destination

    def _member(self, name: str) -> tarfile.TarInfo:
        member = self._members.get(_normalise(name))
        if member is None:
            raise ConversionError(f"{self.path}: the archive has no {_normalise(name)}")
        return member


class _Checked:
    """A member's file object that turns a truncated archive into a ConversionError."""

    def __init__(self, handle: IO[bytes], path: Path, member: tarfile.TarInfo) -> None:
        self._handle, self._path, self._member = handle, path, member
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._handle.read(size)
        except (tarfile.TarError, EOFError, OSError, ValueError) as err:
            raise ConversionError(
                f"{self._path}: truncated or corrupt archive ({_reason(err)})"
            ) from None
        self._read += len(data)
        if (size < 0 or not data) and self._read < self._member.size:
            raise ConversionError(
                f"{self._path}: truncated archive ({self._member.name} is cut short)"
            )
        return data

    def __enter__(self) -> _Checked:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


def _chunks(handle: _Checked) -> Iterator[bytes]:
    while chunk := handle.read(_CHUNK):
        yield chunk


def _open_problem(err: BaseException) -> str:
    """Why the archive cannot be opened, in the user's terms (tarfile's own message lists
    every compression it tried)."""
    if isinstance(err, EOFError) or "end of data" in str(err) or "unexpected end" in str(err):
        return "truncated .nemo archive (the file is cut short)"
    if isinstance(err, OSError) and not isinstance(err, tarfile.TarError):
        return f"cannot be read ({err.strerror or _reason(err)})"
    return "not a .nemo checkpoint (a .nemo file is a tar archive; this file is not one)"


def _normalise(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__
