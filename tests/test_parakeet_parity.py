"""`parakeet --output-format json` against NeMo's `transcribe` on every fixture model and clip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MODELS = ["models/tdt", "models/rnnt", "models/ctc", "models/hybrid_tdt_ctc",
          # NVIDIA's released checkpoints, configured as published (make_checkpoint_fixtures.py)
          "checkpoints/parakeet-tdt-0.6b-v2", "checkpoints/parakeet-tdt-0.6b-v3",
          "checkpoints/parakeet-rnnt-1.1b", "checkpoints/parakeet-ctc-1.1b",
          "checkpoints/parakeet-tdt_ctc-110m",
          # NeMo's character-vocabulary classes (make_char_checkpoint_fixtures.py)
          "checkpoints/stt_zh_conformer_transducer_large", "checkpoints/conformer_ctc_char",
          "checkpoints/conformer_hybrid_transducer_ctc_char"]  # fmt: skip
CLIPS = list(json.loads((FIXTURES / "audio" / "clips.json").read_text())["clips"])
SHORT = "shorter_than_frame_16k.wav"  # under 1 s: NeMo pads it (see below)


@pytest.fixture(scope="module", params=MODELS, ids=lambda name: name.split("/")[1])
def run(request, tmp_path_factory):
    name = request.param
    cache = tmp_path_factory.mktemp("cache")
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", *[str(FIXTURES / "audio" / c) for c in CLIPS],
               "--model", str(FIXTURES / f"{name}.nemo"), "--output-format", "json",
               "--dtype", "float32", "--batch-size", "8", "--cache-dir", str(cache), "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    outputs = [json.loads(line) for line in result.stdout.splitlines()]
    meta = json.loads((FIXTURES / f"{name}.json").read_text())
    return name, dict(zip(CLIPS, outputs, strict=True)), meta


def test_text_and_token_ids_equal_nemo(run):
    _name, outputs, meta = run
    for clip in CLIPS:
        expected = meta["transcribe"][clip]
        assert outputs[clip]["text"] == expected["text"], clip
        if "ids" in expected:  # NeMo keeps per-frame log-probabilities, not ids, for CTC models
            assert [t["id"] for t in outputs[clip]["tokens"]] == expected["ids"], clip


def _nemo_seconds(clip: str, seconds: float, duration: float) -> float:
    """NeMo's time as the JSON writes ours: on the input as given (NeMo pads inputs under
    1 s by half the missing second in front and does not take it back out of its times),
    within the input (a last span can reach past the audio's end: a TDT duration, an RNNT
    frame), to the millisecond. Encoder frames are 80 ms apart, so equal milliseconds are
    equal frames: the times are NeMo's exactly, frame for frame."""
    lead = (16000 - 1000) // 2 / 16000 if clip == SHORT else 0.0
    return round(min(duration, max(0.0, seconds - lead)), 3)


def _assert_times_equal(clip: str, ours: list[dict], theirs: list[dict], duration: float) -> None:
    assert len(ours) == len(theirs), clip
    for mine, nemo in zip(ours, theirs, strict=True):
        for key in ("start", "end"):
            assert mine[key] == _nemo_seconds(clip, nemo[key], duration), (clip, key, mine, nemo)


def test_token_times_equal_nemo(run):
    """Every token's start and end: NeMo's `char` offsets (TDT: frame + duration, the
    punctuation refinement; RNNT: one frame; CTC: from the previous token's first frame)."""
    _name, outputs, meta = run
    for clip in CLIPS:
        ours = outputs[clip]["tokens"]
        nemo_tokens = meta["transcribe"][clip]["timestamp"]["char"]
        _assert_times_equal(clip, ours, nemo_tokens, outputs[clip]["duration"])


def test_word_times_equal_nemo(run):
    _name, outputs, meta = run
    for clip in CLIPS:
        nemo_words = meta["transcribe"][clip]["timestamp"]["word"]
        ours = outputs[clip]["words"]
        assert [w["text"] for w in ours] == [w["word"] for w in nemo_words], clip
        _assert_times_equal(clip, ours, nemo_words, outputs[clip]["duration"])


def test_segments_equal_nemo(run):
    _name, outputs, meta = run
    for clip in CLIPS:
        nemo_segments = meta["transcribe"][clip]["timestamp"]["segment"]
        ours = outputs[clip]["segments"]
        assert [s["text"] for s in ours] == [s["segment"] for s in nemo_segments], clip
        _assert_times_equal(clip, ours, nemo_segments, outputs[clip]["duration"])
