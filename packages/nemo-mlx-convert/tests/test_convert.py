"""Converting the NeMo fixture models, and every way a conversion must fail cleanly."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from nemo_mlx_convert import (
    ConversionError,
    convert_nemo,
    open_model_directory,
    resolve_model,
    resolve_model_of,
)
from nemo_mlx_convert.safetensors_io import read_safetensors_header
from nemo_mlx_convert.torch_checkpoint import load_state_dict

MODELS = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "models"
NAMES = ["tdt", "rnnt", "ctc", "hybrid_tdt_ctc"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nemo_mlx_convert.cli", *args], capture_output=True, text=True
    )


@pytest.mark.parametrize("name", NAMES)
def test_fixture_models_convert_and_every_tensor_is_accounted_for(name, tmp_path):
    out = tmp_path / name
    summary = convert_nemo(MODELS / f"{name}.nemo", out)
    model = open_model_directory(out)
    assert model.config.model_class == summary.model_class
    assert model.config.source.sha256 == _sha256(MODELS / f"{name}.nemo")
    header = read_safetensors_header(model.weights)
    written = {k for k in header if k != "__metadata__"}
    # every NeMo tensor is either written (possibly renamed / merged) or dropped with a reason
    with tarfile.open(MODELS / f"{name}.nemo") as archive:
        archive.extract("./model_weights.ckpt", tmp_path, filter="data")
    state = load_state_dict(tmp_path / "model_weights.ckpt")
    for key in state:
        lstm = key.rsplit("_l", 1)[0].rsplit(".", 1)[0] if ".lstm." in key else None
        assert key in written or key in model.config.dropped_tensors or lstm, key
    assert all(reason for reason in model.config.dropped_tensors.values())
    for reference, path in model.config.tokenizer_files.items():
        assert reference.startswith("nemo:")
        assert (out / path).is_file()


def test_layouts_and_values(tmp_path):
    out = tmp_path / "tdt"
    convert_nemo(MODELS / "tdt.nemo", out)
    with tarfile.open(MODELS / "tdt.nemo") as archive:
        archive.extract("./model_weights.ckpt", tmp_path, filter="data")
    state = load_state_dict(tmp_path / "model_weights.ckpt")
    written = _read(out / "model.safetensors")
    conv = "encoder.pre_encode.conv.0.weight"
    np.testing.assert_array_equal(written[conv], state[conv].transpose(0, 2, 3, 1))
    dw = "encoder.layers.1.conv.depthwise_conv.weight"
    np.testing.assert_array_equal(written[dw], state[dw].transpose(0, 2, 1))
    lstm = "decoder.prediction.dec_rnn.lstm"
    np.testing.assert_array_equal(written[f"{lstm}.0.Wx"], state[f"{lstm}.weight_ih_l0"])
    np.testing.assert_array_equal(
        written[f"{lstm}.0.bias"], state[f"{lstm}.bias_ih_l0"] + state[f"{lstm}.bias_hh_l0"]
    )
    linear = "encoder.layers.0.feed_forward1.linear1.weight"
    np.testing.assert_array_equal(written[linear], state[linear])


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_output(dtype, tmp_path):
    convert_nemo(MODELS / "ctc.nemo", tmp_path / "m", dtype=dtype)
    header = read_safetensors_header(tmp_path / "m" / "model.safetensors")
    code = {"bfloat16": "BF16", "float16": "F16"}[dtype]
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {code}
    assert open_model_directory(tmp_path / "m").config.dtype == dtype


def test_gzipped_nemo(tmp_path):
    gz = tmp_path / "ctc.nemo"
    gz.write_bytes(gzip.compress((MODELS / "ctc.nemo").read_bytes()))
    convert_nemo(gz, tmp_path / "out")
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_cli_converts_and_summarises(tmp_path):
    result = _cli(str(MODELS / "tdt.nemo"), str(tmp_path / "out"), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "EncDecRNNTBPEModel" in result.stdout
    again = _cli(str(MODELS / "tdt.nemo"), str(tmp_path / "out"), "--quiet")
    assert again.returncode == 1
    assert "--force" in again.stderr
    assert (
        _cli(str(MODELS / "tdt.nemo"), str(tmp_path / "out"), "--quiet", "--force").returncode == 0
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: source, output"),
        (["a.nemo", "out", "--dtype", "int3"], "argument --dtype: invalid choice: 'int3' (choose from "),
    ],
)  # fmt: skip
def test_cli_usage_errors_are_one_line(tmp_path, args, message):
    result = _cli(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"nemo-mlx-convert: error: {message}")
    assert result.stderr.count("\n") == 1  # one line, no usage block


def test_resolve_caches_by_content(tmp_path):
    first = resolve_model(MODELS / "rnnt.nemo", cache_dir=tmp_path)
    stamp = first.weights.stat().st_mtime_ns
    second = resolve_model(MODELS / "rnnt.nemo", cache_dir=tmp_path)
    assert second.path == first.path
    assert second.weights.stat().st_mtime_ns == stamp  # a cache hit, not a second conversion


def test_resolve_of_a_class_refuses_another_in_one_line(tmp_path):
    """The loaders of the VAD and the diarizer ask for their class: another class, or a
    missing file, is one ConversionError naming what was given."""
    rnnt = "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel"
    found = resolve_model_of(MODELS / "rnnt.nemo", rnnt, "transducer", cache_dir=tmp_path)
    assert found.model_class == rnnt
    wanted = "nemo.collections.asr.models.sortformer_diar_models.SortformerEncLabelModel"
    with pytest.raises(ConversionError) as refused:
        resolve_model_of(MODELS / "rnnt.nemo", wanted, "Sortformer diarizer", cache_dir=tmp_path)
    assert str(refused.value) == (f"{MODELS / 'rnnt.nemo'}: not a Sortformer diarizer "
                                  "(SortformerEncLabelModel); its model class is EncDecRNNTBPEModel")  # fmt: skip
    with pytest.raises(ConversionError, match="no such file"):
        resolve_model_of(tmp_path / "none.nemo", wanted, "Sortformer diarizer", cache_dir=tmp_path)


def _rewrite(source: Path, target: Path, edit) -> Path:
    """Copy a .nemo with members changed by edit(name, data) -> data or None (drop)."""
    with tarfile.open(source) as src, tarfile.open(target, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if data is not None:
                data = edit(member.name.removeprefix("./"), data)
                if data is None:
                    continue
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    return target


def _config_edit(change):
    def edit(name, data):
        if name == "model_config.yaml":
            cfg = yaml.safe_load(data)
            change(cfg)
            return yaml.safe_dump(cfg).encode()
        return data

    return edit


def _malicious_weights(name, data):
    if name != "model_weights.ckpt":
        return data
    import pickle
    import zipfile

    class Payload:
        def __reduce__(self):
            import os

            return (os.system, ("touch /tmp/nemo-mlx-pwned",))

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": Payload()}, protocol=2))
    return buffer.getvalue()


def _unknown_tensor(name, data):
    if name != "model_weights.ckpt":
        return data
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for info in source.infolist():
            content = source.read(info)
            if info.filename.endswith("data.pkl"):
                content = content.replace(b"encoder.out_proj", b"encoder.new_layer")
                content = content.replace(
                    b"encoder.pre_encode.out.bias", b"encoder.pre_encode.xyz.bias"
                )
            archive.writestr(info, content)
    return buffer.getvalue()


def _conv_asr(config: dict) -> None:
    """A char CTC class whose encoder is not a Conformer (QuartzNet, Citrinet)."""
    config["target"] = "nemo.collections.asr.models.ctc_models.EncDecCTCModel"
    config["encoder"] = {"_target_": "nemo.collections.asr.modules.ConvASREncoder", "feat_in": 80}


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


CASES = {
    "truncated": (lambda src, dst: _written(dst, src.read_bytes()[: src.stat().st_size // 2]), "truncated"),
    "not a tar": (lambda src, dst: _written(dst, b"hello"), "not a .nemo checkpoint (a .nemo file is a tar archive"),
    "no weights": (lambda src, dst: _rewrite(src, dst, lambda n, d: None if n == "model_weights.ckpt" else d), "model_weights.ckpt"),
    "no tokenizer": (lambda src, dst: _rewrite(src, dst, lambda n, d: None if n.endswith("tokenizer.model") else d), "lacks"),
    "unknown class": (lambda src, dst: _rewrite(src, dst, _config_edit(lambda c: c.update(target="nemo.collections.asr.models.SLUIntentSlotBPEModel"))), "not supported; supported"),
    "QuartzNet-like": (lambda src, dst: _rewrite(src, dst, _config_edit(_conv_asr)), "EncDecCTCModel with a ConvASREncoder encoder (QuartzNet, Jasper, Citrinet) is not supported; supported: Conformer and FastConformer encoders (ConformerEncoder)"),
    "malicious pickle": (lambda src, dst: _rewrite(src, dst, _malicious_weights), "not allowed"),
    "unexpected tensor": (lambda src, dst: _rewrite(src, dst, _unknown_tensor), "unsupported model variant"),
    "missing file": (lambda src, dst: dst, "no such file"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_bad_inputs_give_one_line_and_leave_nothing(case, tmp_path):
    make, message = CASES[case]
    bad = make(MODELS / "tdt.nemo", tmp_path / "bad.nemo")
    out = tmp_path / "out" / "model"
    result = _cli(str(bad), str(out), "--quiet")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert not out.exists()
    leftovers = list((tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
    assert leftovers == []
    assert not Path("/tmp/nemo-mlx-pwned").exists()


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read(path: Path) -> dict[str, np.ndarray]:
    header = read_safetensors_header(path)
    data = path.read_bytes()
    (size,) = np.frombuffer(data[:8], dtype="<u8")
    base = 8 + int(size)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(
            data[base + a : base + b], dtype={"F32": "<f4"}[info["dtype"]]
        ).reshape(info["shape"])
    return out


@pytest.mark.reference
@pytest.mark.parametrize("name", NAMES)
def test_every_written_tensor_equals_torchs_after_the_layout_change(name, tmp_path):
    torch = pytest.importorskip("torch", reason="comparing with torch needs the `reference` group")
    convert_nemo(MODELS / f"{name}.nemo", tmp_path / "out")
    with tarfile.open(MODELS / f"{name}.nemo") as archive:
        archive.extract("./model_weights.ckpt", tmp_path, filter="data")
    state = torch.load(tmp_path / "model_weights.ckpt", map_location="cpu", weights_only=True)
    written = _read(tmp_path / "out" / "model.safetensors")
    expected = {}
    for key, tensor in state.items():
        array = tensor.numpy()
        if ".lstm." in key:
            prefix, kind, layer = key.rsplit(".", 1)[0], *key.rsplit(".", 1)[1].rsplit("_l", 1)
            target = {"weight_ih": "Wx", "weight_hh": "Wh"}.get(kind)
            if target:
                expected[f"{prefix}.{layer}.{target}"] = array
            elif kind == "bias_ih":
                expected[f"{prefix}.{layer}.bias"] = (
                    array + state[f"{prefix}.bias_hh_l{layer}"].numpy()
                )
            continue
        if array.ndim == 4:
            array = array.transpose(0, 2, 3, 1)
        elif array.ndim == 3:
            array = array.transpose(0, 2, 1)
        expected[key] = array
    assert set(written) <= set(expected)
    for key, array in written.items():
        np.testing.assert_array_equal(array, expected[key], err_msg=key)


def test_auxiliary_models_are_named_not_converted(tmp_path):
    """canary-1b-v2's .nemo also holds its CTC aligner (timestamps_asr_model_config.yaml and
    timestamps_asr_model_weights.ckpt): named in config.json, not converted."""
    source = tmp_path / "with_aligner.nemo"
    with tarfile.open(MODELS / "tdt.nemo") as src, tarfile.open(source, "w") as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        for name, data in (("timestamps_asr_model_config.yaml", b"target: x\n"),
                           ("timestamps_asr_model_weights.ckpt", b"weights"),
                           ("lonely_config.yaml", b"{}\n")):  # fmt: skip
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    convert_nemo(source, tmp_path / "out")
    assert open_model_directory(tmp_path / "out").config.auxiliary_models == [
        "timestamps_asr_model"
    ]
    convert_nemo(MODELS / "tdt.nemo", tmp_path / "plain")
    assert open_model_directory(tmp_path / "plain").config.auxiliary_models == []
    plain = json.loads((tmp_path / "plain" / "config.json").read_text())
    del plain["auxiliary_models"]  # a directory written before the field existed still opens
    (tmp_path / "plain" / "config.json").write_text(json.dumps(plain))
    assert open_model_directory(tmp_path / "plain").config.auxiliary_models == []


def test_a_config_nested_under_model_converts_as_the_plain_one(tmp_path):
    """A training config (`model:` beside `trainer:`) saved as model_config.yaml."""

    def nest(name: str, data: bytes) -> bytes:
        if name != "model_config.yaml":
            return data
        config = yaml.safe_load(data)
        return yaml.safe_dump({"name": "x", "trainer": {"devices": 1}, "model": config}).encode()

    nested = _rewrite(MODELS / "tdt.nemo", tmp_path / "nested.nemo", nest)
    convert_nemo(nested, tmp_path / "nested")
    convert_nemo(MODELS / "tdt.nemo", tmp_path / "plain")
    plain = json.loads((tmp_path / "plain" / "config.json").read_text())
    ours = json.loads((tmp_path / "nested" / "config.json").read_text())
    assert ours["model_class"] == plain["model_class"]
    assert ours["nemo_config"] == plain["nemo_config"]
    ours, theirs = (_read(tmp_path / d / "model.safetensors") for d in ("nested", "plain"))
    assert ours.keys() == theirs.keys()
    for key, array in theirs.items():
        np.testing.assert_array_equal(ours[key], array)


@pytest.mark.reference
def test_a_lightning_checkpoint_converts_as_the_plain_one(tmp_path):
    """model_weights.ckpt as Lightning saves it: the parameters under `state_dict`."""
    torch = pytest.importorskip("torch", reason="needs torch (the `reference` dependency group)")

    def wrap(name: str, data: bytes) -> bytes:
        if name != "model_weights.ckpt":
            return data
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        buffer = io.BytesIO()
        torch.save({"epoch": 3, "global_step": 120, "state_dict": state}, buffer)
        return buffer.getvalue()

    lightning = _rewrite(MODELS / "tdt.nemo", tmp_path / "lightning.nemo", wrap)
    convert_nemo(lightning, tmp_path / "lightning")
    convert_nemo(MODELS / "tdt.nemo", tmp_path / "plain")
    ours, theirs = (_read(tmp_path / d / "model.safetensors") for d in ("lightning", "plain"))
    assert ours.keys() == theirs.keys()
    for key, array in theirs.items():
        np.testing.assert_array_equal(ours[key], array)
