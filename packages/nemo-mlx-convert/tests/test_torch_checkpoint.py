"""The torch-free checkpoint reader: torch's tensors exactly, memory-mapped, nothing executed.

Fixtures under fixtures/ are real `torch.save` output (make_checkpoint_fixtures.py). The
other checkpoints here are written without torch, opcode by opcode, in the layout torch
writes; `test_torch_free_writer_matches_torch` checks that layout against torch.load. The
zip64 ones are torch's own checkpoints rewritten record by record by zipfile, one of them
sparse with 4 GiB of zeros before its storages, and are checked against torch.load too.
"""

from __future__ import annotations

import copyreg
import io
import json
import mmap
import os
import pickle
import tarfile
import tracemalloc
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from nemo_mlx_convert import ConversionError, convert_nemo, torch_pickle
from nemo_mlx_convert.nemo_archive import CONFIG_NAME, WEIGHTS_NAME, NemoArchive
from nemo_mlx_convert.torch_checkpoint import load_state_dict

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CHECKPOINT = FIXTURES / "state_dict.ckpt"
NEEDS_TORCH = "needs torch (the `reference` dependency group)"

# ---------------------------------------------------------------- a torch-free writer

_STORAGE_TYPES = {
    "float32": "FloatStorage",
    "float16": "HalfStorage",
    "bfloat16": "BFloat16Storage",
    "float64": "DoubleStorage",
    "int64": "LongStorage",
    "int32": "IntStorage",
    "int16": "ShortStorage",
    "int8": "CharStorage",
    "uint8": "ByteStorage",
    "bool": "BoolStorage",
}


def _global(module: str, name: str) -> bytes:
    """The GLOBAL opcode: push `module.name`, as the unpickler's find_class resolves it."""
    return b"c" + f"{module}\n{name}\n".encode()


def _value(value: object) -> bytes:
    """Opcodes that push a plain value (a pickle without its PROTO and STOP)."""
    return pickle.dumps(value, protocol=2)[2:-1]


def _call(module: str, name: str, *args: object) -> bytes:
    """Opcodes that call `module.name(*args)` when unpickled: what an attacker writes."""
    return _global(module, name) + b"(" + b"".join(_value(a) for a in args) + b"tR"


