"""LogMelConfig.from_nemo on the preprocessor sections of NVIDIA's released configs."""

from __future__ import annotations

import pytest

from mlx_audio_frontend import FixedNormalization, LogMelConfig

# The `preprocessor` section of nvidia/parakeet-tdt-0.6b-v2's model_config.yaml.
PARAKEET_TDT_V2 = {
    "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
    "sample_rate": 16000,
    "normalize": "per_feature",
    "window_size": 0.025,
    "window_stride": 0.01,
    "window": "hann",
    "features": 128,
    "n_fft": 512,
    "log": True,
    "frame_splicing": 1,
    "dither": 1.0e-05,
    "pad_to": 0,
    "pad_value": 0.0,
}


def test_parakeet_preprocessor():
    config = LogMelConfig.from_nemo(PARAKEET_TDT_V2)
    assert (config.win_length, config.hop_length, config.n_fft, config.n_mels) == (
        400,
        160,
        512,
        128,
    )
    assert config.normalize == "per_feature"
    assert config.pad_to == 0
    assert config.preemph == 0.97  # NeMo's default when the config leaves it out
    assert config.log_zero_guard_value == 2**-24


def test_window_in_samples_and_default_n_fft():
    config = LogMelConfig.from_nemo({"n_window_size": 320, "n_window_stride": 160, "features": 64})
    assert (config.win_length, config.hop_length, config.n_fft) == (320, 160, 512)


def test_unknown_normalize_means_none_and_fixed_is_kept():
    assert LogMelConfig.from_nemo({"normalize": "NA"}).normalize is None
    fixed = LogMelConfig.from_nemo(
        {"normalize": {"fixed_mean": [1.0, 2.0], "fixed_std": [3.0, 4.0]}}
    )
    assert fixed.normalize == FixedNormalization((1.0, 2.0), (3.0, 4.0))


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"_target_": "nemo.collections.asr.modules.AudioToMFCCPreprocessor"}, "not supported"),
        ({"window_size": 0.025, "n_window_size": 400}, "both"),
        ({"some_new_option": 1}, "some_new_option"),
        ({"window": "kaiser"}, "kaiser"),
        ({"pad_to": "max"}, "pad_to"),
        ({"log_zero_guard_type": "floor"}, "log_zero_guard_type"),
        ({"exact_pad": True, "n_window_stride": 161}, "even"),
    ],
)
def test_bad_configs_name_the_problem(cfg, message):
    with pytest.raises(ValueError, match=message):
        LogMelConfig.from_nemo(cfg)
