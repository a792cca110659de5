"""Reading `torch.save` checkpoints without torch, and without ever running their code.

A checkpoint is a zip: `<name>/data.pkl` (a pickle of the state dict whose tensors refer to
storages by key) and `<name>/data/<key>` (each storage's raw bytes, stored uncompressed).
The pickle is read by an unpickler that resolves only the handful of globals torch uses to
rebuild tensors and containers, each to a function of this module; any other global, such
as `os.system`, stops the load with an error naming it. Storages are memory-mapped from the
file and tensors are numpy views into them (offsets and strides applied), so converting a
2.5 GB checkpoint does not read it into memory first. bfloat16 tensors come back with
`ml_dtypes.bfloat16`, which numpy can convert and which safetensors files can hold.
"""

from __future__ import annotations

import collections
import io
import mmap
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from .errors import ConversionError

_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "DoubleStorage": np.dtype("<f8"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    """Stands for torch's `<dtype>Storage` classes: they only tell the element type."""

    dtype: np.dtype


@dataclass
class _Storage:
    key: str
    dtype: np.dtype
    numel: int


def _rebuild_tensor(
    storage: _Storage, offset: int, size: tuple, stride: tuple, *_: Any
) -> _TensorRef:
    return _TensorRef(
        storage, int(offset), tuple(int(n) for n in size), tuple(int(s) for s in stride)
    )


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, storages: dict[str, _Storage]) -> None:
        super().__init__(io.BytesIO(data))
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise ConversionError(
                f"refusing to load the checkpoint: pickle global '{module}.{name}' is not allowed"
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise ConversionError(
                f"refusing to load the checkpoint: unexpected persistent id {pid!r:.80}"
            )
        storage_type, key, _location, numel = pid[1], str(pid[2]), pid[3], int(pid[4])
        if not isinstance(storage_type, _StorageType):
            raise ConversionError(
                f"refusing to load the checkpoint: storage type {storage_type!r:.80}"
            )
        storage = self._storages.get(key)
        if storage is None:
            storage = self._storages[key] = _Storage(key, storage_type.dtype, numel)
        return storage


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Tensors of a `torch.save` zip checkpoint, by name, as read-only numpy arrays.

    Arrays are views of the memory-mapped file (valid while any of them is alive). Raises
    ConversionError with one line for a non-checkpoint, a truncated or corrupt file, a
    pickle that would run code, and the pre-1.6 (non-zip) torch format.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise ConversionError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, OSError) as err:
        legacy = _looks_like_legacy_pickle(path)
        detail = (
            "the pre-1.6 torch format is not supported"
            if legacy
            else f"not a torch zip checkpoint ({err})"
        )
        raise ConversionError(f"{path}: {detail}") from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pickles:
            raise ConversionError(f"{path}: checkpoint has no data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = (
            archive.read(prefix + "byteorder").decode().strip()
            if prefix + "byteorder" in names
            else "little"
        )
        if byteorder != "little":
            raise ConversionError(f"{path}: big-endian checkpoints are not supported")
        storages: dict[str, _Storage] = {}
        try:
            state = _RestrictedUnpickler(archive.read(pickles[0]), storages).load()
        except ConversionError:
            raise
        except Exception as err:  # any malformed pickle: one line, no traceback
            raise ConversionError(
                f"{path}: corrupt checkpoint pickle ({type(err).__name__}: {err})"
            ) from None
        entries = {key: _entry_location(archive, path, prefix, key) for key in storages}
    with path.open("rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    if not isinstance(state, dict):
        raise ConversionError(
            f"{path}: the checkpoint holds a {type(state).__name__}, not a state dict"
        )
    tensors = {}
    for name, value in state.items():
        if isinstance(value, _TensorRef):
            tensors[str(name)] = _view(mapped, entries[value.storage.key], value, path, str(name))
    return tensors


def _entry_location(archive: zipfile.ZipFile, path: Path, prefix: str, key: str) -> tuple[int, int]:
    """(byte offset in the file, byte size) of a storage entry, which must be stored raw."""
    try:
        info = archive.getinfo(f"{prefix}data/{key}")
    except KeyError:
        raise ConversionError(f"{path}: storage {key} is missing from the checkpoint") from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise ConversionError(
            f"{path}: storage {key} is compressed; torch writes them uncompressed"
        )
    with path.open("rb") as handle:
        handle.seek(info.header_offset)
        header = handle.read(30)
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise ConversionError(f"{path}: corrupt zip entry for storage {key}")
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_length + extra_length, info.file_size


def _view(
    mapped: mmap.mmap, location: tuple[int, int], ref: _TensorRef, path: Path, name: str
) -> np.ndarray:
    start, size = location
    dtype = ref.storage.dtype
    count = size // dtype.itemsize
    if start + size > len(mapped):
        raise ConversionError(
            f"{path}: truncated checkpoint (storage of {name} ends past the file)"
        )
    extent = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True)) + 1
    if any(n == 0 for n in ref.shape):
        return np.zeros(ref.shape, dtype=dtype)
    if extent > count:
        raise ConversionError(f"{path}: storage of {name} is shorter than the tensor needs")
    base = np.frombuffer(mapped, dtype=dtype, count=count, offset=start)
    strides = tuple(s * dtype.itemsize for s in ref.stride)
    view = np.lib.stride_tricks.as_strided(
        base[ref.offset :], shape=ref.shape, strides=strides, writeable=False
    )
    return view


def _looks_like_legacy_pickle(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(2)
    except OSError:
        return False
    return len(head) == 2 and head[0] == 0x80 and head[1] <= 5  # a raw pickle stream
