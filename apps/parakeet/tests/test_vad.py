"""`--vad` / `transcribe(..., vad=...)`: only the speech segments of NeMo's frame VAD reach the
encoder, no word comes from the non-speech between them, and times stay the whole input's.

The VAD is the NeMo-built fixture model (tests/reference/make_vad_fixtures.py) on the audio it
was made for; the speech segments the tests expect are NeMo's own, from the fixture's JSON.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlx_frame_vad import FrameVAD, SpeechSegment
from nemo_mlx_parakeet import load
from nemo_mlx_parakeet.vad import load_vad

REPO = Path(__file__).resolve().parents[3]
VAD = REPO / "tests" / "fixtures" / "vad"
VAD_MODEL = VAD / "frame_vad_marblenet.nemo"
AUDIO = VAD / "vad_speech_and_noise_16k.flac"
NEMO = json.loads((VAD / "frame_vad_marblenet.json").read_text())
SEGMENTS = [row[:2] for row in NEMO["inputs"][AUDIO.name]["segments"]["nemo_defaults"]]
FRAME = 0.08  # the demo model's encoder frame


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def model():
    return load("demo", verbose=False)


@pytest.fixture(scope="module")
def vad(cache) -> FrameVAD:
    return load_vad(VAD_MODEL, cache_dir=cache, verbose=False)


def _inside_nemos_segments(start: float, end: float) -> bool:
    return any(a - 1e-6 <= start and end <= b + 1e-6 for a, b in SEGMENTS)


def test_cli_transcribes_only_nemos_speech_segments(cache):
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", str(AUDIO), "--model", "demo",
               "--vad", str(VAD_MODEL), "--output-format", "json", "--cache-dir", str(cache),
               "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["words"], "the speech was transcribed"
    assert abs(data["duration"] - NEMO["inputs"][AUDIO.name]["num_samples"] / 16000) < 1e-3
    for word in data["words"]:
        assert _inside_nemos_segments(word["start"], word["end"]), word
    without = subprocess.run([c for c in command if c not in ("--vad", str(VAD_MODEL))],
                             capture_output=True, check=False)  # fmt: skip
    assert json.loads(without.stdout)["text"] != data["text"], "the VAD changed what was seen"


def test_python_api_equals_each_segment_transcribed_alone_at_its_offset(model, vad):
    result = model.transcribe(AUDIO, vad=vad)
    samples = model.load_audio(AUDIO)
    per_frame = round(FRAME * 16000)
    expected = []
    for start, end in SEGMENTS:  # NeMo's segments on the encoder's frames, rounded inwards
        first, last = math.ceil(start / FRAME - 1e-9), math.floor(end / FRAME + 1e-9)
        alone = model.transcribe(samples[first * per_frame : last * per_frame])
        expected += [(w.text, w.start + first * FRAME, w.end + first * FRAME) for w in alone.words]
    got = [(w.text, w.start, w.end) for w in result.words]
    assert [w[0] for w in got] == [w[0] for w in expected]
    np.testing.assert_allclose([w[1:] for w in got], [w[1:] for w in expected], atol=1e-6)
    assert result.text == " ".join(w[0] for w in got)


def test_a_vad_that_finds_no_speech_gives_an_empty_transcript(model, vad, monkeypatch):
    monkeypatch.setattr(vad, "segments", lambda audio, params=None, sample_rate=None: [])
    result = model.transcribe(AUDIO, vad=vad)
    assert result.text == ""
    assert result.words == []
    assert result.duration > 15


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--vad", "--streaming"], "--vad is for whole inputs"),
     (["--vad", str(REPO / "tests" / "fixtures" / "models" / "tdt.nemo")], "not a frame VAD")],
)  # fmt: skip
def test_vad_usage_errors_are_one_line(cache, args, message):
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", str(AUDIO), "--model", "demo",
               *args, "--cache-dir", str(cache), "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, check=False)
    assert result.returncode != 0
    stderr = result.stderr.decode()
    assert stderr.count("\n") == 1, stderr
    assert message in stderr


def test_one_segment_keeps_absolute_times_and_no_span_passes_its_end(model, vad, monkeypatch):
    """A single segment (given here, 6.0-9.6 s) is one piece: its times are moved by its start
    too, and no token's span (a TDT duration) reaches past the segment's end."""
    monkeypatch.setattr(
        vad, "segments", lambda audio, params=None, sample_rate=None: [SpeechSegment(6.0, 9.6)]
    )
    result = model.transcribe(AUDIO, vad=vad)
    alone = model.transcribe(model.load_audio(AUDIO)[6 * 16000 : round(9.6 * 16000)])
    assert [w.text for w in result.words] == [w.text for w in alone.words]
    assert result.words, "the segment holds speech"
    np.testing.assert_allclose([w.start for w in result.words], [w.start + 6.0 for w in alone.words],
                               atol=1e-6)  # fmt: skip
    assert all(t.start >= 6.0 - 1e-6 and t.end <= 9.6 + 1e-6 for t in result.tokens)
