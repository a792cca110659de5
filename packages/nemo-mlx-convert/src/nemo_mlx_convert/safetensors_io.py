"""Writing safetensors one tensor at a time, bfloat16 included, with numpy only.

The header (names, dtypes, shapes, offsets) is known before any data is produced, so each
tensor is produced, written and dropped in turn: converting a 2.5 GB checkpoint never holds
a second copy of it in memory. bfloat16 arrays use `ml_dtypes.bfloat16`; MLX reads the
resulting "BF16" tensors natively.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DTYPE_CODES = {
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "float64": "F64",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}
_ITEM_SIZE = {
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F64": 8,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}


@dataclass(frozen=True)
class PlannedTensor:
    """A tensor to write: its dtype name (`DTYPE_CODES` keys), shape, and how to produce it.

    `produce()` returns a numpy array of that shape and dtype.
    """

    dtype: str
    shape: tuple[int, ...]
    produce: Callable[[], np.ndarray]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * _ITEM_SIZE[DTYPE_CODES[self.dtype]]


def write_safetensors(
    path: Path,
    tensors: Mapping[str, PlannedTensor],
    metadata: Mapping[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write `tensors` (in name order) to `path`; returns the bytes of tensor data written."""
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset = 0
    names = sorted(tensors)
    for name in names:
        planned = tensors[name]
        header[name] = {
            "dtype": DTYPE_CODES[planned.dtype],
            "shape": list(planned.shape),
            "data_offsets": [offset, offset + planned.nbytes],
        }
        offset += planned.nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        for name in names:
            planned = tensors[name]
            array = np.ascontiguousarray(planned.produce())
            if tuple(array.shape) != planned.shape or array.nbytes != planned.nbytes:
                raise ValueError(
                    f"{name}: produced {array.shape} {array.dtype}, planned {planned.shape} {planned.dtype}"
                )
            handle.write(array.reshape(-1).view(np.uint8).data)
            if progress is not None:
                progress(array.nbytes)
    return offset


def read_safetensors_header(path: Path) -> dict[str, dict]:
    """The header of a safetensors file (tensor name -> dtype, shape, data_offsets)."""
    with path.open("rb") as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        return json.loads(handle.read(size))
