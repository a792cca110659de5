"""Long inputs in overlapping chunks: the merge neither duplicates nor drops tokens.

The CTC fixture model uses local attention (16 encoder frames of 80 ms each side, two
layers, plus the convolution kernels), so a frame's output depends only on audio within
about 3.2 s of it. The merge cuts in the middle of the overlap, so with an overlap over
6.4 s every kept frame is exactly the full input's; the merge must therefore reproduce the
whole-input transcription token for token.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nemo_mlx_parakeet as parakeet
from mlx_audio_frontend import load_audio

REPO = Path(__file__).resolve().parents[3]
AUDIO = REPO / "tests" / "fixtures" / "audio"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return parakeet.load(REPO / "tests" / "fixtures" / "models" / "ctc.nemo",
                         cache_dir=tmp_path_factory.mktemp("cache"), verbose=False)  # fmt: skip


@pytest.fixture(scope="module")
def long_signal() -> np.ndarray:
    clips = [
        "speech_16k_mono.wav",
        "speech_22k.flac",
        "speech_48k.ogg",
        "odd_length_16k.wav",
        "speech_24k.mp3",
    ]
    parts = [np.array(load_audio(AUDIO / c)) for c in clips] * 4
    return np.concatenate(parts)  # about a minute of speech


@pytest.mark.parametrize(("chunk", "overlap"), [(20.0, 8.0), (16.0, 7.0)])
def test_chunked_equals_whole(model, long_signal, chunk, overlap):
    whole = model.transcribe(long_signal)
    chunked = model.transcribe(long_signal, chunk_duration=chunk, overlap_duration=overlap)
    assert [t.id for t in chunked.tokens] == [t.id for t in whole.tokens]
    assert [(t.start, t.end) for t in chunked.tokens] == [(t.start, t.end) for t in whole.tokens]
    assert chunked.text == whole.text


def test_overlap_must_be_under_half_the_chunk(model, long_signal):
    with pytest.raises(parakeet.ParakeetError, match="overlap"):
        model.transcribe(long_signal, chunk_duration=10.0, overlap_duration=6.0)


def test_chunks_and_whole_inputs_in_one_batch(model, long_signal):
    """A batch mixing a long input's chunks (cut features) with short inputs (features of the
    batch in one front-end call) decodes each as it decodes alone."""
    short = [long_signal[: 16000 * n] for n in (3, 7, 12)]
    inputs = [long_signal[: 16000 * 30], *short]
    together = model.transcribe(inputs, chunk_duration=20.0, overlap_duration=8.0, batch_size=8)
    for signal, result in zip(inputs, together, strict=True):
        alone = model.transcribe(signal, chunk_duration=20.0, overlap_duration=8.0, batch_size=1)
        assert [t.id for t in result.tokens] == [t.id for t in alone.tokens]
        assert [(t.start, t.end) for t in result.tokens] == [(t.start, t.end) for t in alone.tokens]
