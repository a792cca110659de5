"""The torch-free checkpoint reader: exact tensors, memory-mapped, and nothing executed."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from nemo_mlx_convert import ConversionError, load_state_dict

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_every_dtype_and_view_equals_torch():
    tensors = load_state_dict(FIXTURES / "state_dict.ckpt")
    with np.load(FIXTURES / "state_dict_expected.npz") as expected:
        names = [n for n in expected.files if not n.startswith("__")]
        assert sorted(tensors) == sorted(names)
        for name in names:
            got = tensors[name]
            if name == "bf16":
                assert got.dtype == ml_dtypes.bfloat16
                got = got.astype(np.float32)
            assert got.shape == expected[name].shape, name
            assert got.dtype == expected[name].dtype, name
            np.testing.assert_array_equal(got, expected[name], err_msg=name)


def test_tensors_are_read_only_views_of_the_file():
    tensors = load_state_dict(FIXTURES / "state_dict.ckpt")
    weight = tensors["linear_weight"]
    assert not weight.flags.writeable
    assert not weight.flags.owndata  # a view of the memory map, not a copy
    with pytest.raises(ValueError, match="read-only"):
        weight[0, 0] = 1.0


class _Payload:
    """What an attacker pickles: unpickling would call os.system(command)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def _checkpoint(tmp_path: Path, payload: object, name: str = "evil.ckpt") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(payload, protocol=2))
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    return path


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        (lambda marker: {"w": _Payload(f"touch {marker}")}, "posix.system"),
        (lambda marker: {"w": eval}, "builtins.eval"),
        (lambda marker: {"w": __import__("subprocess").Popen}, "subprocess.Popen"),
    ],
)
def test_malicious_pickles_are_refused_and_never_run(tmp_path, payload, named):
    marker = tmp_path / "pwned"
    path = _checkpoint(tmp_path, payload(marker))
    with pytest.raises(ConversionError, match=named.split(".")[-1]) as err:
        load_state_dict(path)
    assert "not allowed" in str(err.value)
    assert not marker.exists()


def test_truncated_checkpoint(tmp_path):
    data = (FIXTURES / "state_dict.ckpt").read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConversionError, match=r"cut\.ckpt"):
        load_state_dict(cut)


def test_storage_shorter_than_its_tensor(tmp_path):
    source = zipfile.ZipFile(FIXTURES / "state_dict.ckpt")
    short = tmp_path / "short.ckpt"
    with source, zipfile.ZipFile(short, "w", compression=zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info)
            if "/data/" in info.filename and len(data) > 8:
                data = data[:4]
            target.writestr(info.filename, data)
    with pytest.raises(ConversionError, match="shorter than the tensor needs"):
        load_state_dict(short)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a torch zip checkpoint"),
        (b"hello, not a zip at all", "not a torch zip checkpoint"),
        (pickle.dumps({"a": 1}, protocol=2), "pre-1.6 torch format"),
    ],
)
def test_not_a_checkpoint(tmp_path, content, message):
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(ConversionError, match=message):
        load_state_dict(path)


def test_zip_without_data_pkl(tmp_path):
    path = tmp_path / "nodata.ckpt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/version", "3")
    with pytest.raises(ConversionError, match=r"data\.pkl"):
        load_state_dict(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConversionError, match="no such file"):
        load_state_dict(tmp_path / "nope.ckpt")


def test_errors_are_one_line(tmp_path):
    path = _checkpoint(tmp_path, {"w": _Payload("true")})
    with pytest.raises(ConversionError) as err:
        load_state_dict(path)
    assert "\n" not in str(err.value)


def test_unpickler_has_no_other_way_out():
    """The allow-list resolves to this module's own objects, nothing importable by name."""
    from nemo_mlx_convert import torch_checkpoint

    for (module, name), target in torch_checkpoint._ALLOWED.items():
        assert module in ("torch", "torch._utils", "collections"), (module, name)
        owner = getattr(target, "__module__", None) or type(target).__module__
        assert owner in ("nemo_mlx_convert.torch_checkpoint", "collections"), (module, name, owner)
