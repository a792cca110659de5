"""The bundled demo model on held-out espeak-ng speech: our transcripts are NeMo's, word for
word and token for token, and the WER is below 10%; the real CLI transcribes the example.

NeMo's transcripts come from tests/reference/make_demo_fixture.py (NeMo 3.0.0 on the same
`.nemo` and the same FLAC clips); the held-out clips use voice variants, accents and
sentences that the training never saw (tools/train_demo_model.py). No torch needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nemo_mlx_parakeet as parakeet
from nemo_mlx_parakeet import demo

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "demo"
NEMO = json.loads((FIXTURE / "nemo_transcripts.json").read_text())
HELDOUT = json.loads((FIXTURE / "heldout.json").read_text())


def word_error_rate(hypotheses: list[str], references: list[str]) -> float:
    """Word edits (substitutions, insertions, deletions) over reference words, corpus-wide."""
    edits = words = 0
    for hyp, ref in zip(hypotheses, references, strict=True):
        h, r = hyp.split(), ref.split()
        row = list(range(len(h) + 1))
        for i, rw in enumerate(r, 1):
            prev, row[0] = row[0], i
            for j, hw in enumerate(h, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (rw != hw))
        edits += row[-1]
        words += len(r)
    return edits / words


def test_word_error_rate_counts_edits():
    assert word_error_rate(["a b c"], ["a b c"]) == 0.0
    assert word_error_rate(["a x c", "d"], ["a b c", "d e"]) == pytest.approx(2 / 5)
    assert word_error_rate(["a b c d"], ["a c"]) == 1.0


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return parakeet.load("demo", cache_dir=tmp_path_factory.mktemp("cache"), verbose=False)


@pytest.fixture(scope="module")
def transcripts(model):
    clips = [FIXTURE / clip["file"] for clip in HELDOUT["clips"]]
    return model.transcribe(clips, batch_size=8)


def test_fixture_is_for_the_bundled_model():
    assert hashlib.sha256(demo.MODEL.read_bytes()).hexdigest() == NEMO["model_sha256"]
    assert demo.MODEL.stat().st_size <= 10 * 1024 * 1024
    assert sorted(NEMO["clips"]) == sorted(clip["file"] for clip in HELDOUT["clips"])


def test_heldout_transcripts_equal_nemo(transcripts):
    for clip, ours in zip(HELDOUT["clips"], transcripts, strict=True):
        theirs = NEMO["clips"][clip["file"]]
        assert ours.text == theirs["text"], clip["file"]
        assert [t.id for t in ours.tokens] == theirs["ids"], clip["file"]


def test_heldout_wer_is_nemos_and_below_ten_percent(transcripts):
    references = [clip["text"] for clip in HELDOUT["clips"]]
    ours = word_error_rate([t.text for t in transcripts], references)
    assert ours == pytest.approx(NEMO["wer"], abs=1e-9)
    assert ours < 0.10


def test_cli_transcribes_the_example_clip(tmp_path):
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", str(demo.EXAMPLE), "--model", "demo",
               "--cache-dir", str(tmp_path), "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == demo.EXAMPLE_TEXT
    assert NEMO["example"]["text"] == demo.EXAMPLE_TEXT


def test_ctc_head_transcripts_equal_nemo(tmp_path_factory):
    model = parakeet.load(
        "demo", head="ctc", cache_dir=tmp_path_factory.mktemp("cache"), verbose=False
    )
    clips = [FIXTURE / clip["file"] for clip in HELDOUT["clips"]]
    for clip, ours in zip(HELDOUT["clips"], model.transcribe(clips, batch_size=8), strict=True):
        theirs = NEMO["clips"][clip["file"]]
        assert ours.text == theirs["ctc_text"], clip["file"]
        assert [t.id for t in ours.tokens] == theirs["ctc_ids"], clip["file"]


def test_offline_error_points_to_the_demo_model(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", str(demo.EXAMPLE), "--cache-dir", str(tmp_path), "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "`--model demo`" in result.stderr
