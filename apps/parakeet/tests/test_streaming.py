"""`Parakeet.transcribe_stream`: cache-aware streaming equals NeMo's; limited-context
streaming of offline models equals offline decoding when its windows cover the input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import nemo_mlx_parakeet as parakeet
from mlx_audio_frontend import load_audio

REPO = Path(__file__).resolve().parents[3]
AUDIO = REPO / "tests" / "fixtures" / "audio"
MODELS = REPO / "tests" / "fixtures" / "models"
CLIPS = list(json.loads((AUDIO / "clips.json").read_text())["clips"])
SHORT = "shorter_than_frame_16k.wav"  # offline pads it to 1 s (NeMo's transcribe); a stream cannot


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def load(name: str, cache: Path, head: str = "auto") -> parakeet.Parakeet:
    return parakeet.load(MODELS / f"{name}.nemo", cache_dir=cache, head=head, verbose=False)


def stream(model, samples, pieces, **options):
    """Feed `samples` in pieces of the given sizes (cycled); returns (updates, transcript)."""
    updates = []
    with model.transcribe_stream(**options) as s:
        start, i = 0, 0
        while start < len(samples):
            size = pieces[i % len(pieces)]
            updates.append(s.add_audio(samples[start : start + size]))
            start, i = start + size, i + 1
        result = s.finalize()
    return updates, result


CHECKPOINTS = REPO / "tests" / "fixtures" / "checkpoints"
MULTI = "stt_en_fastconformer_hybrid_large_streaming_multi"
NEMOTRON = "nemotron-speech-streaming-en-0.6b"
NEMOTRON35 = "nemotron-3.5-asr-streaming-0.6b"  # a language-prompt model
# NeMo classes without a released checkpoint, on released configs adapted to them
HYBRID_PROMPT = "hybrid_prompt_streaming"  # EncDecHybridRNNTCTCBPEModelWithPrompt
TDT_CTC = "cache_aware_tdt_ctc_streaming"  # a cache-aware hybrid with a TDT transducer


def clip_samples(meta: dict, clip: str) -> np.ndarray:
    """A test clip, or a clip a checkpoint fixture made of pieces of them."""
    pieces = meta.get("clips", {}).get(clip, {}).get("pieces")
    if pieces is None:
        return np.array(load_audio(AUDIO / clip))
    return np.concatenate([np.array(load_audio(AUDIO / f))[a:b] for f, a, b in pieces])


# NeMo's cache-aware streaming of the tiny model and of NVIDIA's configurations (left
# context 70, lookaheads 13, 6, 1, 0; nemotron-3.5: 56 and 3, 0, 6, 13, per target
# language): test id -> (fixture, head, language)
CACHE_AWARE = {
    "streaming_hybrid-rnnt": (MODELS / "streaming_hybrid", "rnnt", None),
    "streaming_hybrid-ctc": (MODELS / "streaming_hybrid", "ctc", None),
    f"{MULTI}-rnnt": (CHECKPOINTS / MULTI, "rnnt", None),
    f"{MULTI}-ctc": (CHECKPOINTS / MULTI, "ctc", None),
    f"{NEMOTRON}-rnnt": (CHECKPOINTS / NEMOTRON, "rnnt", None),
    **{f"{NEMOTRON35}-{lang}": (CHECKPOINTS / NEMOTRON35, "rnnt", lang)
       for lang in ("auto", "en-US", "de-DE")},
    **{f"{HYBRID_PROMPT}-{head}-{lang}": (CHECKPOINTS / HYBRID_PROMPT, head, lang)
       for lang in ("auto", "en-US", "de-DE") for head in ("rnnt", "ctc")},
    f"{TDT_CTC}-tdt": (CHECKPOINTS / TDT_CTC, "tdt", None),
    f"{TDT_CTC}-ctc": (CHECKPOINTS / TDT_CTC, "ctc", None),
}  # fmt: skip


@pytest.mark.parametrize(
    ("fixture", "head", "language"), list(CACHE_AWARE.values()), ids=list(CACHE_AWARE)
)
def test_cache_aware_stream_equals_nemo_for_each_lookahead(cache, fixture, head, language):
    """Ids and text of NeMo's streaming (a prompt model's after `set_inference_prompt`),
    for every lookahead the checkpoint was trained with; the transcript names the language."""
    meta = json.loads((fixture.parent / f"{fixture.name}.json").read_text())
    model = parakeet.load(
        fixture.parent / f"{fixture.name}.nemo", cache_dir=cache, head=head, verbose=False
    )
    section = meta["languages"][language] if language else meta
    options = {"language": language} if language else {}
    for entry in section["contexts"].values():
        if entry["att_context_size"] not in model.context_choices:
            continue  # nemotron-3.5's card-only 160 ms: tests/test_streaming_cache_aware.py
        for clip, expected in entry["clips"].items():
            samples = clip_samples(meta, clip)
            _, result = stream(model, samples, [517, 3000, 1], context=entry["att_context_size"],
                               **options)  # fmt: skip
            nemo = expected["ctc" if head == "ctc" else "rnnt"]  # NeMo's transducer: "rnnt"
            assert [t.id for t in result.tokens] == nemo["ids"], (entry, clip)
            if head != "ctc":
                assert result.text == nemo["text"], clip
            assert result.language == language


def test_final_tokens_only_grow(cache):
    model = load("tdt", cache)
    samples = np.array(load_audio(AUDIO / "speech_22k.flac"))
    updates, result = stream(model, samples, [800], chunk=0.32, context=(20, 4))
    previous: list = []
    for update in updates:
        assert update.tokens[: len(previous)] == previous
        assert update.text == update.final_text + update.tentative_text
        assert all(t.start >= 0 for t in update.tokens + update.tentative)
        previous = update.tokens
    assert result.tokens[: len(previous)] == previous
    assert any(u.new_tokens for u in updates)  # text appears before the end
    assert any(u.tentative for u in updates)


@pytest.mark.parametrize("name", ["tdt", "rnnt", "ctc", "hybrid_tdt_ctc"])
def test_limited_context_covering_the_input_equals_offline(cache, name):
    """With windows that reach over the whole input, each chunk is encoded with the whole
    input's context and normalisation: text, tokens and times equal offline decoding."""
    model = load(name, cache)
    for clip in CLIPS:
        if clip == SHORT:
            continue
        samples = np.array(load_audio(AUDIO / clip))
        offline = model.transcribe(samples)
        _, result = stream(model, samples, [1600, 333], chunk=0.5, context=(1000, 1000))
        assert result.text == offline.text, clip
        assert [(t.id, t.start, t.end) for t in result.tokens] == [
            (t.id, t.start, t.end) for t in offline.tokens
        ], clip
        assert [(w.text, w.start, w.end) for w in result.words] == [
            (w.text, w.start, w.end) for w in offline.words
        ], clip


def test_limited_context_depends_on_context_only_not_on_pieces(cache):
    model = load("rnnt", cache)
    samples = np.array(load_audio(AUDIO / "speech_44k_stereo.wav"))
    _, a = stream(model, samples, [160], chunk=0.4, context=(30, 5))
    _, b = stream(model, samples, [7919, 13], chunk=0.4, context=(30, 5))
    assert a.text == b.text
    assert [t.start for t in a.tokens] == [t.start for t in b.tokens]


def test_stream_errors(cache):
    model = load("streaming_hybrid", cache)
    with pytest.raises(parakeet.ParakeetError, match="att_context_size"):
        model.transcribe_stream(chunk=1.0)
    with pytest.raises(parakeet.ParakeetError, match="not one of"):
        model.transcribe_stream(context=[8, 2])
    s = model.transcribe_stream()
    s.add_audio(np.zeros(1600, np.float32))
    s.finalize()
    with pytest.raises(parakeet.ParakeetError, match="finalized"):
        s.add_audio(np.zeros(10, np.float32))
    offline = load("tdt", cache)
    with pytest.raises(parakeet.ParakeetError, match="chunk"):
        offline.transcribe_stream(chunk=0)
