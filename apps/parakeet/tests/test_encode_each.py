"""A batch encoded one piece at a time (the CPU's policy) decodes as each input alone, and as
the same batch padded into one encoder call; the policy's switch does what it says."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import pytest

import nemo_mlx_parakeet as parakeet
from nemo_mlx_parakeet.encoding import encodes_each

REPO = Path(__file__).resolve().parents[3]
AUDIO = REPO / "tests" / "fixtures" / "audio"
CLIPS = [  # different lengths, so that a batch has padding
    "speech_16k_mono.wav",
    "speech_22k.flac",
    "odd_length_16k.wav",
    "shorter_than_frame_16k.wav",
]


@pytest.fixture(scope="module", params=["tdt", "ctc"])
def model(request, tmp_path_factory):
    return parakeet.load(REPO / "tests" / "fixtures" / "models" / f"{request.param}.nemo",
                         cache_dir=tmp_path_factory.mktemp("cache"), verbose=False)  # fmt: skip


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


def test_each_and_padded_decode_as_alone(model, monkeypatch):
    paths = [AUDIO / c for c in CLIPS]
    alone = [_tokens(model.transcribe(p)) for p in paths]
    sizes = _encoder_batches(model, monkeypatch)
    try:
        model.encode_each = True
        each = [_tokens(t) for t in model.transcribe(paths, batch_size=4)]
        each_sizes, sizes[:] = list(sizes), []
        model.encode_each = False
        padded = [_tokens(t) for t in model.transcribe(paths, batch_size=4)]
    finally:
        model.encode_each = None
    assert each_sizes == [1, 1, 1, 1]  # one encoder call per piece
    assert sizes == [4]  # one padded call for the batch
    assert all(alone)  # the model writes tokens for these clips (else the test proves little)
    assert each == alone
    assert padded == alone


def test_policy_follows_the_device():
    assert encodes_each(True)
    assert not encodes_each(False)
    assert encodes_each(None) == (mx.default_device() == mx.cpu)
