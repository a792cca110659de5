"""The word spotter end to end on the bundled demo model: `parakeet --word-spotter` with the
fixture's phrases gives NeMo's merged text on every held-out clip, with the CTC head and
with the TDT head (the hybrid's CTC head spots, its TDT result takes the words).

NeMo's texts come from tests/reference/make_word_spotter_fixture.py (NeMo 3.0.0's
`run_word_spotter` and `merge_alignment_with_ws_hyps` on the same `.nemo` and clips, the
recipe's defaults); the spotter changes the text of several clips there (asserted), and here
the same clips change from the plain greedy output.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import nemo_mlx_parakeet as parakeet
from nemo_mlx_parakeet import demo
from nemo_mlx_parakeet.errors import ParakeetError
from speech_transcript.biasing import Biasing

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "demo"
SPOTTER = json.loads((FIXTURE / "word_spotter.json").read_text())
DEFAULT = SPOTTER["settings"]["default"]
FILES = list(DEFAULT["clips"])
# the fixture's graph: each phrase its own spelling, and NeMo's word_spelling form
PHRASES = [*SPOTTER["phrases"],
           *("_".join([w, *s]) for w, s in SPOTTER["alt_spellings"].items())]  # fmt: skip


def run_cli(tmp_path: Path, head: str, *options: str) -> list[dict]:
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", "--model", "demo", "--head", head,
               "--output-format", "json", "--cache-dir", str(tmp_path), "--quiet", *options,
               *(str(FIXTURE / f) for f in FILES)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_fixture_is_for_the_bundled_model():
    assert hashlib.sha256(demo.MODEL.read_bytes()).hexdigest() == SPOTTER["model_sha256"]
    assert DEFAULT["settings"]["context_score"] == 3.0  # the CLI's default --boost-score


@pytest.mark.parametrize("head", ["ctc", "tdt"])
def test_cli_equals_nemo(tmp_path, head):
    phrases = [arg for p in PHRASES for arg in ("--boost-phrase", p)]
    spotted = run_cli(tmp_path, head, "--word-spotter", *phrases)
    plain = run_cli(tmp_path, head)
    for file, ours, before in zip(FILES, spotted, plain, strict=True):
        expected = DEFAULT["clips"][file]
        assert before["text"] == expected[f"plain_{head}_text"], file
        assert ours["text"] == expected[f"{head}_text"], (head, file)
    changed = [f for f, a, b in zip(FILES, spotted, plain, strict=True) if a["text"] != b["text"]]
    assert changed == DEFAULT["changed"][head]


def test_api_and_errors():
    model = parakeet.load("demo")
    clip = FIXTURE / DEFAULT["changed"]["ctc"][0]
    biasing = Biasing(tuple(PHRASES), word_spotter=True)
    result = model.transcribe(clip, biasing=biasing)
    assert result.text == DEFAULT["clips"][DEFAULT["changed"]["ctc"][0]]["tdt_text"]
    assert [w.text for w in result.words] == result.text.split()
    with pytest.raises(ParakeetError, match="greedy"):
        model.transcribe(clip, biasing=biasing, decoding="beam")
    with pytest.raises(ParakeetError, match="stream"):
        model.transcribe_stream(biasing=biasing)


def test_cli_refuses_spotter_without_phrases_or_with_lm(tmp_path):
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", "--model", "demo",
               "--word-spotter", str(FIXTURE / FILES[0])]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "--word-spotter needs --boost-phrase" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    command[-1:] = ["--boost-phrase", "anna", "--lm", str(FIXTURE / "demo_lm.arpa"),
                    "--lm-alpha", "0.5", str(FIXTURE / FILES[0])]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "no --lm" in result.stderr
