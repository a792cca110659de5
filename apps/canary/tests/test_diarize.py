"""`canary --diarize --timestamps` / `transcribe(..., diarize=...)`: a speaker on every word
and segment, as parakeet's (apps/parakeet/tests/test_diarize.py says more).

The diarizer is the NeMo-built Sortformer fixture on its three-voice `long` clip, whose turns
are NeMo's `diarize()` lines in the fixture's JSON; the Canary model is the random-weight
`canary_timestamps` fixture (it writes frame tokens, so its words have times)."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

import nemo_mlx_canary as canary
from mlx_audio_frontend import load_audio
from speech_transcript import SpeakerTurn
from speech_transcript.speakers import in_time_order, word_speakers

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"
DIARIZER = FIXTURES / "checkpoints" / "diar_sortformer_4spk-v1.nemo"
MODEL = FIXTURES / "models" / "canary_timestamps.nemo"
META = json.loads((FIXTURES / "checkpoints" / "diar_sortformer_4spk-v1.json").read_text())
NEMO_TURNS = in_time_order(
    [SpeakerTurn(float(a), float(b), s)
     for a, b, s in (line.split() for line in META["forward"]["long"]["diarize_lines"])]
)  # fmt: skip


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    clip = META["clips"]["long"]
    return np.concatenate([np.array(load_audio(FIXTURES / "audio" / f))[a:b] for f, a, b in clip])


def test_api_words_carry_nemos_speakers(cache, samples):
    model = canary.load(MODEL, cache_dir=cache, verbose=False)
    diarizer = canary.load_diarizer(DIARIZER, cache_dir=cache, verbose=False)
    result = model.transcribe(samples, timestamps=True, diarize=diarizer)
    plain = model.transcribe(samples, timestamps=True)
    assert result.words, "the model writes timed words"
    assert [(w.text, w.start, w.end) for w in result.words] == [
        (w.text, w.start, w.end) for w in plain.words
    ]
    assert result.speakers == NEMO_TURNS
    assert [w.speaker for w in result.words] == word_speakers(plain.words, NEMO_TURNS)
    for segment in result.segments:
        assert {w.speaker for w in segment.words} <= {segment.speaker}
    with pytest.raises(canary.CanaryError, match="needs timestamps"):
        model.transcribe(samples, diarize=diarizer)


def test_cli_rttm_and_one_line_errors(cache, samples, tmp_path):
    audio = tmp_path / "voices.wav"
    with wave.open(str(audio), "wb") as out:  # 16-bit pieces: written back unchanged
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(np.round(samples * 32768).astype("<i2").tobytes())
    base = [sys.executable, "-m", "nemo_mlx_canary.cli", str(audio), "--model", str(MODEL),
            "--cache-dir", str(cache), "--quiet"]  # fmt: skip
    result = subprocess.run([*base, "--diarize", str(DIARIZER), "--timestamps",
                             "--output-format", "rttm"], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [t.rttm("voices") for t in NEMO_TURNS]
    for args, message in [(["--diarize", str(DIARIZER)], "needs --timestamps"),
                          (["--diarize", str(MODEL), "--timestamps"], "not a Sortformer")]:  # fmt: skip
        failed = subprocess.run([*base, *args], capture_output=True, text=True, check=False)
        assert failed.returncode != 0
        assert failed.stderr.count("\n") == 1, failed.stderr
        assert message in failed.stderr
