"""`map_module_state`: one bare NeMo module's state dict, mapped as the converter maps it."""

from __future__ import annotations

import numpy as np
import pytest

from nemo_mlx_convert import ConversionError, map_module_state, map_state_dict
from nemo_mlx_convert.mapping import encoder_problem

RNNT = "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel"


def test_module_state_maps_as_the_whole_model_does():
    rng = np.random.default_rng(0)
    state = {
        "pre_encode.conv.0.weight": rng.standard_normal((4, 1, 3, 3)),
        "layers.0.conv.depthwise_conv.weight": rng.standard_normal((8, 1, 9)),
        "layers.0.conv.batch_norm.running_mean": rng.standard_normal(8),
        "layers.0.conv.batch_norm.num_batches_tracked": np.array(3),
        "layers.0.self_attn.linear_q.weight": rng.standard_normal((8, 8)),
    }
    mapped = map_module_state(state, "encoder.")
    whole = map_state_dict({f"encoder.{k}": v for k, v in state.items()}, RNNT).tensors
    assert mapped.keys() == {k.removeprefix("encoder.") for k in whole}
    assert "layers.0.conv.batch_norm.num_batches_tracked" not in mapped
    for name, array in mapped.items():
        np.testing.assert_array_equal(array, whole[f"encoder.{name}"])
    assert mapped["pre_encode.conv.0.weight"].shape == (4, 3, 3, 1)  # channels-last
    assert mapped["layers.0.conv.depthwise_conv.weight"].shape == (8, 9, 1)


PROMPT_RNNT = "nemo.collections.asr.models.rnnt_bpe_models_prompt.EncDecRNNTBPEModelWithPrompt"


def test_a_prompt_models_projection_keeps_its_names_and_only_there():
    """`prompt_kernel.{0,2}` (Nemotron 3.5 ASR's language projection) pass unchanged for the
    prompt classes; a plain transducer holding them is refused, as NeMo's strict load does."""
    rng = np.random.default_rng(0)
    state = {
        "prompt_kernel.0.weight": rng.standard_normal((16, 8 + 4)),
        "prompt_kernel.0.bias": rng.standard_normal(16),
        "prompt_kernel.2.weight": rng.standard_normal((8, 16)),
        "prompt_kernel.2.bias": rng.standard_normal(8),
    }
    mapped = map_state_dict(state, PROMPT_RNNT).tensors
    assert mapped.keys() == state.keys()
    for name, array in state.items():
        np.testing.assert_array_equal(mapped[name], array)
    with pytest.raises(ConversionError, match="unsupported model variant"):
        map_state_dict(state, RNNT)


FRAME_VAD = "nemo.collections.asr.models.classification_models.EncDecFrameClassificationModel"


def test_a_frame_vad_model_keeps_its_names_with_convolutions_channels_last():
    rng = np.random.default_rng(0)
    state = {
        "encoder.encoder.0.mconv.0.conv.weight": rng.standard_normal((8, 1, 11)),
        "encoder.encoder.1.mconv.1.conv.weight": rng.standard_normal((4, 8, 1)),
        "encoder.encoder.1.mconv.2.running_var": rng.standard_normal(4),
        "encoder.encoder.1.res.0.0.conv.weight": rng.standard_normal((4, 8, 1)),
        "encoder.encoder.1.res.0.1.num_batches_tracked": np.array(3),
        "decoder.layer0.weight": rng.standard_normal((2, 4)),
        "loss.weight": np.ones(2),
    }
    mapped = map_state_dict(state, FRAME_VAD)
    assert mapped.tensors["encoder.encoder.0.mconv.0.conv.weight"].shape == (8, 11, 1)
    assert mapped.tensors["encoder.encoder.1.res.0.0.conv.weight"].shape == (4, 1, 8)
    assert mapped.tensors["decoder.layer0.weight"].shape == (2, 4)
    assert set(mapped.dropped) == {"encoder.encoder.1.res.0.1.num_batches_tracked", "loss.weight"}
    with pytest.raises(ConversionError, match="unsupported model variant"):
        map_state_dict({"encoder.layers.0.norm_out.weight": np.ones(2)}, FRAME_VAD)


def test_each_class_names_the_encoder_it_is_converted_with():
    conformer = {"encoder": {"_target_": "nemo.collections.asr.modules.ConformerEncoder"}}
    convasr = {"encoder": {"_target_": "nemo.collections.asr.modules.ConvASREncoder"}}
    assert encoder_problem(convasr, FRAME_VAD) is None
    assert "supported: ConvASREncoder" in encoder_problem(conformer, FRAME_VAD)
    assert "QuartzNet" in encoder_problem(convasr, RNNT)


SORTFORMER = "nemo.collections.asr.models.sortformer_diar_models.SortformerEncLabelModel"


def test_sortformer_transformer_takes_the_seq2seq_layer_names():
    """Sortformer's Transformer encoder layers are renamed to mlx-diarization's (whose attention
    and feed-forward are mlx-seq2seq-decoder's); the head keeps NeMo's names, and the
    inference-unused `hidden_to_spks` is dropped with a reason."""
    one = np.ones((2, 2))
    state = {
        "transformer_encoder.layers.0.first_sub_layer.query_net.weight": one,
        "transformer_encoder.layers.0.first_sub_layer.out_projection.bias": one,
        "transformer_encoder.layers.1.second_sub_layer.dense_in.weight": one,
        "transformer_encoder.layers.1.layer_norm_2.weight": one,
        "sortformer_modules.encoder_proj.weight": one,
        "sortformer_modules.single_hidden_to_spks.bias": one,
        "sortformer_modules.hidden_to_spks.weight": one,
    }
    mapped = map_state_dict(state, SORTFORMER)
    assert set(mapped.tensors) == {
        "transformer_encoder.layers.0.self_attn.query.weight",
        "transformer_encoder.layers.0.self_attn.out.bias",
        "transformer_encoder.layers.1.ffn.dense_in.weight",
        "transformer_encoder.layers.1.layer_norm_2.weight",
        "sortformer_modules.encoder_proj.weight",
        "sortformer_modules.single_hidden_to_spks.bias",
    }
    assert set(mapped.dropped) == {"sortformer_modules.hidden_to_spks.weight"}
    with pytest.raises(ConversionError, match="unsupported model variant"):
        map_state_dict({"transformer_encoder.layers.0.first_sub_layer.query_net.weight": one}, RNNT)
