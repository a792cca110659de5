"""`canary --vad` / `transcribe(..., vad=...)`: only NeMo's frame-VAD speech segments are
decoded, each as an input of its own, and no time of the transcript leaves them.

The VAD is the NeMo-built fixture model (tests/reference/make_vad_fixtures.py) on the audio it
was made for; the segments expected are NeMo's own, from the fixture's JSON. The Canary model
is the random-weight `canary_timestamps` fixture (it writes frame tokens)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nemo_mlx_canary as canary
from mlx_audio_frontend import load_audio

REPO = Path(__file__).resolve().parents[3]
VAD = REPO / "tests" / "fixtures" / "vad"
VAD_MODEL = VAD / "frame_vad_marblenet.nemo"
AUDIO = VAD / "vad_speech_and_noise_16k.flac"
MODEL = REPO / "tests" / "fixtures" / "models" / "canary_timestamps.nemo"
NEMO = json.loads((VAD / "frame_vad_marblenet.json").read_text())
SEGMENTS = [row[:2] for row in NEMO["inputs"][AUDIO.name]["segments"]["nemo_defaults"]]
FRAME = 0.08  # the model's encoder frame
# NeMo's segments on the encoder's frames, rounded inwards, in seconds
SPANS = [(math.ceil(a / FRAME - 1e-9) * FRAME, math.floor(b / FRAME + 1e-9) * FRAME)
         for a, b in SEGMENTS]  # fmt: skip


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_cli_times_stay_inside_nemos_speech_segments(cache):
    command = [sys.executable, "-m", "nemo_mlx_canary.cli", str(AUDIO), "--model", str(MODEL),
               "--vad", str(VAD_MODEL), "--timestamps", "--output-format", "json",
               "--cache-dir", str(cache), "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["tokens"]
    for item in data["tokens"] + data["words"] + data["segments"]:
        assert any(a - 1e-6 <= item["start"] and item["end"] <= b + 1e-6 for a, b in SPANS), item


def test_api_text_is_each_segment_decoded_alone(cache):
    model = canary.load(MODEL, cache_dir=cache, verbose=False)
    vad = canary.load_vad(VAD_MODEL, cache_dir=cache, verbose=False)
    result = model.transcribe(AUDIO, vad=vad)
    samples = np.array(load_audio(AUDIO))
    alone = [model.transcribe(samples[round(a * 16000) : round(b * 16000)]) for a, b in SPANS]
    assert result.text == " ".join(t.text for t in alone if t.text)
    assert result.duration == pytest.approx(NEMO["inputs"][AUDIO.name]["num_samples"] / 16000)
