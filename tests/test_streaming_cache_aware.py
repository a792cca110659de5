"""Cache-aware streaming against NeMo's: encoder steps, token ids and the offline pass.

References come from NeMo's own cache-aware streaming simulation
(`CacheAwareStreamingAudioBuffer` + `conformer_stream_step`) for each lookahead:
- `streaming_hybrid` (tests/reference/make_streaming_fixtures.py): a tiny hybrid RNNT-CTC
  model with causal subsampling, chunked_limited attention and causal convolutions;
- the checkpoint fixtures (tests/reference/make_streaming_checkpoint_fixtures.py): NVIDIA's
  stt_en_fastconformer_hybrid_large_streaming_multi and nemotron-speech-streaming-en-0.6b
  configurations, sizes shrunk, every flag kept, left context 70 and lookaheads 13/6/1/0,
  in their published `chunked_limited` style and in the `regular` style (where NeMo streams
  a clip: it fails on clips whose last chunks are shorter than the regular lookahead);
  and parakeet_realtime_eou_120m-v1's (NeMo's end-of-utterance RNNT, left context 70 and
  its one lookahead, 1; `tests/test_end_of_utterance.py` holds its markers to NeMo's).
- nemotron-3.5-asr-streaming-0.6b (the same script): a language-prompt model
  (`EncDecRNNTBPEModelWithPrompt`), left context 56 and lookaheads 3/0/6/13 plus the model
  card's 1 (80/160/320/560/1120 ms chunks), in three target languages (`auto`, NeMo's
  default, `en-US`, `de-DE`): NeMo's `conformer_stream_step` after `set_inference_prompt`.
- NeMo classes no released checkpoint has, on a released checkpoint's config adapted to each
  as NeMo's example config of the class does (the same script): `hybrid_eou_streaming`
  (`EncDecHybridRNNTCTCBPEEOUModel`, parakeet_realtime_eou_120m-v1's with a CTC head),
  `hybrid_prompt_streaming` (`EncDecHybridRNNTCTCBPEModelWithPrompt`, nemotron-3.5's with a
  CTC head: both heads read the prompted frames) and `cache_aware_tdt_ctc_streaming`
  (stt_en_fastconformer_hybrid_large_streaming_multi's with a TDT transducer: NeMo's
  streamed ids, frames and durations per lookahead).
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from mlx_audio_frontend import LogMel, LogMelConfig, load_audio
from mlx_audio_frontend.streaming import StreamingLogMel
from mlx_conformer import Conformer, LanguagePrompt
from mlx_conformer.streaming import (
    CacheAwareStreamer,
    StreamCache,
    cache_aware_step,
    streaming_config,
)
from mlx_ctc_decoder import CTCHead
from mlx_ctc_decoder.streaming import GreedyCTCStream
from mlx_transducer import Transducer
from mlx_transducer.streaming import GreedyStream
from nemo_mlx_convert import convert_nemo, open_model_directory

ROOT = Path(__file__).resolve().parent
MODEL = ROOT / "fixtures" / "models" / "streaming_hybrid"
CHECKPOINTS = ROOT / "fixtures" / "checkpoints"
AUDIO = ROOT / "fixtures" / "audio"
MULTI = "stt_en_fastconformer_hybrid_large_streaming_multi"
NEMOTRON = "nemotron-speech-streaming-en-0.6b"
EOU = "parakeet_realtime_eou_120m-v1"
NEMOTRON35 = "nemotron-3.5-asr-streaming-0.6b"
HYBRID_EOU = "hybrid_eou_streaming"
HYBRID_PROMPT = "hybrid_prompt_streaming"
TDT = "cache_aware_tdt_ctc_streaming"
LANGUAGES = ("auto", "en-US", "de-DE")
# variant id -> (fixture path without suffix, attention style or None for the published one,
# a prompt model's target language or None)
VARIANTS = {
    "streaming_hybrid": (MODEL, None, None),
    MULTI: (CHECKPOINTS / MULTI, None, None),
    f"{MULTI}/regular": (CHECKPOINTS / MULTI, "regular", None),
    NEMOTRON: (CHECKPOINTS / NEMOTRON, None, None),
    f"{NEMOTRON}/regular": (CHECKPOINTS / NEMOTRON, "regular", None),
    **{f"{NEMOTRON35}/{lang}": (CHECKPOINTS / NEMOTRON35, None, lang) for lang in LANGUAGES},
    EOU: (CHECKPOINTS / EOU, None, None),
    HYBRID_EOU: (CHECKPOINTS / HYBRID_EOU, None, None),
    **{f"{HYBRID_PROMPT}/{lang}": (CHECKPOINTS / HYBRID_PROMPT, None, lang) for lang in LANGUAGES},
    TDT: (CHECKPOINTS / TDT, None, None),
}  # fmt: skip


class Streaming:
    """A fixture's converted model (encoder, transducer, CTC head if any, a prompt model's
    language projection) and NeMo's outputs.

    `style` "regular" takes the checkpoint fixture's `regular` references and builds the
    encoder with `att_context_style: regular` (the same weights). `language` takes a prompt
    model's references in that target language, and conditions the encoder output on it."""

    def __init__(
        self,
        fixture: Path,
        directory: Path,
        style: str | None = None,
        language: str | None = None,
    ) -> None:
        self.meta = json.loads(_file(fixture, ".json").read_text())
        with np.load(_file(fixture, ".npz")) as data:
            self.arrays = {k: data[k] for k in data.files}
        section = self.meta[style] if style else self.meta
        if language is not None:
            section = self.meta["languages"][language]
        self.language = language
        self.contexts = section["contexts"]
        self.prefix = f"{style}/" if style else ""
        model_dir = open_model_directory(directory)
        cfg = model_dir.nemo_config
        weights = mx.load(str(model_dir.weights))
        self.frontend_config = LogMelConfig.from_nemo(cfg["preprocessor"])
        if style:  # the same weights run in another attention style
            cfg = {**cfg, "encoder": {**cfg["encoder"], "att_context_style": style}}
        self.encoder = Conformer.from_nemo(cfg, weights)
        self.transducer = Transducer.from_nemo(cfg, weights)
        self.ctc = CTCHead.from_nemo(cfg, weights, model_dir.model_class)
        self.prompt = LanguagePrompt.from_nemo(cfg, weights)
        assert (self.prompt is not None) == (language is not None)

    def condition(self, frames: mx.array) -> mx.array:
        """Encoder frames (T, D) or (B, T, D) as the heads read them: conditioned on the
        target language for a prompt model (NeMo's `_apply_prompt_to_encoded`)."""
        if self.prompt is None or frames.shape[-2] == 0:
            return frames
        index = self.prompt.config.index(self.language)
        batched = frames if frames.ndim == 3 else frames[None]
        out = self.prompt(batched, index)
        return out if frames.ndim == 3 else out[0]

    def samples(self, clip: str) -> np.ndarray:
        """A clip's samples: a test clip, or one made of pieces of them (`clips[...]["pieces"]`)."""
        pieces = self.meta.get("clips", {}).get(clip, {}).get("pieces")
        if pieces is None:
            return np.array(load_audio(AUDIO / clip))
        return np.concatenate([np.array(load_audio(AUDIO / f))[a:b] for f, a, b in pieces])

    def features(self, clip: str) -> np.ndarray:
        return self.arrays[f"{Path(clip).stem}/features"]

    def reference(self, key: str, clip: str, kind: str = "encoder") -> np.ndarray:
        return self.arrays[f"{self.prefix}{key}/{Path(clip).stem}/{kind}"]

    def streamed(self):
        """(lookahead key, its entry, clip, NeMo's outputs) wherever NeMo streamed the clip."""
        for key, entry in self.contexts.items():
            for clip, expected in entry["clips"].items():
                if "steps" in expected:
                    yield key, entry, clip, expected

    def longest(self, entry) -> str:
        """The longest clip NeMo streamed with this lookahead."""
        clips = [c for c, e in entry["clips"].items() if "steps" in e]
        return max(clips, key=lambda c: entry["clips"][c]["num_samples"])


