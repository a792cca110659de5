"""Log-mel features against NeMo's preprocessor outputs (tests/reference/make_feature_fixtures.py)."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from mlx_audio_frontend import LogMel, LogMelConfig, analysis_window, load_audio, mel_filterbank

FEATURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "features"
META = json.loads((FEATURES / "nemo_features.json").read_text())
CASES = [(name, clip) for name, entry in META["configs"].items() for clip in entry["clips"]]
BATCHED = [name for name, entry in META["configs"].items() if entry["batched"]]
TOLERANCE = 1e-4  # the design's contract: max abs diff in float32
pytestmark = pytest.mark.usefixtures("frontend_path")


@pytest.mark.parametrize(("config_name", "clip"), CASES)
def test_features_match_nemo(config_name, clip, nemo_arrays, audio_dir):
    entry = META["configs"][config_name]
    frontend = LogMel(LogMelConfig.from_nemo(entry["preprocessor"]))
    features, lengths = frontend(load_audio(audio_dir / clip))
    expected = nemo_arrays[f"{config_name}/{clip}"]
    assert features.dtype == mx.float32
    assert features.shape == (1, *expected.shape)
    assert int(lengths[0]) == entry["clips"][clip]["length"]
    np.testing.assert_allclose(np.array(features[0]), expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("config_name", BATCHED)
def test_padded_batch_matches_nemo_batch(config_name, nemo_arrays, audio_dir):
    entry = META["configs"][config_name]
    clips = list(entry["clips"])
    signals = [np.array(load_audio(audio_dir / clip)) for clip in clips]
    batch = np.zeros((len(signals), max(map(len, signals))), dtype=np.float32)
    for row, signal in zip(batch, signals, strict=True):
        row[: len(signal)] = signal
    frontend = LogMel(LogMelConfig.from_nemo(entry["preprocessor"]))
    features, lengths = frontend(batch, [len(s) for s in signals])
    assert features.shape[1] == entry["batch_frames"]
    for i, clip in enumerate(clips):
        expected = nemo_arrays[f"{config_name}/batched/{clip}"]
        assert int(lengths[i]) == entry["clips"][clip]["batched_length"]
        got = np.array(features[i])
        np.testing.assert_allclose(got[: len(expected)], expected, rtol=0, atol=TOLERANCE)
        assert np.all(got[len(expected) :] == entry["preprocessor"]["pad_value"])


@pytest.mark.parametrize("config_name", list(META["configs"]))
def test_filterbank_and_window_equal_nemo_buffers(config_name, nemo_arrays):
    config = LogMelConfig.from_nemo(META["configs"][config_name]["preprocessor"])
    fb = mel_filterbank(
        config.sample_rate,
        config.n_fft,
        config.n_mels,
        config.lowfreq,
        config.highfreq,
        config.mel_norm,
    )
    np.testing.assert_array_equal(fb, nemo_arrays[f"{config_name}/filterbank"])
    window = analysis_window(config.window, config.win_length)
    np.testing.assert_allclose(window, nemo_arrays[f"{config_name}/window"], rtol=0, atol=2.5e-7)


def test_blocked_stft_equals_single_pass(audio_dir):
    """Long inputs are cut into frame blocks; the result must not depend on the cut."""
    audio = load_audio(audio_dir / "silence_padded_16k.wav")
    config = LogMelConfig(n_mels=80, win_length=400, pad_to=0, normalize="per_feature")
    whole, whole_len = LogMel(config)(audio)
    blocked, blocked_len = LogMel(config, block_frames=37)(audio)
    assert int(whole_len[0]) == int(blocked_len[0])
    np.testing.assert_allclose(np.array(blocked), np.array(whole), rtol=0, atol=1e-6)


def test_batched_items_equal_unbatched_items(audio_dir):
    config = LogMelConfig(n_mels=128, win_length=400, pad_to=0)
    frontend = LogMel(config)
    short = load_audio(audio_dir / "odd_length_16k.wav")
    long = load_audio(audio_dir / "speech_16k_mono.wav")
    batch = mx.stack([mx.pad(short, [(0, long.shape[0] - short.shape[0])]), long])
    features, lengths = frontend(batch, [short.shape[0], long.shape[0]])
    alone, alone_len = frontend(short)
    assert int(lengths[0]) == int(alone_len[0])
    n = alone.shape[1]
    np.testing.assert_allclose(np.array(features[0, :n]), np.array(alone[0]), rtol=0, atol=1e-5)
    assert np.all(np.array(features[0, n:]) == 0.0)


def test_zero_length_item_gives_zero_valid_frames():
    frontend = LogMel(LogMelConfig(n_mels=80, win_length=400, pad_to=0))
    _, lengths = frontend(mx.zeros((2, 3200)), [3200, 0])
    assert lengths.tolist() == [20, 0]


def test_rejects_bad_shapes_and_lengths():
    frontend = LogMel(LogMelConfig(n_mels=80, win_length=400))
    with pytest.raises(ValueError, match="batch"):
        frontend(mx.zeros((2, 1600)), [1600])
    with pytest.raises(ValueError, match="shape"):
        frontend(mx.zeros((1, 2, 1600)))


def test_banded_mel_projection_equals_the_dense_one(audio_dir, monkeypatch):
    """A reference BLAS gets the mel projection band by band; the numbers are the dense ones."""
    import mlx_cpu_runtime

    audio = load_audio(audio_dir / "speech_16k_mono.wav")
    config = LogMelConfig(n_mels=128, win_length=400, pad_to=0, normalize="per_feature")
    dense = LogMel(config)
    reference = mlx_cpu_runtime.RuntimeStatus(platform="Linux", blas=None)
    monkeypatch.setattr(mlx_cpu_runtime, "status", lambda: reference)
    banded = LogMel(config)
    assert len(dense._bands) == 1
    assert len(banded._bands) == 16
    np.testing.assert_allclose(np.array(banded(audio)[0]), np.array(dense(audio)[0]), atol=1e-5)
