"""`--quantize 8|4` for Canary: encoder and decoder linear layers quantised, output produced."""

from __future__ import annotations

from pathlib import Path

import mlx.nn as nn
import pytest

import nemo_mlx_canary as canary
from nemo_mlx_canary.errors import CanaryError

REPO = Path(__file__).resolve().parents[3]
CLIP = REPO / "tests" / "fixtures" / "audio" / "speech_16k_mono.wav"
MODEL = REPO / "tests" / "fixtures" / "models" / "canary.nemo"


def test_quantised_canary_transcribes(tmp_path):
    model = canary.load(MODEL, cache_dir=tmp_path, verbose=False, quantize=8)
    for part in (model.encoder, model.decoder):
        assert any(isinstance(m, nn.QuantizedLinear) for _, m in part.named_modules())
    assert model.transcribe(str(CLIP), source_lang="en").tokens


def test_other_bit_widths_are_refused(tmp_path):
    with pytest.raises(CanaryError, match="8 or 4"):
        canary.load(MODEL, cache_dir=tmp_path, verbose=False, quantize=2)