def _file(fixture: Path, suffix: str) -> Path:
    """A fixture's file (not `with_suffix`: a name such as `...-0.6b` has a dot)."""
    return fixture.parent / f"{fixture.name}{suffix}"


def _rel(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(ours - ref) / max(np.linalg.norm(ref), 1e-12))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Each fixture's `.nemo` converted once (a checkpoint's two styles share it)."""
    done: dict[Path, Path] = {}

    def get(fixture: Path) -> Path:
        if fixture not in done:
            done[fixture] = tmp_path_factory.mktemp("converted") / fixture.name
            convert_nemo(_file(fixture, ".nemo"), done[fixture])
        return done[fixture]

    return get


@pytest.fixture(scope="module", params=list(VARIANTS))
def model(request, converted) -> Streaming:
    fixture, style, language = VARIANTS[request.param]
    return Streaming(fixture, converted(fixture), style, language)


@pytest.fixture(scope="module")
def hybrid(converted) -> Streaming:
    """`streaming_hybrid`, for the tests that need its clips and both heads."""
    return Streaming(MODEL, converted(MODEL))


def contexts(model):
    return list(model.contexts.items())


def test_config_accepts_cache_aware_encoder(hybrid):
    cfg = hybrid.encoder.config
    assert cfg.causal_downsampling
    assert cfg.att_context_style == "chunked_limited"
    assert cfg.att_context_sizes == ((8, 3), (8, 1), (8, 0))
    assert cfg.conv_context_size == (8, 0)


@pytest.mark.parametrize("name", [MULTI, NEMOTRON])
def test_checkpoint_fixtures_keep_the_real_contexts(converted, name):
    """The checkpoint fixtures stream with the real left context and lookaheads."""
    cfg = Streaming(CHECKPOINTS / name, converted(CHECKPOINTS / name)).encoder.config
    assert cfg.att_context_sizes == ((70, 13), (70, 6), (70, 1), (70, 0))
    assert cfg.att_context_style == "chunked_limited"
    assert cfg.causal_downsampling
    assert cfg.conv_context_size == (8, 0)
    assert (cfg.use_bias, cfg.xscaling) == ((True, True) if name == MULTI else (False, False))


def test_eou_fixture_keeps_the_real_context(converted):
    """parakeet_realtime_eou_120m-v1: left context 70, lookahead 1 (160 ms chunks), 128 mels."""
    model = Streaming(CHECKPOINTS / EOU, converted(CHECKPOINTS / EOU))
    cfg = model.encoder.config
    assert cfg.att_context_sizes == ((70, 1),)
    assert (cfg.att_context_style, cfg.causal_downsampling) == ("chunked_limited", True)
    assert cfg.conv_context_size == (8, 0)
    assert model.frontend_config.n_mels == cfg.feat_in == 128


def test_the_adapted_class_fixtures_keep_their_heads_and_contexts(converted):
    """The fixtures of NeMo classes without a released checkpoint: each keeps the contexts
    of the config it adapts, and has the heads of its class (a CTC head on each; a TDT
    transducer with durations 0-4 on the cache-aware TDT one; a prompt on the prompt one)."""
    expected = {
        HYBRID_EOU: (((70, 1),), False, None),
        HYBRID_PROMPT: (((56, 3), (56, 0), (56, 6), (56, 13)), False, "auto"),
        TDT: (((70, 13), (70, 6), (70, 1), (70, 0)), True, None),
    }
    for name, (sizes, tdt, language) in expected.items():
        model = Streaming(CHECKPOINTS / name, converted(CHECKPOINTS / name), language=language)
        cfg = model.encoder.config
        assert cfg.att_context_sizes == sizes, name
        assert (cfg.att_context_style, cfg.causal_downsampling) == ("chunked_limited", True)
        assert model.ctc is not None, name
        assert model.transducer.config.is_tdt == tdt, name
        if tdt:
            assert model.transducer.config.durations == (0, 1, 2, 3, 4)
            # the offline references carry NeMo's durations, some of them over 1
            clips = [c for e in model.contexts.values() for c in e["clips"].values()]
            assert any(d > 1 for c in clips for d in c["offline"]["rnnt"].get("durations", []))


def test_the_prompt_checkpoint_keeps_its_contexts_and_languages(converted):
    """nemotron-3.5-asr-streaming-0.6b: left context 56 with its four lookaheads (the first,
    3, the default), its language dictionary with `auto` at 101, 128 prompts."""
    model = Streaming(
        CHECKPOINTS / NEMOTRON35, converted(CHECKPOINTS / NEMOTRON35), language="auto"
    )
    cfg = model.encoder.config
    assert cfg.att_context_sizes == ((56, 3), (56, 0), (56, 6), (56, 13))
    assert (cfg.att_context_style, cfg.causal_downsampling) == ("chunked_limited", True)
    prompt = model.prompt.config
    assert prompt.num_prompts == 128
    assert prompt.d_model == cfg.d_model
    assert (prompt.index("auto"), prompt.index("en-US"), prompt.index("de"), prompt.index("nn")) == (
        101, 0, 9, 104,
    )  # fmt: skip
    for lang, entry in model.meta["languages"].items():
        assert entry["prompt_index"] == prompt.index(lang)
    assert model.meta["languages_differ_on"]  # the language changes NeMo's output


@pytest.mark.parametrize("name", [NEMOTRON35, HYBRID_PROMPT])
def test_prompt_projection_equals_nemo(converted, name):
    """The projection on NeMo's own encoder output equals NeMo's `_apply_prompt_to_encoded`
    for each recorded language (the `long` clip, default lookahead)."""
    model = Streaming(CHECKPOINTS / name, converted(CHECKPOINTS / name), language="auto")
    key = next(iter(model.contexts))
    raw = mx.array(model.reference(key, "long", "offline_encoder"))[None]
    for lang in model.meta["languages"]:
        ours = np.array(model.prompt(raw, model.prompt.config.index(lang))[0])
        nemo = model.arrays[f"prompted/{lang}/long"]
        assert _rel(ours, nemo) <= 1e-5, lang


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
    for key, entry, clip, expected in model.streamed():
        streaming = streaming_config(model.encoder, entry["att_context_size"])
        streamer = CacheAwareStreamer(model.encoder, streaming)
        out = np.array(mx.concatenate([streamer.add(model.features(clip)), streamer.finish()]))
        ref = model.reference(key, clip)
        assert out.shape == ref.shape, (key, clip)
        assert _rel(out, ref) <= 1e-4, (key, clip)
        assert streamer._step == len(expected["steps"]), (key, clip)


def test_streams_nemo_cannot_run_are_refused(model):
    """NeMo streams every clip in the published style; in the `regular` style it fails where
    a chunk before the last has fewer encoder frames than the lookahead its caches drop,
    and ours refuses those streams in one line instead of running with broken caches."""
    failing = [
        (entry, clip)
        for entry in model.contexts.values()
        for clip, expected in entry["clips"].items()
        if "nemo_streaming_error" in expected
    ]
    if not model.prefix:
        assert not failing
        return
    assert failing
    for entry, clip in failing:
        streaming = streaming_config(model.encoder, entry["att_context_size"])
        streamer = CacheAwareStreamer(model.encoder, streaming)
        with pytest.raises(ValueError, match="regular-style cache-aware streaming"):  # noqa: PT012
            streamer.add(model.features(clip))
            streamer.finish()


def test_features_in_small_pieces_give_the_same_steps(model):
    """Feature frames fed one at a time: the same chunks run, the same outputs come out."""
    key, entry = contexts(model)[min(1, len(model.contexts) - 1)]  # the second, if any
    clip = model.longest(entry)
    streaming = streaming_config(model.encoder, entry["att_context_size"])
    features = model.features(clip)
    streamer = CacheAwareStreamer(model.encoder, streaming)
    parts = [streamer.add(features[i : i + 1]) for i in range(len(features))]
    out = np.array(mx.concatenate([*parts, streamer.finish()]))
    assert _rel(out, model.reference(key, clip)) <= 1e-4


def test_cache_length_counts_real_frames(model):
    """The first step's output length and cache length equal NeMo's, for every lookahead."""
    for _key, entry in contexts(model):
        clip = model.longest(entry)
        streaming = streaming_config(model.encoder, entry["att_context_size"])
        first = model.features(clip)[: streaming.chunk_size[0]]
        features = mx.array(first)[None]
        cache = StreamCache.initial(model.encoder, streaming)
        _, lengths, cache = cache_aware_step(
            model.encoder, features, mx.array([features.shape[1]]), cache, streaming,
            keep_all_outputs=len(entry["clips"][clip]["steps"]) == 1, drop_extra_pre_encoded=0,
        )  # fmt: skip
        nemo_steps = entry["clips"][clip]["steps"]
        assert int(lengths[0]) == nemo_steps[0]["encoded_frames"], (entry["att_context_size"], clip)
        assert int(cache.last_channel_len[0]) == nemo_steps[0]["cache_last_channel_len"], clip


def encode_offline(model, features: np.ndarray, context: list[int]) -> tuple[mx.array, mx.array]:
    """The encoder's offline forward (NeMo's chunked mask, no caches) in one of its contexts,
    or in a lookahead it was not trained with (the model card's 160 ms of nemotron-3.5,
    which NeMo's `set_default_att_context_size` runs with a warning)."""
    encoder = model.encoder
    if tuple(context) in encoder.config.att_context_sizes:
        encoder.set_default_att_context_size(context)
        return encoder(mx.array(features)[None])
    trained = encoder.config
    encoder.change_attention_model(None, context)
    try:
        return encoder(mx.array(features)[None])
    finally:
        encoder.config = trained
        encoder.change_attention_model()


def test_offline_encoder_equals_nemo(model):
    for key, entry in contexts(model):
        for clip in entry["clips"]:
            out, _ = encode_offline(model, model.features(clip), entry["att_context_size"])
            ref = model.reference(key, clip, "offline_encoder")
            assert _rel(np.array(out[0]), ref) <= 1e-4, (key, clip)


def test_offline_ids_equal_nemo(model):
    """The offline pass (NeMo's features, no caches) decoded greedily: NeMo's RNNT ids and
    CTC alignment."""
    for key, entry in contexts(model):
        for clip, expected in entry["clips"].items():
            out, lengths = encode_offline(model, model.features(clip), entry["att_context_size"])
            offline = expected["offline"]
            assert int(lengths[0]) == offline["encoded_length"], (key, clip)
            (hyp,) = model.transducer.greedy(model.condition(out), lengths)
            assert hyp.ids == offline["rnnt"]["ids"], (key, clip)
            if "durations" in offline["rnnt"]:  # a TDT transducer's (NeMo's streamed
                # hypothesis does not merge its durations across steps: offline only)
                durations = [t.duration for t in hyp.tokens]
                assert durations == offline["rnnt"]["durations"], (key, clip)
            if model.ctc is not None:
                logits = model.ctc(model.condition(out))[0]  # a prompt hybrid's: prompted
                alignment = np.array(mx.argmax(logits, axis=-1)).tolist()
                assert alignment == offline["ctc"]["alignment"], (key, clip)


def stream_clip(model, clip, context, piece=1234):
    """Audio in pieces -> streaming features -> cache-aware encoder -> every greedy head."""
    samples = model.samples(clip)
    features = StreamingLogMel(model.frontend_config)
    streamer = CacheAwareStreamer(model.encoder, streaming_config(model.encoder, context))
    rnnt = GreedyStream(model.transducer)
    ctc = GreedyCTCStream(model.ctc.config.blank_id) if model.ctc is not None else None

    def consume(frames):
        if frames.shape[0]:
            rnnt.feed(model.condition(frames))
            if ctc is not None:
                ctc.feed(model.ctc(model.condition(frames)[None])[0])

    for start in range(0, len(samples), piece):
        consume(streamer.add(features.add(samples[start : start + piece])))
    consume(streamer.add(features.finish()))
    consume(streamer.finish())
    return rnnt, ctc


def test_streaming_token_ids_equal_nemo_for_each_lookahead(model):
    """From the audio files: ids (and RNNT frames) of every head equal NeMo's streaming."""
    for _key, entry, clip, expected in model.streamed():
        rnnt, ctc = stream_clip(model, clip, entry["att_context_size"])
        context = entry["att_context_size"]
        assert [t.id for t in rnnt.tokens] == expected["rnnt"]["ids"], (context, clip)
        # frames counted from the stream's start, as NeMo's merged partial hypotheses
        assert [t.frame for t in rnnt.tokens] == expected["rnnt"]["frames"], (context, clip)
        if ctc is not None:
            assert ctc.alignment == expected["ctc"]["alignment"], (context, clip)
            assert [t.id for t in ctc.tokens] == expected["ctc"]["ids"], (context, clip)


def test_streaming_ids_grow_as_nemo_after_each_step(model):
    """RNNT ids after every step (and the cache length, where one feature frame ran one
    step) equal NeMo's partial hypotheses after that step, for every lookahead."""
    for _key, entry in contexts(model):
        streaming = streaming_config(model.encoder, entry["att_context_size"])
        clip = model.longest(entry)
        nemo = entry["clips"][clip]
        features = model.features(clip)
        streamer = CacheAwareStreamer(model.encoder, streaming)
        rnnt = GreedyStream(model.transducer)
        after, lengths = [], []
        for i in range(len(features) + 1):
            before = streamer._step
            encoded = streamer.add(features[i : i + 1]) if i < len(features) else streamer.finish()
            rnnt.feed(model.condition(encoded))
            ran = streamer._step - before
            after += [[t.id for t in rnnt.tokens]] * ran
            length = int(streamer.cache.last_channel_len[0])
            lengths += [length] if ran == 1 else [None] * ran
        assert after == nemo["rnnt"]["ids_after_step"], (entry["att_context_size"], clip)
        expected = [s["cache_last_channel_len"] for s in nemo["steps"]]
        assert [n for n, e in zip(lengths, expected, strict=True) if n is not None] == [
            e for n, e in zip(lengths, expected, strict=True) if n is not None
        ], (entry["att_context_size"], clip)


def test_streamed_features_equal_offline(model):
    """Concatenated streaming features equal the offline front end's (<= 1e-4)."""
    frontend = LogMel(model.frontend_config)
    for clip in next(iter(model.contexts.values()))["clips"]:
        samples = model.samples(clip)
        features = StreamingLogMel(model.frontend_config)
        parts = [features.add(samples[i : i + 777]) for i in range(0, len(samples), 777)]
        streamed = np.concatenate([*(np.array(p) for p in parts), np.array(features.finish())])
        offline, _ = frontend(samples)
        assert streamed.shape == offline.shape[1:], clip
        np.testing.assert_allclose(streamed, np.array(offline[0]), rtol=0, atol=1e-4)
        # and NeMo's: un-normalised ("NA") log-mel of near-silent bins (log ~ -16) differs
        # from NeMo's by up to ~1e-5 relative, a little over 1e-4 absolute
        np.testing.assert_allclose(streamed, model.features(clip), rtol=2e-5, atol=1e-4)


def test_a_copied_stream_looks_ahead_without_changing_the_original(hybrid):
    """`copy()` (what `parakeet`'s tentative tail uses): feeding the copy leaves the
    original as it was, and the original fed the same frames gives the copy's tokens."""
    model = hybrid
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
