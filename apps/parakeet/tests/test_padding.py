"""Batches padded to a few lengths (what a GPU run does) decode as unpadded ones, and as a
batch encoded one piece at a time (`encode_each`), and as each input alone."""

from __future__ import annotations

from pathlib import Path

import pytest

import nemo_mlx_parakeet as parakeet
from nemo_mlx_parakeet.batching import Piece, padded_count

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
    model.encode_each = False  # one padded encoder call per batch (the default)
    model.bucket_shapes = False
    plain = model.transcribe(paths, batch_size=4)
    model.bucket_shapes = True
    padded = model.transcribe(paths, batch_size=4)
    alone = [model.transcribe(p) for p in paths]
    model.bucket_shapes = None
    model.encode_each = False
    for a, b, c in zip(plain, padded, alone, strict=True):
        assert [t.id for t in b.tokens] == [t.id for t in a.tokens] == [t.id for t in c.tokens]
        assert [(t.start, t.end) for t in b.tokens] == [(t.start, t.end) for t in a.tokens]


def test_padded_counts_decode_as_unpadded(model, monkeypatch):
    paths = [AUDIO / c for c in CLIPS[:3]]
    sizes = _encoder_batches(model, monkeypatch)
    padded, padded_sizes = _transcribed(model, paths, sizes, bucket_shapes=True)
    plain, plain_sizes = _transcribed(model, paths, sizes, bucket_shapes=False)
    assert padded_sizes == [4]  # three pieces and one repeated: a power of two
    assert plain_sizes == [3]
    assert all(plain)
    assert padded == plain


def test_padded_counts():
    def pieces(*frames):
        return [Piece(0, 0, 0.0, n) for n in frames]

    assert [padded_count(pieces(*[100] * n), 16, 1e9, True) for n in (1, 2, 3, 5, 9, 16)] == [
        1, 2, 4, 8, 16, 16]  # fmt: skip
    assert padded_count(pieces(100, 100, 100), 16, 1e9, False) == 3  # the CPU: as they are
    assert padded_count(pieces(100, 100, 100, 100, 100), 6, 1e9, True) == 6  # the batch size
    # the memory rule: 1000**2 * count <= 2300**2 allows five pieces of 1000 frames, not eight
    assert padded_count(pieces(1000, 1000, 1000), 16, 2300, True) == 4
    assert padded_count(pieces(1000, 1000, 1000, 1000, 1000), 16, 2300, True) == 5


def test_padded_lengths(model):
    model.bucket_shapes = True
    sizes = [model._padded_frames(n) for n in (1, 128, 129, 2048, 2049, 4097, 30000)]
    model.bucket_shapes = False
    unpadded = model._padded_frames(129)
    model.bucket_shapes = None
    assert sizes == [128, 128, 256, 2048, 2304, 4608, 30720]
    assert unpadded == 129


def _tokens(transcript):
    return [(t.id, t.start, t.end) for t in transcript.tokens]


def _encoder_batches(model, monkeypatch) -> list[int]:
    """Record the batch size of every encoder call."""
    sizes: list[int] = []
    encoder = model.encoder
    original = type(encoder).__call__

    def counted(self, features, *args, **kwargs):
        sizes.append(features.shape[0])
        return original(self, features, *args, **kwargs)

    monkeypatch.setattr(type(encoder), "__call__", counted)
    return sizes


def _transcribed(model, paths, sizes: list[int], **settings) -> tuple[list, list[int]]:
    """The tokens of `paths` in batches of 4 with the model's `settings`, and the batch sizes
    of its encoder calls (`sizes` from `_encoder_batches`); the settings back to their
    defaults after."""
    sizes.clear()
    try:
        for name, value in settings.items():
            setattr(model, name, value)
        return [_tokens(t) for t in model.transcribe(paths, batch_size=4)], list(sizes)
    finally:
        model.encode_each, model.bucket_shapes = False, None


def test_each_and_padded_decode_as_alone(model, monkeypatch):
    paths = [AUDIO / c for c in CLIPS]
    alone = [_tokens(model.transcribe(p)) for p in paths]
    sizes = _encoder_batches(model, monkeypatch)
    each, each_sizes = _transcribed(model, paths, sizes, encode_each=True)
    padded, padded_sizes = _transcribed(model, paths, sizes, encode_each=False)
    assert each_sizes == [1, 1, 1, 1]  # one encoder call per piece
    assert padded_sizes == [4]  # one padded call for the batch
    assert all(alone)  # the model writes tokens for these clips (else the test proves little)
    assert each == alone
    assert padded == alone


def test_policy_default_is_padded(tmp_path):
    fresh = parakeet.load(REPO / "tests" / "fixtures" / "models" / "tdt.nemo", cache_dir=tmp_path,
                          verbose=False)  # fmt: skip
    assert fresh.encode_each is False  # padded batches by default, CPU and GPU