def _tensor(
    key: str, dtype: str, numel: int, offset: int, shape: tuple, stride: tuple, hooks: bytes = b""
) -> bytes:
    """A tensor as torch pickles it: `_rebuild_tensor_v2(storage, offset, size, stride, ...)`."""
    pid = _storage(key, dtype, numel)
    hooks = hooks or _global("collections", "OrderedDict") + b")R"
    layout = _value(offset) + _value(shape) + _value(stride) + _value(False)
    return _global("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + layout + hooks + b"tR"


def _storage(key: str, dtype: str, numel: int) -> bytes:
    """A storage as torch pickles it: persistent id ("storage", <Type>Storage, key, device, numel)."""
    storage_type = _global("torch", _STORAGE_TYPES[dtype])
    return (
        b"("
        + _value("storage")
        + storage_type
        + _value(key)
        + _value("cpu")
        + _value(numel)
        + b"tQ"
    )


def _state_pickle(entries: dict[str, bytes]) -> bytes:
    """An OrderedDict of `name -> opcodes of its value`, as a whole pickle."""
    body = b"".join(_value(name) + opcodes for name, opcodes in entries.items())
    return b"\x80\x02" + _global("collections", "OrderedDict") + b")R(" + body + b"u."


def _write_zip(
    path: Path,
    data_pkl: bytes,
    storages: dict[str, bytes] | None = None,
    byteorder: bytes | None = b"little",
) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        if byteorder is not None:
            archive.writestr("archive/byteorder", byteorder)
        for key, data in (storages or {}).items():
            archive.writestr(f"archive/data/{key}", data)
        archive.writestr("archive/version", "3\n")
    return path


def _save(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """`torch.save` of C-contiguous tensors, each with a storage of its own."""
    entries, storages = {}, {}
    for key, (name, array) in enumerate(arrays.items()):
        strides = tuple(s // array.itemsize for s in array.strides)
        entries[name] = _tensor(str(key), array.dtype.name, array.size, 0, array.shape, strides)
        storages[str(key)] = array.tobytes()
    return _write_zip(path, _state_pickle(entries), storages)


def _sample_arrays() -> dict[str, np.ndarray]:
    """One small array of every dtype the reader supports, and a 0-d one."""
    floats = np.random.default_rng(0).normal(size=(3, 2))
    ints = np.arange(-3, 3).reshape(2, 3)
    return {
        "float32": floats.astype(np.float32),
        "float16": floats.astype(np.float16),
        "bfloat16": floats.astype(ml_dtypes.bfloat16),
        "float64": floats,
        "int64": ints,
        "int32": ints.astype(np.int32),
        "int16": ints.astype(np.int16),
        "int8": ints.astype(np.int8),
        "uint8": np.arange(250, 256, dtype=np.uint8),
        "bool": ints > 0,
        "scalar": np.array(1.5, dtype=np.float32),
    }


def _owner(array: np.ndarray) -> object:
    """What finally holds an array's bytes: follow `.base` (and a memoryview's `.obj`)."""
    while getattr(array, "base", None) is not None:
        array = array.base
    return array.obj if isinstance(array, memoryview) else array


def _assert_equal_to_torch(tensors: dict, expected: np.lib.npyio.NpzFile) -> None:
    for name in expected["__order__"]:
        got = tensors[name]
        if got.dtype == ml_dtypes.bfloat16:
            got = got.view(np.int16)  # the fixture holds torch's bfloat16 bits
        assert got.shape == expected[name].shape, name
        assert got.dtype == expected[name].dtype, name
        np.testing.assert_array_equal(got, expected[name], err_msg=name)


# ---------------------------------------------------------------- torch's own checkpoints


@pytest.fixture(scope="module")
def expected():
    with np.load(FIXTURES / "state_dict_expected.npz") as data:
        yield data


def test_every_dtype_and_layout_equals_torch(expected):
    tensors = load_state_dict(CHECKPOINT)
    assert list(tensors) == list(expected["__order__"])  # state-dict order kept
    _assert_equal_to_torch(tensors, expected)
    assert tensors["bf16"].dtype.name == "bfloat16"
    assert tensors["scalar"].shape == ()
    assert tensors["scalar"] == 2.5
    assert tensors["empty"].shape == (0, 3)


@pytest.mark.parametrize("use_mmap", [True, False])
def test_views_share_their_storage_without_copies(use_mmap):
    tensors = load_state_dict(CHECKPOINT, mmap=use_mmap)
    assert tensors["transposed"].strides == (4, 32)  # torch's strides, in bytes
    for view in ("sliced", "every_other"):
        assert np.shares_memory(tensors["transposed"], tensors[view])
    assert np.shares_memory(tensors["linear_weight"], tensors["tied_weight"])
    assert tensors["expanded"].strides[1] == 0
    assert tensors["bf16_transposed"].base is not None


def test_state_dict_is_a_plain_dict_without_torch_metadata():
    tensors = load_state_dict(CHECKPOINT)
    assert type(tensors) is dict
    assert not hasattr(tensors, "_metadata")


def test_big_endian_checkpoint_comes_back_in_native_order(expected):
    tensors = load_state_dict(FIXTURES / "big_endian.ckpt")
    _assert_equal_to_torch(tensors, expected)
    assert all(array.dtype.isnative for array in tensors.values())


def test_plain_values_are_kept_and_nested_tensors_read():
    state = load_state_dict(FIXTURES / "mixed_values.ckpt")
    np.testing.assert_array_equal(state["weight"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert (state["step"], state["ratio"], state["name"], state["nothing"]) == (
        7,
        0.5,
        "encoder",
        None,
    )
    counts, (one, ones) = state["nested"]["counts"], state["nested"]["list"]
    np.testing.assert_array_equal(counts, np.array([1, 2], dtype=np.int32))
    assert one == 1
    np.testing.assert_array_equal(ones, np.ones(2, dtype=np.float32))


def test_every_dtype_through_the_torch_free_writer(tmp_path):
    arrays = _sample_arrays()
    tensors = load_state_dict(_save(tmp_path / "ours.ckpt", arrays))
    for name, array in arrays.items():
        assert tensors[name].dtype == array.dtype, name
        np.testing.assert_array_equal(tensors[name], array, err_msg=name)


# ---------------------------------------------------------------- memory


def test_storages_are_memory_mapped_read_only_views():
    weight = load_state_dict(CHECKPOINT)["linear_weight"]
    assert isinstance(_owner(weight), mmap.mmap)
    assert not weight.flags.owndata
    with pytest.raises(ValueError, match="read-only"):
        weight[0, 0] = 1.0


def test_without_mmap_each_storage_is_read_into_its_own_buffer():
    tensors = load_state_dict(CHECKPOINT, mmap=False)
    weight = tensors["linear_weight"]
    assert not isinstance(_owner(weight), mmap.mmap)
    assert _owner(weight).flags.owndata
    assert not weight.flags.writeable


def test_a_large_checkpoint_is_never_held_twice(tmp_path):
    arrays = {f"layer{i}": np.full(1 << 20, i, dtype=np.float32) for i in range(12)}
    path = _save(tmp_path / "big.ckpt", arrays)
    size = path.stat().st_size  # 48 MiB and a little
    tracemalloc.start()
    try:
        mapped = load_state_dict(path)
        _, mapped_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read = load_state_dict(path, mmap=False)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert mapped_peak < size // 50  # nothing read: the map is the file
    assert read_peak < size * 1.5  # one copy, read in chunks
    for name, array in arrays.items():
        np.testing.assert_array_equal(mapped[name], array)
        np.testing.assert_array_equal(read[name], array)


# ---------------------------------------------------------------- other sources


def test_file_objects_read_alike(expected):
    with CHECKPOINT.open("rb") as handle:
        on_disk = load_state_dict(handle)
    assert isinstance(_owner(on_disk["linear_weight"]), mmap.mmap)
    in_memory = load_state_dict(io.BytesIO(CHECKPOINT.read_bytes()))
    assert not isinstance(_owner(in_memory["linear_weight"]), mmap.mmap)
    _assert_equal_to_torch(on_disk, expected)
    _assert_equal_to_torch(in_memory, expected)


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_a_member_of_a_tar_archive(tmp_path, expected, mode):
    nemo = tmp_path / "model.nemo"
    with tarfile.open(nemo, mode) as archive:
        archive.add(FIXTURES / "mixed_values.ckpt", "./model_config.yaml")  # something first
        archive.add(CHECKPOINT, "./model_weights.ckpt")
    with tarfile.open(nemo) as archive:
        member = archive.extractfile("./model_weights.ckpt")
        tensors = load_state_dict(member)
    # a tar member's fileno() is the tar's: the reader must read it, not map the tar
    assert not isinstance(_owner(tensors["linear_weight"]), mmap.mmap)
    _assert_equal_to_torch(tensors, expected)


def test_compressed_records_are_read(tmp_path, expected):
    deflated = tmp_path / "deflated.ckpt"
    with zipfile.ZipFile(CHECKPOINT) as source, zipfile.ZipFile(deflated, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info), zipfile.ZIP_DEFLATED)
    _assert_equal_to_torch(load_state_dict(deflated), expected)


# ---------------------------------------------------------------- nothing is ever executed


class _Payload:
    """What an attacker pickles: unpickling it would call os.system(command)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _opcodes_reduce(marker: Path) -> tuple[bytes, str]:
    return pickle.dumps(_Payload(f"touch {marker}"), protocol=2)[2:-1], os.system.__module__


def _opcodes_global(marker: Path) -> tuple[bytes, str]:
    return _call("builtins", "eval", f"open({str(marker)!r}, 'w')"), "builtins.eval"


def _opcodes_stack_global(marker: Path) -> tuple[bytes, str]:
    popen = _value("subprocess") + _value("Popen") + b"\x93"  # STACK_GLOBAL (protocol 4)
    return popen + _value((["touch", str(marker)],)) + b"R", "subprocess.Popen"


def _opcodes_inst(marker: Path) -> tuple[bytes, str]:
    return b"(" + _value(f"touch {marker}") + b"ios\nsystem\n", "os.system"  # INST (protocol 0)


def _opcodes_in_tensor_hooks(marker: Path) -> tuple[bytes, str]:
    hooks = _call("os", "system", f"touch {marker}")  # where torch puts backward hooks
    return _tensor("0", "float32", 1, 0, (), (), hooks), "os.system"


@pytest.mark.parametrize(
    "opcodes",
    [
        _opcodes_reduce,
        _opcodes_global,
        _opcodes_stack_global,
        _opcodes_inst,
        _opcodes_in_tensor_hooks,
    ],
)
def test_malicious_globals_are_refused_and_never_run(tmp_path, opcodes):
    marker = tmp_path / "pwned"
    payload, named = opcodes(marker)
    path = _write_zip(tmp_path / "evil.ckpt", _state_pickle({"w": payload}), {"0": b"\0" * 4})
    with pytest.raises(ConversionError) as err:
        load_state_dict(path)
    assert "refusing to load checkpoint: pickle global" in str(err.value)
    assert f"'{named}" in str(err.value)
    assert "not allowed" in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "opcodes", [_opcodes_reduce, _opcodes_global, _opcodes_stack_global, _opcodes_inst]
)
def test_the_payloads_do_run_under_a_plain_unpickler(tmp_path, opcodes):
    """So the test above would notice if one of them ran."""
    marker = tmp_path / "pwned"
    result = pickle.loads(b"\x80\x02" + opcodes(marker)[0] + b".")
    if hasattr(result, "wait"):  # subprocess.Popen
        result.wait()
    assert marker.exists()


def test_extension_codes_go_through_the_allow_list_too(tmp_path):
    marker = tmp_path / "pwned"
    copyreg.add_extension("os", "system", 0xF1)
    try:
        payload = b"\x82\xf1(" + _value(f"touch {marker}") + b"tR"  # EXT1: registry lookup
        path = _write_zip(tmp_path / "evil.ckpt", _state_pickle({"w": payload}))
        with pytest.raises(ConversionError, match=r"'os\.system' is not allowed"):
            load_state_dict(path)
    finally:
        copyreg.remove_extension("os", "system", 0xF1)
    assert not marker.exists()


def test_stand_ins_cannot_be_altered_by_the_pickle(tmp_path):
    """BUILD after a tensor would rewrite its layout after it was checked: refused."""
    tensor = _tensor("0", "float32", 1, 0, (), ()) + _value({"offset": 99}) + b"b"
    path = _write_zip(tmp_path / "build.ckpt", _state_pickle({"w": tensor}), {"0": b"\0" * 4})
    with pytest.raises(ConversionError, match=r"corrupt data\.pkl"):
        load_state_dict(path)


def test_allowed_globals_resolve_to_this_reader_s_own_stand_ins():
    allowed = torch_pickle._ALLOWED_GLOBALS
    assert {module for module, _ in allowed} == {"torch", "torch._utils", "collections"}
    for key, target in allowed.items():
        defined_in = target.__module__ if callable(target) else type(target).__module__
        assert defined_in == torch_pickle.__name__, key


# ---------------------------------------------------------------- every failure is one line


def _cut_in_half(tmp_path: Path) -> Path:
    data = CHECKPOINT.read_bytes()
    return _written(tmp_path / "cut.ckpt", data[: len(data) // 2])


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _tar(tmp_path: Path) -> Path:
    with tarfile.open(tmp_path / "model.nemo", "w") as archive:
        archive.add(FIXTURES / "legacy.pt", "model_config.yaml")
    return tmp_path / "model.nemo"


def _one_tensor(tmp_path: Path, *, numel: int = 6, data: bytes = b"\0" * 24, **zip_args) -> Path:
    tensor = _tensor("0", "float32", numel, 0, (2, 3), (3, 1))
    return _write_zip(tmp_path / "one.ckpt", _state_pickle({"w": tensor}), {"0": data}, **zip_args)


def _zip_without_pickle(tmp_path: Path) -> Path:
    with zipfile.ZipFile(tmp_path / "x.ckpt", "w") as archive:
        archive.writestr("archive/version", "3\n")
    return tmp_path / "x.ckpt"


def _pickled(tmp_path: Path, data_pkl: bytes, storages: dict[str, bytes] | None = None) -> Path:
    return _write_zip(tmp_path / "x.ckpt", data_pkl, storages)


_FLAT = _tensor("0", "float32", 6, 0, (6,), (1,))


def _two_pickles(tmp_path: Path) -> Path:
    path = _one_tensor(tmp_path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("other/data.pkl", _state_pickle({}))
    return path


BAD = {
    "missing": (lambda tmp: tmp / "nope.ckpt", "no such file"),
    "directory": (lambda tmp: tmp, "cannot open"),
    "empty": (lambda tmp: _written(tmp / "x.ckpt", b""), "empty file"),
    "text": (lambda tmp: _written(tmp / "x.ckpt", b"hello"), "not a zip file"),
    "legacy format": (lambda tmp: FIXTURES / "legacy.pt", "legacy (pre-1.6, non-zip) torch"),
    "a .nemo tar": (_tar, "a tar archive (such as a .nemo file)"),
    "cut in half": (_cut_in_half, "truncated or corrupt zip"),
    "no data.pkl": (_zip_without_pickle, "0 <name>/data.pkl records in the zip, expected 1"),
    "two data.pkl": (_two_pickles, "2 <name>/data.pkl records"),
    "garbage pickle": (lambda tmp: _pickled(tmp, b"\x80\x02garbage"), "corrupt data.pkl"),
    "cut pickle": (lambda tmp: _pickled(tmp, _state_pickle({"w": _FLAT})[:50]), "corrupt data.pkl"),
    "storage missing": (lambda tmp: _pickled(tmp, _state_pickle({"w": _FLAT})), "storage record archive/data/0 is missing"),
    "storage short": (lambda tmp: _one_tensor(tmp, data=b"\0" * 20), "holds 20 bytes but its tensors need 24"),
    "tensor past storage": (lambda tmp: _one_tensor(tmp, numel=5, data=b"\0" * 20), "'w' reaches element 5 of a storage of 5"),
    "bad layout": (lambda tmp: _pickled(tmp, _state_pickle({"w": _tensor("0", "float32", 6, 0, (6,), (1, 1))})), "invalid tensor layout"),
    "negative numel": (lambda tmp: _one_tensor(tmp, numel=-1), "expected an integer >= 0, got -1"),
    "byte order": (lambda tmp: _one_tensor(tmp, byteorder=b"middle"), "unknown byte order"),
    "unsupported dtype": (lambda tmp: _pickled(tmp, _state_pickle({"w": _global("torch", "ComplexFloatStorage")})), "'torch.ComplexFloatStorage' is not allowed"),
    "bare storage": (lambda tmp: _pickled(tmp, _state_pickle({"w": _storage("0", "float32", 1)}), {"0": b"\0" * 4}), "'w' holds a bare torch storage"),
    "not a dict": (lambda tmp: _pickled(tmp, _value([1, 2]) + b"."), "holds a list, not a state dict"),
    "key not a string": (lambda tmp: _pickled(tmp, b"\x80\x02}" + _value(3) + _value(1) + b"s."), "key 3 is not a string"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_checkpoints_fail_with_one_line_naming_the_file(tmp_path, case):
    make, message = BAD[case]
    path = make(tmp_path)
    with pytest.raises(ConversionError) as err:
        load_state_dict(path)
    text = str(err.value)
    assert message in text
    assert text.startswith(f"{path}: ")
    assert "\n" not in text


def test_a_stream_is_named_in_errors():
    with pytest.raises(ConversionError, match=r"^<checkpoint stream>: empty file"):
        load_state_dict(io.BytesIO(b""))


# ---------------------------------------------------------------- zip64: over 4 GiB

_FOUR_GIB = 1 << 32
_ZERO_CHUNK = bytes(8 << 20)
_MODELS = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "models"


class _SparseFile:
    """A file for writers in which zeros past what is written become holes, not data.

    An all-zero write at or beyond the furthest point written so far is a seek (`close`
    sets the size), so gigabytes of zeros take neither disk nor memory; anything else is
    written. With `seekable=False`, `seek` is refused, and zipfile then writes each record
    with a data descriptor after its data, as torch does.
    """

    def __init__(self, path: Path, *, seekable: bool = True) -> None:
        self._file = path.open("wb")
        self._seekable = seekable
        self._end = 0

    def write(self, data: bytes) -> int:
        size = len(data)
        position = self._file.tell()
        zeros = data is _ZERO_CHUNK or not np.frombuffer(data, dtype=np.uint8).any()
        if position >= self._end and zeros:
            self._file.seek(size, os.SEEK_CUR)
        else:
            self._file.write(data)
        self._end = max(self._end, position + size)
        return size

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if not self._seekable or whence == os.SEEK_END:
            raise io.UnsupportedOperation("seek")
        return self._file.seek(offset, whence)

    def flush(self) -> None:
        self._file.flush()

    def __enter__(self) -> _SparseFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.truncate(self._end)
        self._file.close()


class _HoleSkippingReader:
    """A file for readers in which a chunk of `_ZERO_CHUNK`'s size that lies in one of the
    file's holes is `_ZERO_CHUNK` itself, found with SEEK_DATA and never read."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb", buffering=0)

    def read(self, size: int) -> bytes:
        position = self._file.tell()
        if size == len(_ZERO_CHUNK):
            try:
                data_from = os.lseek(self._file.fileno(), position, os.SEEK_DATA)
            except OSError:  # no data after `position`, or no SEEK_DATA here: read
                data_from = position
            if data_from >= position + size:
                self._file.seek(position + size)
                return _ZERO_CHUNK
            self._file.seek(position)
        return self._file.read(size)

    def __enter__(self) -> _HoleSkippingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()


def _zip64_copy(source: Path, target: Path, *, seekable: bool = True, filler: int = 0) -> Path:
    """`source` rewritten by zipfile, every record stored with a zip64 local header.

    `filler` zero bytes, in a record of their own, go just before the first storage record,
    where a big model's gigabytes of weights would be, so that every storage record lies
    past them; the file stays sparse.
    """
    with (
        zipfile.ZipFile(source) as old,
        _SparseFile(target, seekable=seekable) as out,
        zipfile.ZipFile(out, "w") as new,
    ):
        for info in old.infolist():
            prefix, name = info.filename.split("/", 1)
            if filler and name.startswith("data/"):
                blocks, rest = divmod(filler, len(_ZERO_CHUNK))
                _zip64_record(new, out, f"{prefix}/filler", [_ZERO_CHUNK] * blocks + [bytes(rest)])
                filler = 0
            _zip64_record(new, out, info.filename, [old.read(info)])
    return target


def _zip64_record(archive: zipfile.ZipFile, out: _SparseFile, name: str, chunks: list) -> None:
    """One stored record whose local header carries a zip64 extra field (its sizes), after
    torch's own padding field ("FB", then "Z"s) that starts the data at a multiple of 64."""
    unpadded = out.tell() + 30 + len(name) + 4 + 20  # header, name, padding field, zip64 field
    padding = -unpadded % 64
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.extra = b"FB" + padding.to_bytes(2, "little") + b"Z" * padding
    with archive.open(info, "w", force_zip64=True) as record:
        for chunk in chunks:
            record.write(chunk)


def _local_headers(path: Path) -> dict[str, tuple[int, list[int], int]]:
    """Each record's local header as written: flag bits, extra field ids, data offset."""
    headers = {}
    with zipfile.ZipFile(path) as archive, path.open("rb") as handle:
        for info in archive.infolist():
            handle.seek(info.header_offset)
            fixed = handle.read(30)
            flags = int.from_bytes(fixed[6:8], "little")
            name_length, extra_length = (
                int.from_bytes(fixed[i : i + 2], "little") for i in (26, 28)
            )
            handle.seek(name_length, os.SEEK_CUR)
            extra, ids = handle.read(extra_length), []
            while extra:
                ids.append(int.from_bytes(extra[:2], "little"))
                extra = extra[4 + int.from_bytes(extra[2:4], "little") :]
            data_offset = info.header_offset + 30 + name_length + extra_length
            headers[info.filename] = (flags, ids, data_offset)
    return headers


def _assert_zip64_torch_layout(path: Path, *, descriptors: bool) -> None:
    for name, (flags, ids, data_offset) in _local_headers(path).items():
        assert ids == [0x4246, 0x0001], name  # torch's padding, then zip64's sizes
        assert bool(flags & 0x08) == descriptors, name  # sizes after the data, or in the header
        assert data_offset % 64 == 0, name


def _assert_sparse(path: Path) -> None:
    on_disk = path.stat().st_blocks * 512  # what `du` counts
    assert path.stat().st_size > _FOUR_GIB
    assert on_disk < 64 << 20, f"{path} takes {on_disk} bytes on disk: not sparse"


def _assert_equal_to_tensors(tensors: dict, state: Mapping, torch) -> None:
    assert list(tensors) == list(state)
    for name, tensor in state.items():
        tensor, got = tensor.detach().contiguous(), tensors[name]
        if tensor.dtype == torch.bfloat16:
            tensor, got = tensor.view(torch.int16), got.view(np.int16)
        np.testing.assert_array_equal(got, tensor.numpy(), err_msg=name)
        assert got.dtype == tensor.numpy().dtype, name


def _tracemalloc_peak(load) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = load()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.reference
@pytest.mark.parametrize("descriptors", [False, True], ids=["sizes-in-header", "data-descriptor"])
def test_a_torch_checkpoint_rewritten_with_zip64_headers_reads_back_exactly(tmp_path, descriptors):
    torch = pytest.importorskip("torch", reason=NEEDS_TORCH)
    generator = torch.Generator().manual_seed(2)
    base = torch.randn(6, 10, generator=generator)
    state = {
        "weight": base,
        "transposed": base.t(),
        "sliced": base[2:, 3:9:2],
        "bf16": torch.randn(3, 5, generator=generator).to(torch.bfloat16),
        "ints": torch.randint(-9, 9, (7,), generator=generator),
        "scalar": torch.tensor(0.25),
    }
    torch.save(state, tmp_path / "torch.ckpt")
    path = _zip64_copy(tmp_path / "torch.ckpt", tmp_path / "zip64.ckpt", seekable=not descriptors)
    _assert_zip64_torch_layout(path, descriptors=descriptors)
    original = load_state_dict(tmp_path / "torch.ckpt")
    for use_mmap in (True, False):
        tensors = load_state_dict(path, mmap=use_mmap)
        _assert_equal_to_tensors(tensors, state, torch)
        for name, array in tensors.items():
            assert array.strides == original[name].strides, name
    # and the rewritten file is still one that torch itself loads
    _assert_equal_to_tensors(load_state_dict(path), torch.load(path, weights_only=True), torch)


@pytest.fixture(scope="module")
def over_4_gib(tmp_path_factory) -> Iterator[Path]:
    """state_dict.ckpt (torch's output) with 4 GiB + 1 MiB of zeros stored before its storage
    records and zip64 local headers with data descriptors, as torch writes a big model:
    sparse, so neither the disk nor the memory ever holds the 4 GiB."""
    path = tmp_path_factory.mktemp("zip64") / "over_4_gib.ckpt"
    yield _zip64_copy(CHECKPOINT, path, seekable=False, filler=_FOUR_GIB + (1 << 20))
    path.unlink()


@pytest.mark.parametrize("use_mmap", [True, False])
def test_storage_records_past_4_gib_read_back_exactly(over_4_gib, expected, use_mmap):
    _assert_sparse(over_4_gib)
    _assert_zip64_torch_layout(over_4_gib, descriptors=True)
    with zipfile.ZipFile(over_4_gib) as archive:
        offsets = {i.filename: i.header_offset for i in archive.infolist()}
    storages = [name for name in offsets if name.startswith("state_dict/data/")]
    assert len(storages) == 16
    assert all(offsets[name] > _FOUR_GIB for name in storages)
    assert offsets["state_dict/data.pkl"] < offsets["state_dict/filler"] < _FOUR_GIB

    tensors, peak = _tracemalloc_peak(lambda: load_state_dict(over_4_gib, mmap=use_mmap))
    assert peak < 1 << 20  # only data.pkl and the storages (a few kilobytes) are read
    _assert_equal_to_torch(tensors, expected)
    assert isinstance(_owner(tensors["linear_weight"]), mmap.mmap) == use_mmap
    assert np.shares_memory(tensors["linear_weight"], tensors["tied_weight"])
    _assert_sparse(over_4_gib)


@pytest.mark.reference
def test_torch_itself_loads_the_checkpoint_over_4_gib_as_this_reader_does(over_4_gib):
    """So the file above is one that torch reads, not only one that zipfile writes."""
    torch = pytest.importorskip("torch", reason=NEEDS_TORCH)
    loaded = torch.load(over_4_gib, weights_only=True, mmap=True)
    _assert_equal_to_tensors(load_state_dict(over_4_gib), loaded, torch)


def test_a_nemo_archive_holding_a_checkpoint_over_4_gib(over_4_gib, expected, tmp_path):
    """The tar member is read in place (zipfile seeks within it): nothing is copied, and the
    archive, written sparse too, stays sparse."""
    nemo = tmp_path / "model.nemo"
    config = b"target: nemo.collections.asr.models.EncDecCTCModelBPE\n"
    with (
        _SparseFile(nemo) as out,
        tarfile.open(fileobj=out, mode="w", copybufsize=len(_ZERO_CHUNK)) as archive,
        _HoleSkippingReader(over_4_gib) as weights,
    ):
        member = tarfile.TarInfo("./model_config.yaml")
        member.size = len(config)
        archive.addfile(member, io.BytesIO(config))
        archive.addfile(archive.gettarinfo(over_4_gib, "./model_weights.ckpt"), weights)
    _assert_sparse(nemo)
    with NemoArchive(nemo) as archive:
        assert archive.names() == [CONFIG_NAME, WEIGHTS_NAME]
        assert archive.size(WEIGHTS_NAME) == over_4_gib.stat().st_size
        assert archive.config() == {"target": "nemo.collections.asr.models.EncDecCTCModelBPE"}
    with tarfile.open(nemo) as archive:
        member = archive.extractfile("./model_weights.ckpt")
        tensors, peak = _tracemalloc_peak(lambda: load_state_dict(member))
    assert peak < 1 << 20
    _assert_equal_to_torch(tensors, expected)
    _assert_sparse(nemo)


def test_a_nemo_whose_weights_have_zip64_headers_converts_as_the_original(tmp_path):
    """The whole conversion (which copies model_weights.ckpt out of the tar before mapping
    it) on zip64 headers; over 4 GiB that copy would write the 4 GiB, so it is left to the
    two tests above."""
    source = _MODELS / "ctc.nemo"
    rewritten = tmp_path / "zip64.nemo"
    with tarfile.open(source) as old, tarfile.open(rewritten, "w") as new:
        for member in old.getmembers():
            data = old.extractfile(member).read() if member.isfile() else None
            if member.name.removeprefix("./") == WEIGHTS_NAME:
                (tmp_path / "plain.ckpt").write_bytes(data)
                _zip64_copy(tmp_path / "plain.ckpt", tmp_path / "zip64.ckpt", seekable=False)
                data = (tmp_path / "zip64.ckpt").read_bytes()
                member.size = len(data)
            new.addfile(member, io.BytesIO(data) if data is not None else None)
    _assert_zip64_torch_layout(tmp_path / "zip64.ckpt", descriptors=True)
    digest = "0" * 64  # one source hash for both, so that the weights can be compared whole
    convert_nemo(source, tmp_path / "plain", sha256=digest)
    convert_nemo(rewritten, tmp_path / "zip64", sha256=digest)
    weights = [tmp_path / out / "model.safetensors" for out in ("plain", "zip64")]
    assert weights[0].read_bytes() == weights[1].read_bytes()
    configs = [
        json.loads((tmp_path / out / "config.json").read_text()) for out in ("plain", "zip64")
    ]
    assert configs[1].pop("source")["file_name"] == "zip64.nemo"
    configs[0].pop("source")
    assert configs[0] == configs[1]


# ---------------------------------------------------------------- against torch itself


@pytest.mark.reference
def test_a_fresh_torch_save_reads_back_exactly(tmp_path):
    torch = pytest.importorskip("torch", reason=NEEDS_TORCH)
    generator = torch.Generator().manual_seed(1)
    base = torch.randn(7, 9, 5, generator=generator)
    state = {
        "base": base,
        "permuted": base.permute(2, 0, 1),
        "narrowed": base[3:, 2:7:2, 1],
        "bf16": torch.randn(4, 6, generator=generator).to(torch.bfloat16).t(),
        "half": torch.randn(5, generator=generator).half(),
        "double": torch.randn(2, 2, generator=generator).double(),
        "ints": torch.randint(-100, 100, (9,), generator=generator),
        "int32": torch.randint(-100, 100, (3, 3), generator=generator).int()[:, 1],
        "int16": torch.randint(-100, 100, (4,), generator=generator).short(),
        "int8": torch.randint(-100, 100, (4,), generator=generator).char(),
        "uint8": torch.randint(0, 255, (4,), generator=generator).byte(),
        "mask": torch.rand(6, generator=generator) > 0.5,
        "param": torch.nn.Parameter(torch.randn(3, generator=generator)),
        "scalar": torch.tensor(-1.0),
        "empty": torch.empty(2, 0, 4),
    }
    torch.save(state, tmp_path / "live.ckpt")
    for use_mmap in (True, False):
        tensors = load_state_dict(tmp_path / "live.ckpt", mmap=use_mmap)
        assert list(tensors) == list(state)
        for name, tensor in state.items():
            tensor = tensor.detach().contiguous()
            got = tensors[name]
            if tensor.dtype == torch.bfloat16:
                tensor, got = tensor.view(torch.int16), got.view(np.int16)
            np.testing.assert_array_equal(got, tensor.numpy(), err_msg=name)
            assert got.dtype == tensor.numpy().dtype, name


@pytest.mark.reference
def test_torch_free_writer_matches_torch(tmp_path):
    """The checkpoints this file writes without torch are ones torch itself loads."""
    torch = pytest.importorskip("torch", reason=NEEDS_TORCH)
    arrays = _sample_arrays()
    loaded = torch.load(_save(tmp_path / "ours.ckpt", arrays), weights_only=True)
    assert list(loaded) == list(arrays)
    for name, array in arrays.items():
        tensor = loaded[name]
        if tensor.dtype == torch.bfloat16:
            tensor, array = tensor.view(torch.int16), array.view(np.int16)
        np.testing.assert_array_equal(tensor.numpy(), array, err_msg=name)
