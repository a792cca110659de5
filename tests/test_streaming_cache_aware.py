"""Cache-aware streaming on NeMo's fixture model: encoder steps and token ids equal NeMo's.

References come from tests/reference/make_streaming_fixtures.py, which runs NeMo's own
cache-aware streaming simulation (`CacheAwareStreamingAudioBuffer` + `conformer_stream_step`)
for each lookahead of a hybrid RNNT-CTC model with causal subsampling, chunked_limited
attention and causal convolutions.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from mlx_audio_frontend import LogMel, LogMelConfig, load_audio
from mlx_audio_frontend.streaming import StreamingLogMel
from mlx_conformer import Conformer
from mlx_conformer.streaming import (
    CacheAwareStreamer,
    StreamCache,
    cache_aware_step,
    dense_forward,
    streaming_config,
)
from mlx_ctc_decoder import CTCHead
from mlx_ctc_decoder.streaming import GreedyCTCStream
from mlx_transducer import Transducer
from mlx_transducer.streaming import GreedyStream
from nemo_mlx_convert import convert_nemo, open_model_directory

ROOT = Path(__file__).resolve().parent
MODEL = ROOT / "fixtures" / "models" / "streaming_hybrid"
AUDIO = ROOT / "fixtures" / "audio"


class Streaming:
    def __init__(self, directory: Path) -> None:
        self.meta = json.loads(MODEL.with_suffix(".json").read_text())
        with np.load(MODEL.with_suffix(".npz")) as data:
            self.arrays = {k: data[k] for k in data.files}
        model_dir = open_model_directory(directory)
        cfg = model_dir.nemo_config
        weights = mx.load(str(model_dir.weights))
        self.frontend_config = LogMelConfig.from_nemo(cfg["preprocessor"])
        self.encoder = Conformer.from_nemo(cfg, weights)
        self.transducer = Transducer.from_nemo(cfg, weights)
        self.ctc = CTCHead.from_nemo(cfg, weights, model_dir.model_class)


def _rel(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(ours - ref) / max(np.linalg.norm(ref), 1e-12))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Streaming:
    out = tmp_path_factory.mktemp("converted") / "streaming_hybrid"
    convert_nemo(MODEL.with_suffix(".nemo"), out)
    return Streaming(out)


def contexts(model):
    return list(model.meta["contexts"].items())


def test_config_accepts_cache_aware_encoder(model):
    cfg = model.encoder.config
    assert cfg.causal_downsampling
    assert cfg.att_context_style == "chunked_limited"
    assert cfg.att_context_sizes == ((8, 3), (8, 1), (8, 0))
    assert cfg.conv_context_size == (8, 0)


def test_streaming_config_equals_nemo(model):
    for _, entry in contexts(model):
        ours = streaming_config(model.encoder, entry["att_context_size"])
        nemo = entry["streaming_cfg"]
        assert list(ours.chunk_size) == nemo["chunk_size"]
        assert list(ours.shift_size) == nemo["shift_size"]
        assert list(ours.pre_encode_cache_size) == nemo["pre_encode_cache_size"]
        for key in ("cache_drop_size", "last_channel_cache_size", "valid_out_len",
                    "drop_extra_pre_encoded"):  # fmt: skip
            assert getattr(ours, key) == nemo[key], key


def test_each_step_equals_nemo(model):
    """The streamer's steps, fed NeMo's features, give NeMo's per-step encoder output."""
    for key, entry in contexts(model):
        streaming = streaming_config(model.encoder, entry["att_context_size"])
        for clip, expected in entry["clips"].items():
            stem = Path(clip).stem
            streamer = CacheAwareStreamer(model.encoder, streaming)
            out = np.array(
                mx.concatenate([streamer.add(model.arrays[f"{stem}/features"]), streamer.finish()])
            )
            ref = model.arrays[f"{key}/{stem}/encoder"]
            assert out.shape == ref.shape, (key, clip)
            assert _rel(out, ref) <= 1e-4, (key, clip)
            assert streamer._step == len(expected["steps"]), (key, clip)


def test_features_in_small_pieces_give_the_same_steps(model):
    """Feature frames fed one at a time: the same chunks run, the same outputs come out."""
    key, entry = contexts(model)[1]
    streaming = streaming_config(model.encoder, entry["att_context_size"])
    features = model.arrays["speech_16k_mono/features"]
    streamer = CacheAwareStreamer(model.encoder, streaming)
    parts = [streamer.add(features[i : i + 1]) for i in range(len(features))]
    out = np.array(mx.concatenate([*parts, streamer.finish()]))
    assert _rel(out, model.arrays[f"{key}/speech_16k_mono/encoder"]) <= 1e-4


def test_cache_length_counts_real_frames(model):
    _, entry = contexts(model)[0]
    streaming = streaming_config(model.encoder, entry["att_context_size"])
    features = mx.array(model.arrays["speech_16k_mono/features"][: streaming.chunk_size[0]])[None]
    cache = StreamCache.initial(model.encoder, streaming)
    _, lengths, cache = cache_aware_step(
        model.encoder, features, mx.array([features.shape[1]]), cache, streaming,
        drop_extra_pre_encoded=0,
    )  # fmt: skip
    nemo_steps = entry["clips"]["speech_16k_mono.wav"]["steps"]
    assert int(lengths[0]) == nemo_steps[0]["encoded_frames"]
    assert int(cache.last_channel_len[0]) == nemo_steps[0]["cache_last_channel_len"]


