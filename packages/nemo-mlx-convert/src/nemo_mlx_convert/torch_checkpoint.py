"""Reading `torch.save` checkpoints with numpy alone, and without ever running their code.

The format (torch >= 1.6) is a zip whose records sit under one directory `<name>/`:
`data.pkl`, a pickle of the state dict in which each tensor names its storage through a
persistent id; `data/<key>`, each storage's raw bytes (stored uncompressed, 64-byte
aligned); `byteorder`, "little" or "big" (absent in old files: little); and `version`.

Safety: `data.pkl` is read by an unpickler that resolves only the globals torch writes for
dense tensors and their containers, each to a stand-in defined here that records what it
is given; anything else (`os.system`, `builtins.eval`, ...) stops the load with an error
naming it. Nothing from the checkpoint is ever called, and no torch is needed.

Memory: where the checkpoint is a file on disk and a storage is stored uncompressed (what
torch writes), the storage is memory-mapped and its tensors are read-only numpy views into
the map (storage offsets, strides and shared storages kept as they are), so a 2.5 GB
checkpoint is paged in as its tensors are used, never read up front or held twice. Other
sources (a tar member, `io.BytesIO`, a compressed record, `mmap=False`) are read storage by
storage, in file order, each into one buffer shared by all of its tensors.

bfloat16: numpy has no bfloat16 of its own, so those tensors come back with the dtype
`ml_dtypes.bfloat16` (already a dependency of this package): the file's bits unchanged
(`.view(np.uint16)` shows them), a dtype named "bfloat16" that safetensors writes as BF16,
and `.astype(np.float32)` upcasts exactly.
"""

from __future__ import annotations

import io
import mmap as _mmap
import os
import pickle
import struct
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, NamedTuple

import ml_dtypes
import numpy as np

from .errors import ConversionError

Source = str | os.PathLike[str] | IO[bytes]

# torch's `<Type>Storage` classes, which torch.save still names for these dtypes.
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype(np.float32),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "DoubleStorage": np.dtype(np.float64),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
}
# The first bytes of a pre-1.6 checkpoint: a pickled int, torch's legacy magic number.
_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # zip local file header: signature ... name, extra
_MAX_PICKLE_BYTES = 1 << 30  # a state dict's pickle is kilobytes; refuse a zip bomb
_READ_CHUNK = 8 << 20


# Stand-ins for what the pickle may build. NamedTuples: immutable and without `__dict__`,
# so a pickle's BUILD opcode cannot alter one after its rebuild function checked it.


class _StorageType(NamedTuple):
    """Stands for `torch.<Type>Storage`: in a checkpoint it only tells the element type."""

    name: str
    dtype: np.dtype


class _StorageRef(NamedTuple):
    """A storage the pickle refers to: `numel` elements in record `data/<key>`."""

    key: str
    dtype: np.dtype
    numel: int


class _TensorRef(NamedTuple):
    """A dense tensor as torch describes it: a strided view into a storage (in elements)."""

    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


class _OrderedDict(dict):
    """Stands for `collections.OrderedDict` (the state dict itself, empty hook dicts).

    `nn.Module.state_dict()` attaches `_metadata` (per-module versions), which the pickle
    restores with BUILD: it lands here and is dropped, as conversion has no use for it.
    """

    def __setstate__(self, state: object) -> None:
        pass


def _rebuild_tensor_v2(
    storage: object,
    storage_offset: object,
    size: object,
    stride: object,
    requires_grad: object = False,
    backward_hooks: object = None,
    metadata: object = None,
) -> _TensorRef:
    """Stands for `torch._utils._rebuild_tensor_v2`; autograd state and hooks are ignored."""
    if not isinstance(storage, _StorageRef):
        raise ValueError(f"a tensor is built on {type(storage).__name__}, not on a storage")
    offset, shape, strides = _count(storage_offset), _counts(size), _counts(stride)
    if len(shape) != len(strides):
        raise ValueError(f"invalid tensor layout: offset {offset}, size {shape}, stride {strides}")
    return _TensorRef(storage, offset, shape, strides)


def _rebuild_parameter(
    data: object, requires_grad: object = False, backward_hooks: object = None, *state: object
) -> _TensorRef:
    """Stands for `torch._utils._rebuild_parameter[_with_state]`: a parameter is its data."""
    if not isinstance(data, _TensorRef):
        raise ValueError(f"a parameter wraps {type(data).__name__}, not a tensor")
    return data


