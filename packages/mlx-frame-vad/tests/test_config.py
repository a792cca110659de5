"""`from_nemo` reads what inference needs and refuses, in one line, what it does not run."""

from __future__ import annotations

import pytest

from mlx_frame_vad import ConvASRConfig, FrameVADConfig, JasperBlockConfig, MLPConfig

BLOCK = {"filters": 8, "repeat": 2, "kernel": [11], "stride": [1], "dilation": [1],
         "dropout": 0.0, "residual": True, "separable": True}  # fmt: skip


def test_kernel_size_factor_rounds_to_an_odd_kernel_as_nemo():
    assert JasperBlockConfig.from_nemo({**BLOCK, "kernel_size_factor": 0.5}, 0).kernel == 5
    assert (
        JasperBlockConfig.from_nemo({**BLOCK, "kernel": [13], "kernel_size_factor": 0.5}, 0).kernel
        == 7
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [({"se": True}, "'se'"), ({"residual_dense": True}, "'residual_dense'"),
     ({"future_context": 2}, "'future_context'"), ({"heads": 4}, "'heads'"),
     ({"stride": [2], "dilation": [2]}, "stride and dilation"), ({"colour": 1}, "'colour'")],
)  # fmt: skip
def test_unsupported_blocks_are_refused_by_name(extra, message):
    with pytest.raises(ValueError, match=message):
        JasperBlockConfig.from_nemo({**BLOCK, **extra}, 3)


def test_encoder_and_head_refusals():
    with pytest.raises(ValueError, match="ConformerEncoder"):
        ConvASRConfig.from_nemo({"_target_": "x.ConformerEncoder", "feat_in": 4, "jasper": [BLOCK]})
    with pytest.raises(ValueError, match="'group'"):
        ConvASRConfig.from_nemo({"feat_in": 4, "jasper": [BLOCK], "normalization_mode": "group"})
    assert MLPConfig.from_nemo({"hidden_size": 8, "num_classes": -1}, labels=2).num_classes == 2
    with pytest.raises(ValueError, match="ConvASRDecoderClassification"):
        MLPConfig.from_nemo({"_target_": "a.ConvASRDecoderClassification", "hidden_size": 8}, 2)


def test_frame_seconds_is_the_feature_hop_times_the_encoder_stride():
    cfg = {
        "labels": ["0", "1"],
        "preprocessor": {"window_size": 0.025, "window_stride": 0.01, "features": 16,
                         "n_fft": 512, "normalize": "None", "pad_to": 2},
        "encoder": {"feat_in": 16, "jasper": [{**BLOCK, "stride": [2], "residual": False}]},
        "decoder": {"hidden_size": 8, "num_classes": -1, "num_layers": 1, "log_softmax": False},
    }  # fmt: skip
    assert FrameVADConfig.from_nemo(cfg).frame_seconds == 0.02
    with pytest.raises(ValueError, match="crop_or_pad_augment"):
        FrameVADConfig.from_nemo({**cfg, "crop_or_pad_augment": {"audio_length": 1.0}})
