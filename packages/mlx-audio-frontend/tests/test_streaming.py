"""`StreamingLogMel`: features of audio arriving in pieces equal the offline `LogMel`'s."""

from __future__ import annotations

import numpy as np
import pytest

from mlx_audio_frontend import FixedNormalization, LogMel, LogMelConfig
from mlx_audio_frontend.streaming import StreamingLogMel

pytestmark = pytest.mark.usefixtures("frontend_path")

FIXED = FixedNormalization(mean=tuple(np.linspace(-9, -5, 80)), std=tuple(np.linspace(1, 3, 80)))
VARIANTS = {
    "na": {"normalize": None},
    "fixed": {"normalize": FIXED},
    "per_feature": {"normalize": "per_feature"},  # streamed un-normalised
    "exact_pad": {"normalize": None, "exact_pad": True, "win_length": 320},
    "no_preemph": {"normalize": None, "preemph": None, "mag_power": 1.0},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("piece", [777, 160, 4000])
def test_streamed_features_equal_offline(variant, piece, frontend_path):
    options = {"n_mels": 80, "win_length": 400, "pad_to": 0, **VARIANTS[variant]}
    config = LogMelConfig(**options)
    rng = np.random.default_rng(3)
    samples = (rng.standard_normal(23_456) * np.linspace(0.001, 0.3, 23_456)).astype(np.float32)
    samples[5000:7000] = 0.0  # a silent stretch: near-guard log-mel bins
    stream = StreamingLogMel(config)
    parts = [stream.add(samples[i : i + piece]) for i in range(0, len(samples), piece)]
    streamed = np.concatenate([*(np.array(p) for p in parts), np.array(stream.finish())])
    offline_config = config if stream.normalized else LogMelConfig(**{**options, "normalize": None})
    offline, lengths = LogMel(offline_config)(samples)
    assert streamed.shape == offline.shape[1:]
    # the native pass computes each frame alone: the same numbers however the audio came
    tolerance = 0.0 if frontend_path == "native" else 1e-5
    np.testing.assert_allclose(streamed, np.array(offline[0]), rtol=0, atol=tolerance)
    assert np.all(streamed[int(lengths[0]) :] == config.pad_value)
