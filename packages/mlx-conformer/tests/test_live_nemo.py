"""Live parity: NeMo's `ConformerEncoder` and ours, same random weights, padded batches.

Runs where NeMo is importable (the `reference` dependency group). The committed fixture
models cover the same contract in CI.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_conformer import Conformer, ConformerConfig
from nemo_mlx_convert import map_module_state

pytestmark = pytest.mark.reference

torch = pytest.importorskip("torch", reason="live NeMo parity needs the `reference` group (torch)")
conformer_encoder = pytest.importorskip(
    "nemo.collections.asr.modules.conformer_encoder",
    reason="live NeMo parity needs the `reference` group (nemo_toolkit[asr])",
)

BASE = {
    "feat_in": 80,
    "n_layers": 2,
    "d_model": 64,
    "n_heads": 4,
    "subsampling_conv_channels": 32,
    "conv_kernel_size": 9,
    "dropout": 0.0,
    "dropout_pre_encoder": 0.0,
    "dropout_emb": 0.0,
    "dropout_att": 0.0,
    "pos_emb_max_len": 5000,
}
VARIANTS = {
    "dw_striding8": {"subsampling": "dw_striding", "subsampling_factor": 8},
    "striding4_layernorm_tied": {
        "subsampling": "striding",
        "subsampling_factor": 4,
        "xscaling": False,
        "conv_norm_type": "layer_norm",
        "untie_biases": False,
    },
    "local_symmetric": {
        "subsampling": "dw_striding",
        "subsampling_factor": 8,
        "self_attention_model": "rel_pos_local_attn",
        "att_context_size": [5, 5],
    },
    "local_asymmetric": {
        "subsampling": "dw_striding",
        "subsampling_factor": 8,
        "self_attention_model": "rel_pos_local_attn",
        "att_context_size": [7, 3],
    },
    "full_limited_context": {
        "subsampling": "dw_striding",
        "subsampling_factor": 8,
        "att_context_size": [6, 2],
    },
    "no_bias_feat_out": {
        "subsampling": "dw_striding",
        "subsampling_factor": 8,
        "use_bias": False,
        "feat_out": 48,
    },
}


def _nemo_encoder(cfg: dict):
    torch.manual_seed(0)
    target = {"_target_": "nemo.collections.asr.modules.ConformerEncoder", **cfg}
    encoder = conformer_encoder.ConformerEncoder.from_config_dict(target).eval()
    with torch.no_grad():  # move every weight and statistic away from its init value
        for param in encoder.parameters():
            param.add_(torch.randn_like(param) * 0.1)
        for name, buffer in encoder.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0.0, 0.3)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
    return encoder


def _mlx_weights(encoder) -> list[tuple[str, mx.array]]:
    """The encoder's weights in MLX names and layouts, by the converter's own mapping."""
    state = {name: tensor.numpy() for name, tensor in encoder.state_dict().items()}
    return [(k, mx.array(v)) for k, v in map_module_state(state, "encoder.").items()]


def _relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(ours - reference) / np.linalg.norm(reference))


@pytest.mark.parametrize("variant", [*VARIANTS, "subsampling_in_chunks", "packed_rows"])
def test_encoder_matches_nemo_batched_and_alone(variant, monkeypatch):
    """`packed_rows`: a batch long enough for the CPU's packed rows (`packing`: T' >= the
    native attention's MIN_KEYS), padded frames then zeros."""
    cfg = {**BASE, **VARIANTS.get(variant, VARIANTS["dw_striding8"])}
    encoder = _nemo_encoder(cfg)
    model = Conformer(ConformerConfig.from_nemo(cfg))
    model.load_weights(_mlx_weights(encoder), strict=True)
    if variant == "subsampling_in_chunks":
        model.pre_encode.chunk_frames = 7  # many chunk seams across every item
    packings = []
    packing = model._packing
    monkeypatch.setattr(model, "_packing", lambda *a: packings.append(packing(*a)) or packings[-1])

    lengths = torch.tensor([1400, 1100, 500, 60] if variant == "packed_rows" else [603, 410, 77, 9])
    features = torch.randn(len(lengths), cfg["feat_in"], int(lengths.max()))
    with torch.no_grad():
        expected, expected_len = encoder(audio_signal=features, length=lengths)
    expected = expected.transpose(1, 2).numpy()

    ours, ours_len = model(mx.array(features.transpose(1, 2).numpy()), mx.array(lengths.numpy()))
    assert (packings[0] is not None) == (variant == "packed_rows")
    assert np.array(ours_len).tolist() == expected_len.tolist()
    ours = np.array(ours)
    for i, n in enumerate(expected_len.tolist()):
        assert _relative_error(ours[i, :n], expected[i, :n]) <= 1e-4
        if variant == "packed_rows":
            assert np.all(ours[i, n:] == 0.0)
        alone, _ = model(mx.array(features[i : i + 1, :, : lengths[i]].transpose(1, 2).numpy()))
        assert _relative_error(np.array(alone[0]), expected[i, :n]) <= 1e-4


