"""Encoder behaviour that needs no NeMo: configs, lengths, batching, and code paths that
must agree with each other (NeMo parity itself is in test_live_nemo.py and the fixtures)."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_conformer import Conformer, ConformerConfig

SMALL = {
    "feat_in": 80,
    "n_layers": 2,
    "d_model": 64,
    "n_heads": 4,
    "subsampling": "dw_striding",
    "subsampling_factor": 8,
    "subsampling_conv_channels": 32,
    "conv_kernel_size": 9,
}


def _model(**overrides) -> Conformer:
    mx.random.seed(0)
    model = Conformer(ConformerConfig.from_nemo({**SMALL, **overrides}))
    # Random batch-norm statistics, so that the folded affine map is exercised.
    for layer in model.layers:
        norm = layer.conv.batch_norm
        if "running_var" in norm:
            norm.running_mean = mx.random.normal(norm.running_mean.shape) * 0.3
            norm.running_var = mx.random.uniform(0.5, 2.0, norm.running_var.shape)
    return model


def _rel(a: mx.array, b: mx.array) -> float:
    a, b = np.array(a), np.array(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_output_lengths_follow_subsampling():
    model = _model()
    lengths = mx.array([1000, 333, 9, 1])
    out, out_len = model(mx.random.normal((4, 1000, 80)), lengths)
    # ceil-free arithmetic of three stride-2, padding-1, kernel-3 convolutions
    assert out_len.tolist() == [125, 42, 2, 1]
    assert out.shape == (4, 125, 64)


def test_batched_items_equal_items_alone():
    model = _model()
    features = mx.random.normal((3, 700, 80))
    lengths = [700, 451, 130]
    batched, out_len = model(features, mx.array(lengths))
    for i, n in enumerate(lengths):
        alone, _ = model(features[i : i + 1, :n])
        frames = int(out_len[i])
        assert _rel(batched[i, :frames], alone[0]) < 1e-5


def test_a_padded_single_item_equals_it_unpadded():
    """A batch of one is padded too (GPU runs pad batches to a few lengths)."""
    model = _model()
    features = mx.random.normal((1, 450, 80))
    plain, out_len = model(features)
    padded, _ = model(mx.pad(features, [(0, 0), (0, 190), (0, 0)]), mx.array([450]))
    assert _rel(padded[0, : int(out_len[0])], plain[0]) < 1e-6


def test_padding_content_does_not_leak():
    model = _model()
    features = mx.random.normal((2, 600, 80))
    lengths = mx.array([600, 300])
    noisy = mx.concatenate(
        [features[:1], mx.concatenate([features[1:, :300], 1e3 * mx.ones((1, 300, 80))], axis=1)]
    )
    a, _ = model(features, lengths)
    b, _ = model(noisy, lengths)
    assert _rel(b[1, :38], a[1, :38]) < 1e-6


def test_subsampling_in_chunks_equals_one_pass():
    model = _model()
    features = mx.random.normal((2, 1500, 80))
    lengths = mx.array([1500, 777])
    whole, _ = model(features, lengths)
    model.pre_encode.chunk_frames = 5
    chunked, _ = model(features, lengths)
    assert _rel(chunked[0], whole[0]) < 1e-6
    assert _rel(chunked[1, :98], whole[1, :98]) < 1e-6


@pytest.mark.parametrize("context", [(4, 4), (6, 6)])
def test_local_attention_equals_full_attention_with_the_same_band(context):
    """Two independent code paths (blocked sliding windows vs masked full attention)."""
    model = _model()
    features = mx.random.normal((2, 900, 80))
    lengths = mx.array([900, 640])
    model.change_attention_model("rel_pos", list(context))
    full, _ = model(features, lengths)
    model.change_attention_model("rel_pos_local_attn", list(context))
    local, _ = model(features, lengths)
    assert _rel(local[0], full[0]) < 1e-5
    assert _rel(local[1, :80], full[1, :80]) < 1e-5


def test_change_attention_model_validates():
    model = _model()
    with pytest.raises(ValueError, match="rel_pos_local_attn"):
        model.change_attention_model("rel_pos_local_attn", [0, 0])
    with pytest.raises(ValueError, match="not supported"):
        model.change_attention_model("abs_pos")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"att_context_style": "chunked_limited_with_rc"}, "chunked_limited_with_rc"),
        ({"subsampling": "vggnet"}, "vggnet"),
        ({"self_attention_model": "abs_pos"}, "abs_pos"),
        ({"conv_norm_type": "group_norm"}, "group_norm"),
        ({"att_context_style": "chunked_limited"}, "chunked_limited"),
        ({"reduction": "pooling"}, "reduction"),
        ({"some_future_option": 1}, "some_future_option"),
        ({"_target_": "nemo.collections.asr.modules.SqueezeformerEncoder"}, "SqueezeformerEncoder"),
        ({"d_model": 65}, "divisible"),
    ],
)
def test_unsupported_encoder_options_are_named(option, message):
    with pytest.raises(ValueError, match=message):
        ConformerConfig.from_nemo({**SMALL, **option})


def test_training_only_options_are_accepted():
    config = ConformerConfig.from_nemo({**SMALL, "dropout": 0.1, "stochastic_depth_drop_prob": 0.2})
    assert config.d_model == 64


def test_multi_lookahead_contexts_use_the_first():
    config = ConformerConfig.from_nemo({**SMALL, "att_context_size": [[70, 13], [70, 6], [70, 1]]})
    assert config.att_context == (70, 13)
    assert len(config.att_context_sizes) == 3


def test_from_model_dir_reads_a_converted_directory(tmp_path):
    from pathlib import Path

    from nemo_mlx_convert import convert_nemo

    fixture = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "models" / "rnnt.nemo"
    convert_nemo(fixture, tmp_path / "m")
    encoder = Conformer.from_model_dir(tmp_path / "m")
    assert encoder.config.subsampling == "striding"
    out, lengths = encoder(mx.random.normal((1, 100, encoder.config.feat_in)))
    assert lengths.tolist() == [25]
    assert out.shape == (1, 25, encoder.config.d_model)


def test_full_attention_in_query_groups_equals_one_pass():
    """Long inputs attend in groups of query rows (linear memory); the result must not change."""
    model = _model()
    features = mx.random.normal((2, 1200, 80))
    lengths = mx.array([1200, 700])
    whole, _ = model(features, lengths)
    for layer in model.layers:
        layer.self_attn.score_budget = 2 * 4 * 150 * 64  # 64 query rows at a time: 3 groups
    grouped, _ = model(features, lengths)
    assert _rel(grouped[0], whole[0]) < 1e-6
    assert _rel(grouped[1, :88], whole[1, :88]) < 1e-6


@pytest.mark.parametrize("context", [(5, 5), (7, 3)])
def test_local_attention_in_block_groups_equals_one_pass(context):
    """Long inputs attend in groups of query blocks (bounded memory); the result must not
    change, for symmetric and asymmetric (NeMo's position placement) windows, with padding."""
    model = _model()
    features = mx.random.normal((2, 2100, 80))  # 263 encoder frames: 5 blocks of 64
    lengths = mx.array([2100, 1500])
    model.change_attention_model("rel_pos_local_attn", list(context))
    whole, _ = model(features, lengths)
    width = 64 + sum(context)
    for layer in model.layers:
        layer.self_attn.score_budget = 2 * 4 * 64 * width * 2  # 2 blocks at a time: 3 groups
    grouped, _ = model(features, lengths)
    assert _rel(grouped[0], whole[0]) < 1e-6
    assert _rel(grouped[1, :188], whole[1, :188]) < 1e-6


def test_symmetric_positions_project_as_the_interleaved_table():
    """The split projection (sin/cos halves of positions >= 0) and the quantised layers'
    fallback (the rebuilt table) both equal linear_pos applied to NeMo's interleaved
    sinusoid table of positions -(T-1) ... T-1."""
    from mlx_conformer.attention import RelPositionAttention
    from mlx_conformer.positional import RelativePositions, sinusoids

    time, d_model, heads = 37, 64, 4
    attention = RelPositionAttention(d_model, heads)
    positions = RelativePositions(d_model)(time)
    table = mx.array(sinusoids(np.arange(-(time - 1), time), d_model))
    np.testing.assert_allclose(np.array(positions.ascending_table()), np.array(table), atol=1e-6)
    expected = attention.linear_pos(table)
    split = attention._ascending_positions(positions)
    assert split.shape == (2 * time - 1, d_model)
    np.testing.assert_allclose(np.array(split), np.array(expected), rtol=1e-5, atol=1e-5)


def test_a_layer_compiles_with_its_attention_in_query_groups():
    """Query groups are ordered by data dependencies, not `mx.eval`, so `mx.compile` can
    trace a layer whose attention runs in several groups; the result does not change."""
    model = _model()
    layer = model.layers[0]
    layer.self_attn.score_budget = 4 * 300 * 64  # 64 query rows at a time: 5 groups
    x = mx.random.normal((1, 300, 64))
    positions = model._positions(300)
    expected = layer(x, positions, None, None)
    compiled = mx.compile(lambda inputs: layer(inputs, positions, None, None))
    assert _rel(compiled(x), expected) < 1e-6


def test_default_context_must_be_one_the_model_was_trained_with():
    model = _model(att_context_size=[[70, 13], [70, 1]], att_context_style="chunked_limited")
    model.set_default_att_context_size([70, 1])
    assert model.config.att_context_sizes == ((70, 1), (70, 13))
    with pytest.raises(ValueError, match=r"\[70, 2\] is not one the model was trained with"):
        model.set_default_att_context_size([70, 2])


def test_packed_rows_equal_the_padded_batch(monkeypatch):
    """On the CPU a long padded batch runs its layers over packed rows (`packing`): the same
    numbers on every valid frame as the padded batch, zeros on padded frames, and NaN in
    padded frames reaches nothing."""
    model = _model()
    lengths = mx.array([190, 150, 131, 40])
    x = mx.random.normal((4, 190, 64))
    padded_rows = mx.arange(190)[None, :, None] >= lengths[:, None, None]
    x = mx.where(padded_rows, mx.nan, x)
    assert model._packing(x, lengths, None, None) is not None
    packed, _ = model(x, lengths, pre_encoded=True)
    monkeypatch.setattr(model, "_packing", lambda *args: None)
    padded, _ = model(mx.where(padded_rows, 0.0, x), lengths, pre_encoded=True)
    packed, padded = np.array(packed), np.array(padded)
    for i, n in enumerate(lengths.tolist()):
        np.testing.assert_array_equal(packed[i, :n], padded[i, :n])
        assert np.all(packed[i, n:] == 0.0)
