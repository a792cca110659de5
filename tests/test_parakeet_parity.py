"""`parakeet --output-format json` against NeMo's `transcribe` on every fixture model and clip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MODELS = ["tdt", "rnnt", "ctc", "hybrid_tdt_ctc"]
CLIPS = list(json.loads((FIXTURES / "audio" / "clips.json").read_text())["clips"])
SHORT = "shorter_than_frame_16k.wav"  # under 1 s: NeMo pads it (see below)


@pytest.fixture(scope="module", params=MODELS)
def run(request, tmp_path_factory):
    name = request.param
    cache = tmp_path_factory.mktemp("cache")
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", *[str(FIXTURES / "audio" / c) for c in CLIPS],
               "--model", str(FIXTURES / "models" / f"{name}.nemo"), "--output-format", "json",
               "--dtype", "float32", "--batch-size", "8", "--cache-dir", str(cache), "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    outputs = [json.loads(line) for line in result.stdout.splitlines()]
    meta = json.loads((FIXTURES / "models" / f"{name}.json").read_text())
    return name, dict(zip(CLIPS, outputs, strict=True)), meta


def test_text_and_token_ids_equal_nemo(run):
    _name, outputs, meta = run
    for clip in CLIPS:
        expected = meta["transcribe"][clip]
        assert outputs[clip]["text"] == expected["text"], clip
        if "ids" in expected:  # NeMo keeps per-frame log-probabilities, not ids, for CTC models
            assert [t["id"] for t in outputs[clip]["tokens"]] == expected["ids"], clip


def test_word_times_equal_nemo(run):
    """NeMo's word offsets in seconds, as the JSON writes them (to the millisecond), on the
    input as given: NeMo pads inputs under 1 s by half the missing second in front and does
    not take it back out of its times, and a last word's span can reach past the audio's end
    (a TDT duration, an RNNT frame); ours start at the input and stop at its end."""
    _name, outputs, meta = run
    for clip in CLIPS:
        nemo_words = meta["transcribe"][clip]["timestamp"]["word"]
        ours = outputs[clip]["words"]
        duration = outputs[clip]["duration"]
        assert [w["text"] for w in ours] == [w["word"] for w in nemo_words], clip
        shift = (16000 - 1000) // 2 / 16000 if clip == SHORT else 0.0
        for mine, theirs in zip(ours, nemo_words, strict=True):
            for key in ("start", "end"):
                expected = round(min(duration, max(0.0, theirs[key] - shift)), 3)
                assert mine[key] == expected, (clip, key, mine, theirs)


def test_segments_equal_nemo(run):
    _name, outputs, meta = run
    for clip in CLIPS:
        expected = [s["segment"] for s in meta["transcribe"][clip]["timestamp"]["segment"]]
        assert [s["text"] for s in outputs[clip]["segments"]] == expected, clip
