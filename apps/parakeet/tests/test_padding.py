"""Batches padded to a few lengths (what a GPU run does) decode as unpadded ones."""

from __future__ import annotations

from pathlib import Path

import pytest

import nemo_mlx_parakeet as parakeet

REPO = Path(__file__).resolve().parents[3]
AUDIO = REPO / "tests" / "fixtures" / "audio"
CLIPS = [
    "speech_16k_mono.wav",
    "speech_22k.flac",
    "odd_length_16k.wav",
    "shorter_than_frame_16k.wav",
]


@pytest.fixture(scope="module", params=["tdt", "ctc"])
def model(request, tmp_path_factory):
    return parakeet.load(REPO / "tests" / "fixtures" / "models" / f"{request.param}.nemo",
                         cache_dir=tmp_path_factory.mktemp("cache"), verbose=False)  # fmt: skip


def test_padded_batches_decode_as_unpadded(model):
    paths = [AUDIO / c for c in CLIPS]
    model.bucket_frames = False
    plain = model.transcribe(paths, batch_size=4)
    model.bucket_frames = True
    padded = model.transcribe(paths, batch_size=4)
    alone = [model.transcribe(p) for p in paths]
    model.bucket_frames = None
    for a, b, c in zip(plain, padded, alone, strict=True):
        assert [t.id for t in b.tokens] == [t.id for t in a.tokens] == [t.id for t in c.tokens]
        assert [(t.start, t.end) for t in b.tokens] == [(t.start, t.end) for t in a.tokens]


def test_padded_lengths(model):
    model.bucket_frames = True
    sizes = [model._padded_frames(n) for n in (1, 128, 129, 2048, 2049, 4097, 30000)]
    model.bucket_frames = False
    unpadded = model._padded_frames(129)
    model.bucket_frames = None
    assert sizes == [128, 128, 256, 2048, 2304, 4608, 30720]
    assert unpadded == 129
