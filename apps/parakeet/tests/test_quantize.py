"""`--quantize 8|4`: the encoder's and transducer's linear layers become quantised ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlx.nn as nn
import pytest
from mlx.utils import tree_flatten

import nemo_mlx_parakeet as parakeet
from nemo_mlx_parakeet.errors import ParakeetError

REPO = Path(__file__).resolve().parents[3]
CLIP = REPO / "tests" / "fixtures" / "audio" / "speech_16k_mono.wav"
MODEL = REPO / "tests" / "fixtures" / "models" / "rnnt.nemo"  # d_model 80: its linears quantise


def _bytes(model: parakeet.Parakeet) -> int:
    return sum(
        v.nbytes for m in (model.encoder, model.transducer) for _, v in tree_flatten(m.parameters())
    )


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_quantised_model_transcribes_with_smaller_weights(cache):
    full = parakeet.load(MODEL, cache_dir=cache, verbose=False)
    small = parakeet.load(MODEL, cache_dir=cache, verbose=False, quantize=8)
    layers = [m for part in (small.encoder, small.transducer) for _, m in part.named_modules()]
    assert any(isinstance(m, nn.QuantizedLinear) for m in layers)
    assert not any(isinstance(m, nn.Linear) for m in layers)
    assert _bytes(small) < 0.7 * _bytes(full)
    result = small.transcribe(str(CLIP))
    assert result.tokens  # the random fixture model's output is gibberish, but not empty


def test_other_bit_widths_are_refused(cache):
    with pytest.raises(ParakeetError, match="8 or 4"):
        parakeet.load(MODEL, cache_dir=cache, verbose=False, quantize=3)
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", str(CLIP), "--model", str(MODEL), "--quantize", "5",
               "--cache-dir", str(cache), "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "--quantize" in result.stderr
