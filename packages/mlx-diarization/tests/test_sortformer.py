"""The package's own invariants; NeMo parity is the root `tests/test_sortformer_checkpoints.py`."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_diarization import (
    LiveDiarization,
    PostProcessing,
    Sortformer,
    SortformerConfig,
    speaker_turns,
)
from mlx_diarization.speaker_cache import compress
from mlx_diarization.streaming import feature_chunks, stream_probabilities

NEMO_CONFIG = {
    "max_num_of_spks": 4,
    "encoder": {"feat_in": 16, "n_layers": 1, "d_model": 32, "n_heads": 4,
                "subsampling": "dw_striding", "subsampling_factor": 8,
                "subsampling_conv_channels": 8, "conv_kernel_size": 9},
    "transformer_encoder": {"num_layers": 1, "hidden_size": 16, "inner_size": 32,
                            "num_attention_heads": 2},
    "sortformer_modules": {"spkcache_len": 16, "fifo_len": 4, "chunk_len": 3,
                           "spkcache_update_period": 5, "chunk_left_context": 1,
                           "chunk_right_context": 2},
}  # fmt: skip


@pytest.fixture(scope="module")
def model() -> Sortformer:
    mx.random.seed(0)
    return Sortformer(SortformerConfig.from_nemo(NEMO_CONFIG))


def test_unknown_keys_are_refused_by_name():
    for section, key in (("transformer_encoder", "num_kv_heads"), ("sortformer_modules", "x")):
        config = {**NEMO_CONFIG, section: {**NEMO_CONFIG[section], key: 1}}
        with pytest.raises(ValueError, match=repr(key)):
            SortformerConfig.from_nemo(config)
    with pytest.raises(ValueError, match="async_streaming"):
        SortformerConfig.from_nemo({**NEMO_CONFIG, "async_streaming": True})


def test_one_chunk_without_cache_is_the_offline_forward(model):
    """A chunk that holds the whole input, with no cache yet, sees what offline sees."""
    features = mx.random.normal((1, 200, 16))
    offline = np.array(model(features, mx.array([200]))[0])
    config = model.config.streaming.with_chunks(chunk_len=100)
    streamed = stream_probabilities(model, features, config)
    np.testing.assert_allclose(streamed, offline, rtol=1e-5, atol=1e-6)


def test_streaming_gives_one_output_per_subsampled_frame(model):
    features = mx.random.normal((1, 397, 16))
    preds = stream_probabilities(model, features, model.config.streaming)
    offline = model(features, mx.array([397]))
    assert preds.shape == tuple(offline.shape[1:]) == (50, 4)


def test_live_steps_are_the_streaming_chunks_without_context():
    """Live chunks fed one by one (no left/right context) are what the offline streaming
    pass computes with zero context and the same chunks; only a streaming model streams."""
    mx.random.seed(1)
    model = Sortformer(SortformerConfig.from_nemo({**NEMO_CONFIG, "streaming_mode": True}))
    config = model.config.streaming.with_chunks(chunk_left_context=0, chunk_right_context=0)
    features = mx.random.normal((1, 203, 16))
    whole = stream_probabilities(model, features, config)
    live = LiveDiarization.start(model, config)
    size = config.chunk_len * 8
    parts = [live.step(features[0, i : i + size]) for i in range(0, 203, size)]
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(live.probabilities, np.concatenate(parts))
    with pytest.raises(ValueError, match=r"\(frames, 16\)"):
        live.step(np.zeros((24, 8), np.float32))


def test_live_needs_a_streaming_model(model):
    with pytest.raises(ValueError, match="streaming Sortformer"):
        LiveDiarization.start(model, model.config.streaming)


def test_feature_chunks_carry_nemo_context():
    config = SortformerConfig.from_nemo(NEMO_CONFIG).streaming
    chunks = list(feature_chunks(60, config, 8))
    # chunks of 3 x 8 feature frames, 8 frames of left context after the first, 16 of right
    assert chunks == [(0, 24, 0, 16), (24, 48, 8, 12), (48, 60, 8, 0)]


def test_compressed_cache_keeps_spkcache_len_frames_ordered_by_speaker():
    config = SortformerConfig.from_nemo(NEMO_CONFIG).streaming
    rng = np.random.default_rng(0)
    frames = 40
    embeddings = rng.normal(size=(frames, 8)).astype(np.float32)
    preds = np.zeros((frames, 4), np.float32)
    preds[:20, 0], preds[20:, 1] = 0.9, 0.8  # two speakers, one after the other
    preds += rng.uniform(0, 0.05, preds.shape).astype(np.float32)
    silence = np.full((8,), 7.0, np.float32)
    cache, cache_preds = compress(embeddings, preds, silence, config)
    assert cache.shape == (16, 8)
    assert cache_preds.shape == (16, 4)
    silent = np.all(cache == silence, axis=1)
    assert np.all(cache_preds[silent] == 0)
    kept = cache_preds[~silent].argmax(axis=1)
    assert list(kept) == sorted(kept)
    assert set(kept) == {0, 1}


def test_turns_follow_nemo_binarization():
    preds = np.zeros((6, 2), np.float32)
    preds[1:3, 0] = 0.7  # frames 1-2: 10 ms frames 8 .. 23
    preds[4:, 1] = 0.9  # to the end: NeMo ends the last segment at the last 10 ms frame
    lines = [t.line for t in speaker_turns(preds, 8)]
    assert lines == ["0.080 0.240 speaker_0", "0.320 0.470 speaker_1"]
    padded = speaker_turns(preds, 8, PostProcessing(pad_onset=0.1, pad_offset=0.05))
    assert [t.line for t in padded] == ["0.000 0.290 speaker_0", "0.220 0.520 speaker_1"]