def _count(value: object) -> int:
    """Offsets, sizes, strides and lengths of dense tensors: integers >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected an integer >= 0, got {value!r:.40}")
    return value


def _counts(values: object) -> tuple[int, ...]:
    if not isinstance(values, tuple):
        raise ValueError(f"expected a tuple of integers, got {type(values).__name__}")
    return tuple(_count(v) for v in values)


# (module, name) in the pickle -> what it resolves to. Nothing else resolves.
_ALLOWED_GLOBALS: Mapping[tuple[str, str], object] = {
    ("collections", "OrderedDict"): _OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only `_ALLOWED_GLOBALS`, and records the storages the pickle names."""

    def __init__(self, data: bytes, label: str) -> None:
        super().__init__(io.BytesIO(data))
        self.label = label
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise ConversionError(
                f"{self.label}: refusing to load checkpoint: "
                f"pickle global '{module}.{name}' is not allowed"
            ) from None

    def persistent_load(self, pid: object) -> _StorageRef:
        """torch's storage reference: ("storage", <Type>Storage, key, location, numel)."""
        match pid:
            case ("storage", _StorageType() as kind, str() as key, str(), numel):
                ref = _StorageRef(key, kind.dtype, _count(numel))
            case _:
                raise ValueError(f"unexpected persistent id {pid!r:.80}")
        known = self.storages.setdefault(key, ref)
        if known != ref:
            raise ValueError(f"storage {key} is named with two different types or sizes")
        return known


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
    archive = _open_zip(handle, label)
    with archive:
        prefix = _record_prefix(archive, label)
        swap = _byteorder(archive, prefix, label) != sys.byteorder
        state, refs = _unpickle(_read_pickle(archive, prefix, label), label)
        mapped = _map_file(handle) if mmap else None
        storages = _read_storages(archive, prefix, refs, mapped, label)
    if swap:
        storages = {key: _byteswapped(array) for key, array in storages.items()}
    return _state_dict(state, storages, label)


def _stream_label(handle: IO[bytes]) -> str:
    name = getattr(handle, "name", None)
    return str(name) if name is not None else "<checkpoint stream>"


