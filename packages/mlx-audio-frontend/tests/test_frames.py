"""Frame arithmetic against the lengths NeMo reported in the fixtures."""

from __future__ import annotations

import pytest

from mlx_audio_frontend import (
    LogMelConfig,
    conv_stack_length,
    feature_frames,
    stft_frames,
    subsampling_stages,
)


def test_feature_and_stft_frames_equal_nemo(nemo_meta):
    for entry in nemo_meta["configs"].values():
        config = LogMelConfig.from_nemo(entry["preprocessor"])
        for clip, info in entry["clips"].items():
            n = nemo_meta["clips"][clip]["num_samples"]
            assert (
                feature_frames(n, config.hop_length, config.n_fft, config.exact_pad)
                == info["length"]
            )
            frames = stft_frames(n, config.hop_length, config.n_fft, config.exact_pad)
            pad_to = config.pad_to
            padded = -(-frames // pad_to) * pad_to if pad_to else frames
            assert padded == info["frames"], (clip, entry["preprocessor"])


# (feature frames, factor, causal) -> encoder frames, as NeMo 3.0.0's
# nemo.collections.asr.parts.submodules.subsampling.calc_length returned them.
NEMO_CALC_LENGTH = [
    ((309, 8, False), 39),
    ((6, 8, False), 1),
    ((150, 4, False), 38),
    ((0, 8, False), 0),
    ((1, 8, False), 1),
    ((2, 8, False), 1),
    ((9, 2, True), 5),
]


@pytest.mark.parametrize(("args", "expected"), NEMO_CALC_LENGTH)
def test_subsampling_lengths_follow_nemo_calc_length(args, expected):
    frames, factor, causal = args
    assert conv_stack_length(frames, subsampling_stages(factor, causal=causal)) == expected


def test_subsampling_factor_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        subsampling_stages(6)