def test_dense_forward_equals_nemo_offline(model):
    for key, entry in contexts(model):
        for clip in entry["clips"]:
            stem = Path(clip).stem
            features = mx.array(model.arrays[f"{stem}/features"])[None]
            out, _ = dense_forward(model.encoder, features, None, entry["att_context_size"])
            ref = model.arrays[f"{key}/{stem}/offline_encoder"]
            assert _rel(np.array(out[0]), ref) <= 1e-4, (key, clip)


def stream_clip(model, clip, context, piece=1234):
    """Audio in pieces -> streaming features -> cache-aware encoder -> both greedy heads."""
    samples = load_audio(AUDIO / clip)
    features = StreamingLogMel(model.frontend_config)
    streamer = CacheAwareStreamer(model.encoder, streaming_config(model.encoder, context))
    rnnt = GreedyStream(model.transducer)
    ctc = GreedyCTCStream(model.ctc.config.blank_id)

    def consume(frames):
        if frames.shape[0]:
            rnnt.feed(frames)
            ctc.feed(model.ctc(frames[None])[0])

    for start in range(0, len(samples), piece):
        consume(streamer.add(features.add(samples[start : start + piece])))
    consume(streamer.add(features.finish()))
    consume(streamer.finish())
    return rnnt, ctc


def test_streaming_token_ids_equal_nemo_for_each_lookahead(model):
    """From the audio files: ids (and RNNT frames) of both heads equal NeMo's streaming."""
    for _, entry in contexts(model):
        for clip, expected in entry["clips"].items():
            rnnt, ctc = stream_clip(model, clip, entry["att_context_size"])
            assert [t.id for t in rnnt.tokens] == expected["rnnt"]["ids"], (entry, clip)
            # frames counted from the stream's start, as NeMo's merged partial hypotheses
            assert [t.frame for t in rnnt.tokens] == expected["rnnt"]["frames"], clip
            assert ctc.alignment == expected["ctc"]["alignment"], clip
            assert [t.id for t in ctc.tokens] == expected["ctc"]["ids"], clip


def test_streaming_ids_grow_as_nemo_after_each_step(model):
    """RNNT ids after every step equal NeMo's partial hypotheses after that step."""
    _key, entry = contexts(model)[0]
    streaming = streaming_config(model.encoder, entry["att_context_size"])
    clip = "speech_24k.mp3"
    features = model.arrays[f"{Path(clip).stem}/features"]
    streamer = CacheAwareStreamer(model.encoder, streaming)
    rnnt = GreedyStream(model.transducer)
    after = []
    for i in range(len(features)):
        before = streamer._step
        frames = streamer.add(features[i : i + 1])
        rnnt.feed(frames)
        after += [[t.id for t in rnnt.tokens]] * (streamer._step - before)
    before = streamer._step
    rnnt.feed(streamer.finish())
    after += [[t.id for t in rnnt.tokens]] * (streamer._step - before)
    assert after == entry["clips"][clip]["rnnt"]["ids_after_step"]


def test_streamed_features_equal_offline(model):
    """Concatenated streaming features equal the offline front end's (<= 1e-4)."""
    frontend = LogMel(model.frontend_config)
    for clip in model.meta["contexts"]["8_3"]["clips"]:
        samples = load_audio(AUDIO / clip)
        features = StreamingLogMel(model.frontend_config)
        parts = [features.add(samples[i : i + 777]) for i in range(0, len(samples), 777)]
        streamed = np.concatenate([*(np.array(p) for p in parts), np.array(features.finish())])
        offline, _ = frontend(samples)
        assert streamed.shape == offline.shape[1:], clip
        np.testing.assert_allclose(streamed, np.array(offline[0]), rtol=0, atol=1e-4)
        # and NeMo's: un-normalised ("NA") log-mel of near-silent bins (log ~ -16) differs
        # from NeMo's by up to ~1e-5 relative, a little over 1e-4 absolute
        np.testing.assert_allclose(
            streamed, model.arrays[f"{Path(clip).stem}/features"], rtol=2e-5, atol=1e-4
        )


def test_a_copied_stream_looks_ahead_without_changing_the_original(model):
    """`copy()` (what `parakeet`'s tentative tail uses): feeding the copy leaves the
    original as it was, and the original fed the same frames gives the copy's tokens."""
    _key, entry = contexts(model)[0]
    streamer = CacheAwareStreamer(
        model.encoder, streaming_config(model.encoder, entry["att_context_size"])
    )
    features = model.arrays["speech_24k/features"]
    encoded = [streamer.add(features[i : i + 40]) for i in range(0, len(features), 40)]
    encoded = [e for e in encoded if e.shape[0]]
    half = len(encoded) // 2
    rnnt = GreedyStream(model.transducer)
    ctc = GreedyCTCStream(model.ctc.config.blank_id)
    for frames in encoded[:half]:
        rnnt.feed(frames)
        ctc.feed(model.ctc(frames[None])[0])
    before = ([t.id for t in rnnt.tokens], rnnt.frames_seen, list(ctc.alignment), list(ctc.tokens))
    ahead_rnnt, ahead_ctc = rnnt.copy(), ctc.copy()
    for frames in encoded[half:]:
        ahead_rnnt.feed(frames)
        ahead_ctc.feed(model.ctc(frames[None])[0])
    assert len(ahead_rnnt.tokens) > len(before[0])
    assert len(ahead_ctc.tokens) > len(before[3])
    assert ([t.id for t in rnnt.tokens], rnnt.frames_seen, ctc.alignment, ctc.tokens) == before
    for frames in encoded[half:]:
        rnnt.feed(frames)
        ctc.feed(model.ctc(frames[None])[0])
    assert rnnt.tokens == ahead_rnnt.tokens
    assert ctc.alignment == ahead_ctc.alignment
    assert ctc.tokens == ahead_ctc.tokens
