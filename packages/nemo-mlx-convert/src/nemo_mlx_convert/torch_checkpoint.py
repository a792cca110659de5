"""Reading `torch.save` checkpoints with numpy alone, and without ever running their code.

`load_state_dict` puts the parts together: `torch_zip` finds the zip's records (the pickle,
the byte order, each storage's bytes, memory-mapped where it can be), `torch_pickle`
unpickles `data.pkl` into stand-ins that describe tensors without running anything from the
file, and this module turns each described tensor into a read-only numpy view of its
storage (storage offsets, strides and shared storages kept as they are).

bfloat16: numpy has no bfloat16 of its own, so those tensors come back with the dtype
`ml_dtypes.bfloat16` (already a dependency of this package): the file's bits unchanged
(`.view(np.uint16)` shows them), a dtype named "bfloat16" that safetensors writes as BF16,
and `.astype(np.float32)` upcasts exactly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import ConversionError
from .torch_pickle import _StorageRef, _StorageType, _TensorRef, unpickle
from .torch_zip import (
    byteorder,
    byteswapped,
    map_file,
    open_zip,
    read_pickle,
    read_storages,
    record_prefix,
)

Source = str | os.PathLike[str] | IO[bytes]


def load_state_dict(source: Source, *, mmap: bool = True) -> dict[str, Any]:
    """The state dict in a `torch.save` zip checkpoint, its tensors as numpy arrays.

    `source` is a path or a binary file object (seekable; a tar member will do). Tensors
    become read-only numpy arrays with their own shape and strides (not necessarily
    C-contiguous), memory-mapped from the file when `mmap` is true and the source is a file
    on disk; they stay valid after the file is closed. Entries that are not tensors (an
    int, a string, None, containers of these) are returned as the plain values the pickle
    holds, tensors inside dicts, lists and tuples included; deciding what to do with them
    is the caller's business. torch's `_metadata` attribute is dropped. A big-endian
    checkpoint is byte-swapped to native order on load (a copy).

    Raises ConversionError, with one line naming the source, for anything else: not a
    file, not a zip (an empty file, a tar, torch's pre-1.6 format), a truncated or corrupt
    zip or pickle, a missing or short storage record, and any pickle global outside the
    allow-list (nothing of the pickle has run by then).
    """
    if not isinstance(source, (str, os.PathLike)):
        return _load(source, _stream_label(source), mmap)
    path = Path(source)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise ConversionError(f"{path}: no such file") from None
    except OSError as err:
        raise ConversionError(f"{path}: cannot open ({err.strerror or err})") from None
    with handle:
        return _load(handle, str(path), mmap)


def _load(handle: IO[bytes], label: str, mmap: bool) -> dict[str, Any]:
    """The records read and the pickle unpickled while the zip is open; then the arrays."""
    archive = open_zip(handle, label)
    with archive:
        prefix = record_prefix(archive, label)
        swap = byteorder(archive, prefix, label) != sys.byteorder
        state, refs = unpickle(read_pickle(archive, prefix, label), label)
        mapped = map_file(handle) if mmap else None
        storages = read_storages(archive, prefix, refs, mapped, label)
    if swap:
        storages = {key: byteswapped(array) for key, array in storages.items()}
    return _state_dict(state, storages, label)


def _stream_label(handle: IO[bytes]) -> str:
    """How errors name a file object: its name where it has one."""
    name = getattr(handle, "name", None)
    return str(name) if name is not None else "<checkpoint stream>"


def _state_dict(state: object, storages: Mapping[str, np.ndarray], label: str) -> dict[str, Any]:
    """The unpickled state dict as a plain dict, each tensor replaced by its array."""
    if not isinstance(state, dict):
        raise ConversionError(
            f"{label}: the checkpoint holds a {type(state).__name__}, not a state dict"
        )
    for name in state:
        if not isinstance(name, str):
            raise ConversionError(f"{label}: state dict key {name!r:.60} is not a string")
    return {name: _resolve(value, storages, name, label) for name, value in state.items()}


def _resolve(value: object, storages: Mapping[str, np.ndarray], name: str, label: str) -> Any:
    """`value` with its tensors, also inside dicts, lists and tuples, replaced by arrays."""
    if isinstance(value, _TensorRef):
        return _tensor_view(value, storages[value.storage.key], name, label)
    if isinstance(value, (_StorageRef, _StorageType)):
        raise ConversionError(f"{label}: {name!r} holds a bare torch storage, not a tensor")
    if isinstance(value, dict):
        return {key: _resolve(item, storages, name, label) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, storages, name, label) for item in value]
    if isinstance(value, tuple):
        return tuple(_resolve(item, storages, name, label) for item in value)
    return value


def _tensor_view(ref: _TensorRef, storage: np.ndarray, name: str, label: str) -> np.ndarray:
    """The tensor as a read-only strided view of its storage: no copy, however laid out."""
    if 0 in ref.shape:
        empty = np.empty(ref.shape, dtype=storage.dtype)
        empty.flags.writeable = False
        return empty
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True))
    if last >= storage.size:
        raise ConversionError(
            f"{label}: tensor {name!r} reaches element {last} of a storage of {storage.size}"
        )
    strides = tuple(s * storage.itemsize for s in ref.stride)
    return np.lib.stride_tricks.as_strided(
        storage[ref.offset :], shape=ref.shape, strides=strides, writeable=False
    )