def _open_zip(handle: IO[bytes], label: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        head = _head(handle)
        reason = _non_zip_reason(head) if head is not None else f"unreadable ({_reason(err)})"
        raise ConversionError(f"{label}: {reason}") from None


def _head(handle: IO[bytes]) -> bytes | None:
    """The first bytes of the file, to say what it is when it is not a zip."""
    try:
        handle.seek(0)
        return handle.read(512)
    except (OSError, ValueError):
        return None


def _non_zip_reason(head: bytes) -> str:
    if not head:
        return "empty file, not a torch checkpoint"
    if head[:1] == b"\x80" and _LEGACY_MAGIC in head[:32]:
        return (
            "legacy (pre-1.6, non-zip) torch checkpoint format, which is not supported: "
            "re-save it with a recent torch"
        )
    if head.startswith(b"PK"):
        return "truncated or corrupt zip file, not a readable torch checkpoint"
    if head[257:262] == b"ustar":
        return "a tar archive (such as a .nemo file), not a torch checkpoint"
    return "not a torch checkpoint (not a zip file)"


def _record_prefix(archive: zipfile.ZipFile, label: str) -> str:
    """The `<name>/` directory that holds the checkpoint's records."""
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise ConversionError(
            f"{label}: not a torch checkpoint "
            f"({len(pickles)} <name>/data.pkl records in the zip, expected 1)"
        )
    return pickles[0].removesuffix("data.pkl")


def _byteorder(archive: zipfile.ZipFile, prefix: str, label: str) -> str:
    try:
        record = archive.read(prefix + "byteorder")
    except KeyError:
        return "little"  # written since torch 1.10; older files were little-endian
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise ConversionError(f"{label}: corrupt zip ({_reason(err)})") from None
    order = record.decode("ascii", "replace").strip()
    if order not in ("little", "big"):
        raise ConversionError(f"{label}: unknown byte order {order!r:.20} in the checkpoint")
    return order


def _read_pickle(archive: zipfile.ZipFile, prefix: str, label: str) -> bytes:
    info = archive.getinfo(prefix + "data.pkl")
    if info.file_size > _MAX_PICKLE_BYTES:
        raise ConversionError(f"{label}: data.pkl of {info.file_size} bytes is implausibly large")
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        raise ConversionError(f"{label}: truncated or corrupt data.pkl ({_reason(err)})") from None


def _unpickle(data: bytes, label: str) -> tuple[Any, dict[str, _StorageRef]]:
    unpickler = _RestrictedUnpickler(data, label)
    try:
        return unpickler.load(), unpickler.storages
    except ConversionError:
        raise
    except Exception as err:  # any malformed pickle, whatever fails in it: one line
        raise ConversionError(f"{label}: corrupt data.pkl ({_reason(err)})") from None


def _map_file(handle: IO[bytes]) -> _mmap.mmap | None:
    """The whole file, mapped read-only, if `handle` is a plain file on disk.

    Only a real file qualifies: a tar member's file object also has a `fileno()`, but it
    is the tar's, where the zip's offsets mean nothing.
    """
    raw = getattr(handle, "raw", handle)
    if not isinstance(raw, io.FileIO):
        return None
    try:
        return _mmap.mmap(raw.fileno(), 0, access=_mmap.ACCESS_READ)
    except (OSError, ValueError):  # a file system without mmap: read instead
        return None


def _read_storages(
    archive: zipfile.ZipFile,
    prefix: str,
    refs: Mapping[str, _StorageRef],
    mapped: _mmap.mmap | None,
    label: str,
) -> dict[str, np.ndarray]:
    """Each named storage as a read-only 1-d array of its element type."""
    records = {key: _storage_record(archive, prefix, ref, label) for key, ref in refs.items()}
    storages = {}
    for key in sorted(refs, key=lambda k: records[k].header_offset):  # sequential reads
        ref, record = refs[key], records[key]
        size = ref.numel * ref.dtype.itemsize
        if mapped is not None and record.compress_type == zipfile.ZIP_STORED:
            data = _mapped_bytes(mapped, record, size, label)
        else:
            data = _read_bytes(archive, record, size, label)
        storages[key] = data.view(ref.dtype)
    return storages


def _storage_record(
    archive: zipfile.ZipFile, prefix: str, ref: _StorageRef, label: str
) -> zipfile.ZipInfo:
    name = f"{prefix}data/{ref.key}"
    try:
        record = archive.getinfo(name)
    except KeyError:
        raise ConversionError(f"{label}: storage record {name} is missing") from None
    needed = ref.numel * ref.dtype.itemsize
    if record.file_size < needed:
        raise ConversionError(
            f"{label}: storage record {name} holds {record.file_size} bytes but its tensors "
            f"need {needed} (truncated or corrupt checkpoint)"
        )
    return record


def _mapped_bytes(mapped: _mmap.mmap, record: zipfile.ZipInfo, size: int, label: str) -> np.ndarray:
    """The first `size` bytes of an uncompressed record, as a view of the map (no copy)."""
    start = record.header_offset
    header = mapped[start : start + _LOCAL_HEADER.size]
    if len(header) < _LOCAL_HEADER.size:
        raise ConversionError(f"{label}: truncated checkpoint ({record.filename} is cut off)")
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    if signature != b"PK\x03\x04":
        raise ConversionError(f"{label}: corrupt zip (bad local header for {record.filename})")
    start += _LOCAL_HEADER.size + name_length + extra_length
    if start + size > len(mapped):
        raise ConversionError(f"{label}: truncated checkpoint ({record.filename} is cut off)")
    return np.frombuffer(mapped, dtype=np.uint8, count=size, offset=start)


def _read_bytes(
    archive: zipfile.ZipFile, record: zipfile.ZipInfo, size: int, label: str
) -> np.ndarray:
    """The first `size` bytes of a record, read in chunks into one new buffer."""
    try:
        buffer = np.empty(size, dtype=np.uint8)
    except MemoryError:
        raise ConversionError(
            f"{label}: storage record {record.filename} of {size} bytes does not fit in memory"
        ) from None
    filled = 0
    try:
        with archive.open(record) as member:
            while filled < size:
                chunk = member.read(min(_READ_CHUNK, size - filled))
                if not chunk:
                    raise EOFError(f"{record.filename} ends after {filled} of {size} bytes")
                buffer[filled : filled + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                filled += len(chunk)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        raise ConversionError(
            f"{label}: truncated or corrupt checkpoint ({_reason(err)})"
        ) from None
    buffer.flags.writeable = False
    return buffer


def _byteswapped(array: np.ndarray) -> np.ndarray:
    """A big-endian storage in native order: swapped as unsigned words of the item size."""
    if array.dtype.itemsize == 1:
        return array
    swapped = array.view(f"u{array.dtype.itemsize}").byteswap().view(array.dtype)
    swapped.flags.writeable = False
    return swapped


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


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