@pytest.mark.parametrize("context", [[8, 8], [12, 4]])
def test_change_attention_model_to_local_matches_nemo(context):
    cfg = {**BASE, **VARIANTS["dw_striding8"]}
    encoder = _nemo_encoder(cfg)
    model = Conformer(ConformerConfig.from_nemo(cfg))
    model.load_weights(_mlx_weights(encoder), strict=True)
    encoder.change_attention_model("rel_pos_local_attn", context)
    model.change_attention_model("rel_pos_local_attn", context)
    assert model.config.self_attention_model == "rel_pos_local_attn"

    features = torch.randn(1, cfg["feat_in"], 900)  # 113 encoder frames, several windows
    with torch.no_grad():
        expected, _ = encoder(audio_signal=features, length=torch.tensor([900]))
    ours, _ = model(mx.array(features.transpose(1, 2).numpy()))
    assert _relative_error(np.array(ours[0]), expected[0].T.numpy()) <= 1e-4


def test_bfloat16_within_1e2():
    cfg = {**BASE, **VARIANTS["dw_striding8"]}
    encoder = _nemo_encoder(cfg)
    model = Conformer(ConformerConfig.from_nemo(cfg))
    model.load_weights(_mlx_weights(encoder), strict=True)
    model.set_dtype(mx.bfloat16)
    features = torch.randn(2, cfg["feat_in"], 400)
    lengths = torch.tensor([400, 250])
    with torch.no_grad():
        expected, expected_len = encoder(audio_signal=features, length=lengths)
    ours, _ = model(
        mx.array(features.transpose(1, 2).numpy()).astype(mx.bfloat16), mx.array(lengths.numpy())
    )
    assert ours.dtype == mx.bfloat16
    ours = np.array(ours.astype(mx.float32))
    for i, n in enumerate(expected_len.tolist()):
        assert _relative_error(ours[i, :n], expected[i, :, :n].T.numpy()) <= 1e-2


@pytest.mark.parametrize("variant", ["dw_striding8", "full_limited_context"])
def test_native_cpu_attention_matches_nemo(variant):
    # Inputs long enough (>= cpu_attention.MIN_KEYS frames after subsampling) that full
    # attention takes the native CPU pass, padded and alone.
    from mlx_conformer import cpu_attention

    cfg = {**BASE, **VARIANTS[variant]}
    encoder = _nemo_encoder(cfg)
    model = Conformer(ConformerConfig.from_nemo(cfg))
    model.load_weights(_mlx_weights(encoder), strict=True)
    lengths = torch.tensor([2100, 1500])
    assert mx.default_device() != mx.cpu or cpu_attention.usable(
        mx.zeros(1), keys=int(lengths.max()) // 8
    )
    features = torch.randn(len(lengths), cfg["feat_in"], int(lengths.max()))
    with torch.no_grad():
        expected, expected_len = encoder(audio_signal=features, length=lengths)
    expected = expected.transpose(1, 2).numpy()
    ours, _ = model(mx.array(features.transpose(1, 2).numpy()), mx.array(lengths.numpy()))
    ours = np.array(ours)
    for i, n in enumerate(expected_len.tolist()):
        assert _relative_error(ours[i, :n], expected[i, :n]) <= 1e-4
        alone, _ = model(mx.array(features[i : i + 1, :, : lengths[i]].transpose(1, 2).numpy()))
        assert _relative_error(np.array(alone[0]), expected[i, :n]) <= 1e-4
