"""Live parity with NeMo: `ConvASREncoder` over MarbleNet-, QuartzNet- and Jasper-style blocks
(random weights and batch-norm statistics, a padded batch), and NeMo's VAD post-processing
over random probability sequences and settings."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_frame_vad import (
    MODEL_CLASS,
    ConvASRConfig,
    ConvASREncoder,
    PostProcessing,
    speech_segments,
)
from nemo_mlx_convert import map_module_state

pytestmark = pytest.mark.reference

torch = pytest.importorskip("torch", reason="live NeMo parity needs the `reference` group (torch)")
conv_asr = pytest.importorskip(
    "nemo.collections.asr.modules.conv_asr", reason="needs nemo_toolkit[asr]"
)
vad_utils = pytest.importorskip("nemo.collections.asr.parts.utils.vad_utils")


def _block(filters, repeat, kernel, **extra):
    return {"filters": filters, "repeat": repeat, "kernel": [kernel], "stride": [1],
            "dilation": [1], "dropout": 0.0, "residual": False, "separable": True, **extra}  # fmt: skip


ENCODERS = {
    "marblenet": {"activation": "relu", "jasper": [
        _block(32, 1, 11, stride=[2]), _block(16, 2, 13, residual=True),
        _block(32, 1, 29, dilation=[2]), _block(32, 1, 1, separable=False)]},
    "quartznet_stride_last": {"activation": "relu", "jasper": [
        _block(24, 1, 33, stride=[2]), _block(24, 3, 9, residual=True, stride=[2],
                                              stride_last=True, residual_mode="stride_add"),
        _block(16, 2, 7, residual=True, kernel_size_factor=0.5)]},
    "jasper_hardtanh": {"activation": "hardtanh", "jasper": [
        _block(16, 2, 5, separable=False, residual=True),
        _block(16, 2, 3, separable=False, residual=True, residual_mode="max")]},
}  # fmt: skip


@pytest.mark.parametrize("name", ENCODERS)
def test_convasr_encoder_equals_nemos(name):
    torch.manual_seed(0)
    cfg = {"feat_in": 20, "conv_mask": True, **ENCODERS[name]}
    nemo = conv_asr.ConvASREncoder(**cfg).eval()
    with torch.no_grad():
        for module in nemo.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    ours = ConvASREncoder(ConvASRConfig.from_nemo(cfg))
    state = {k: v.numpy() for k, v in nemo.state_dict().items()}
    mapped = map_module_state(state, "encoder.", MODEL_CLASS)
    ours.load_weights([(k, mx.array(v)) for k, v in mapped.items()], strict=True)

    features = torch.randn(3, 20, 83)
    lengths = torch.tensor([83, 60, 7])
    with torch.no_grad():
        expected, expected_len = nemo(audio_signal=features, length=lengths)
    got, got_len = ours(mx.array(features.numpy().transpose(0, 2, 1)), mx.array(lengths.numpy()))
    expected = expected.numpy().transpose(0, 2, 1)
    assert np.array(got_len).tolist() == expected_len.tolist()
    got = np.array(got)
    assert got.shape == expected.shape
    for b, n in enumerate(expected_len.tolist()):
        err = np.linalg.norm(got[b, :n] - expected[b, :n]) / np.linalg.norm(expected[b, :n])
        assert err <= 1e-5, (b, err)


def _nemo_segments(probs: np.ndarray, params: PostProcessing, frame: float) -> list[list[float]]:
    per_args = {"frame_length_in_sec": frame, **vars(params)}
    sequence = torch.from_numpy(probs)
    _, floats = vad_utils.prepare_gen_segment_table(sequence, per_args)
    table = vad_utils.generate_vad_segment_table_per_tensor(sequence, floats)
    return table[:, :2].tolist() if table.numel() else []


def test_post_processing_equals_nemos_on_random_sequences():
    rng = np.random.default_rng(0)
    for case in range(150):
        frames = int(rng.integers(1, 300))
        # smoothed noise: runs of speech and pauses of varied length
        raw = np.convolve(rng.standard_normal(frames + 9), np.ones(10) / 10, mode="valid")
        probs = (1 / (1 + np.exp(-4 * raw))).astype(np.float32)
        onset = float(rng.uniform(0.2, 0.8))
        params = PostProcessing(
            onset=onset,
            offset=float(rng.uniform(0.1, onset)),
            pad_onset=float(rng.choice([0.0, 0.05, 0.2, 0.5])),
            pad_offset=float(rng.choice([0.0, 0.1, 0.3, 0.5])),
            min_duration_on=float(rng.choice([0.0, 0.1, 0.25, 0.5])),
            min_duration_off=float(rng.choice([0.0, 0.1, 0.3, 0.6])),
            filter_speech_first=bool(rng.integers(2)),
        )
        frame = float(rng.choice([0.01, 0.02, 0.04]))
        ours = [[s.start, s.end] for s in speech_segments(probs, frame, params)]
        assert ours == _nemo_segments(probs, params, frame), (case, params)
