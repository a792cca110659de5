"""What a torch checkpoint's `data.pkl` may build, and the unpickler that builds nothing else.

Safety: the unpickler resolves only the globals torch writes for dense tensors and their
containers (`_ALLOWED_GLOBALS`), each to a stand-in defined here that records what it is
given; anything else (`os.system`, `builtins.eval`, ...) stops the load with an error
naming it. Nothing from the checkpoint is ever called, and no torch is needed. The stand-ins
describe tensors and storages only; `torch_zip` reads the bytes they name and
`torch_checkpoint` turns them into numpy arrays.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from typing import Any, NamedTuple

import ml_dtypes
import numpy as np

from .errors import ConversionError, one_line

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
    """A tensor's size or stride: a tuple of `_count`s."""
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


def unpickle(data: bytes, label: str) -> tuple[Any, dict[str, _StorageRef]]:
    """The unpickled state and the storages it names; any failure is one ConversionError."""
    unpickler = _RestrictedUnpickler(data, label)
    try:
        return unpickler.load(), unpickler.storages
    except ConversionError:
        raise
    except Exception as err:  # any malformed pickle, whatever fails in it: one line
        raise ConversionError(f"{label}: corrupt data.pkl ({one_line(err)})") from None
