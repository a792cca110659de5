"""The records of a `torch.save` zip: where they sit, their byte order, the pickle, the storages.

The format (torch >= 1.6) is a zip whose records sit under one directory `<name>/`:
`data.pkl`, a pickle of the state dict in which each tensor names its storage through a
persistent id; `data/<key>`, each storage's raw bytes (stored uncompressed, 64-byte
aligned); `byteorder`, "little" or "big" (absent in old files: little); and `version`.

Memory: where the checkpoint is a file on disk and a storage is stored uncompressed (what
torch writes), the storage is a read-only view into a memory map of the file, so a 2.5 GB
checkpoint is paged in as its tensors are used, never read up front or held twice. Other
sources (a tar member, `io.BytesIO`, a compressed record, `mmap=False`) are read storage by
storage, in file order, each into one buffer shared by all of its tensors.
"""

from __future__ import annotations

import io
import mmap as _mmap
import struct
import zipfile
from collections.abc import Mapping
from typing import IO

import numpy as np

from .errors import ConversionError, one_line
from .torch_pickle import _StorageRef

# The first bytes of a pre-1.6 checkpoint: a pickled int, torch's legacy magic number.
_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # zip local file header: signature ... name, extra
_MAX_PICKLE_BYTES = 1 << 30  # a state dict's pickle is kilobytes; refuse a zip bomb
_READ_CHUNK = 8 << 20


def open_zip(handle: IO[bytes], label: str) -> zipfile.ZipFile:
    """The checkpoint as a zip; if it is not one, an error that says what it is instead."""
    try:
        return zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        head = _head(handle)
        reason = _non_zip_reason(head) if head is not None else f"unreadable ({one_line(err)})"
        raise ConversionError(f"{label}: {reason}") from None


def _head(handle: IO[bytes]) -> bytes | None:
    """The first bytes of the file, to say what it is when it is not a zip."""
    try:
        handle.seek(0)
        return handle.read(512)
    except (OSError, ValueError):
        return None


def _non_zip_reason(head: bytes) -> str:
    """What a file that is not a zip is, judged by its first bytes."""
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


def record_prefix(archive: zipfile.ZipFile, label: str) -> str:
    """The `<name>/` directory that holds the checkpoint's records."""
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise ConversionError(
            f"{label}: not a torch checkpoint "
            f"({len(pickles)} <name>/data.pkl records in the zip, expected 1)"
        )
    return pickles[0].removesuffix("data.pkl")


def byteorder(archive: zipfile.ZipFile, prefix: str, label: str) -> str:
    """The byte order the storages were written in: "little" or "big"."""
    try:
        record = archive.read(prefix + "byteorder")
    except KeyError:
        return "little"  # written since torch 1.10; older files were little-endian
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise ConversionError(f"{label}: corrupt zip ({one_line(err)})") from None
    order = record.decode("ascii", "replace").strip()
    if order not in ("little", "big"):
        raise ConversionError(f"{label}: unknown byte order {order!r:.20} in the checkpoint")
    return order


def read_pickle(archive: zipfile.ZipFile, prefix: str, label: str) -> bytes:
    """The bytes of `data.pkl`, refused if implausibly large (they are read whole)."""
    info = archive.getinfo(prefix + "data.pkl")
    if info.file_size > _MAX_PICKLE_BYTES:
        raise ConversionError(f"{label}: data.pkl of {info.file_size} bytes is implausibly large")
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        raise ConversionError(f"{label}: truncated or corrupt data.pkl ({one_line(err)})") from None


def map_file(handle: IO[bytes]) -> _mmap.mmap | None:
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


def read_storages(
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
    """The zip record of a storage, checked to hold at least the bytes its tensors need."""
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
            f"{label}: truncated or corrupt checkpoint ({one_line(err)})"
        ) from None
    buffer.flags.writeable = False
    return buffer


def byteswapped(array: np.ndarray) -> np.ndarray:
    """A big-endian storage in native order: swapped as unsigned words of the item size."""
    if array.dtype.itemsize == 1:
        return array
    swapped = array.view(f"u{array.dtype.itemsize}").byteswap().view(array.dtype)
    swapped.flags.writeable = False
    return swapped
