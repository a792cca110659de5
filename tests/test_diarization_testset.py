"""The multi-speaker test set: our diarization equals NeMo's, and so does its DER.

The test set is five espeak-ng conversations, 2-4 voices taking turns with pauses and overlaps,
with their true turns (tests/reference/make_diarization_testset.py). The model is the demo
Sortformer (tools/train_demo_sortformer.py: NeMo's SortformerEncLabelModel, trained with NeMo's
own training step on other voices and sentences). NeMo's `diarize()` lines, NeMo's DER of them
(NeMo's own scorer) and NeMo's ASR + diarization words on one conversation are in the NeMo-made
fixture (tests/reference/make_demo_sortformer_fixture.py, NeMo 3.0.0).

- `nemo-mlx-diarize` (the `diarize` app) writes NeMo's lines for every conversation, exactly;
- the DER of our RTTM, scored by NeMo's scorer, equals NeMo's DER (live NeMo, `reference`);
- `parakeet --diarize` (the demo ASR model + the demo Sortformer) gives NeMo's words, times
  and each word's speaker, as NeMo's `OfflineDiarWithASR` assigns them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import der_scoring
import pytest

from nemo_mlx_convert import convert_nemo
from nemo_mlx_diarize.cli import main as diarize_main

FOLDER = Path(__file__).resolve().parent / "fixtures" / "diarization"
TESTSET = FOLDER / "testset"
NEMO = json.loads((FOLDER / "demo_sortformer.json").read_text())
META = json.loads((TESTSET / "testset.json").read_text())
NAMES = sorted(META["conversations"])


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("demo-sortformer") / "model"
    convert_nemo(FOLDER / "demo_sortformer.nemo", directory)
    return directory


@pytest.fixture(scope="module")
def rttm(model, tmp_path_factory) -> Path:
    """Our RTTM of every conversation, as `nemo-mlx-diarize` writes them (one call)."""
    out = tmp_path_factory.mktemp("rttm")
    files = [str(TESTSET / f"{n}.flac") for n in NAMES]
    assert diarize_main([*files, "--model", str(model), "--output-dir", str(out)]) == 0
    return out


@pytest.mark.parametrize("name", NAMES)
def test_lines_are_nemos(model, name, capsys):
    assert diarize_main([str(TESTSET / f"{name}.flac"), "--model", str(model),
                         "--output-format", "txt"]) == 0  # fmt: skip
    assert capsys.readouterr().out.splitlines() == NEMO["diarize_lines"][name]


def test_rttm_turns_are_nemos(rttm):
    """The RTTM files carry NeMo's turns (start, start + duration = NeMo's end, speaker)."""
    for name in NAMES:
        ours = der_scoring.rttm_labels(rttm / f"{name}.rttm")
        assert sorted(ours) == sorted(NEMO["diarize_lines"][name]), name


@pytest.mark.reference
def test_der_is_nemos(rttm):
    """NeMo's scorer gives our RTTM the DER it gives NeMo's own output, in both modes."""
    pytest.importorskip("nemo.collections.asr", reason="needs the `reference` group (NeMo)")
    ours = {n: der_scoring.rttm_labels(rttm / f"{n}.rttm") for n in NAMES}
    truth = {n: der_scoring.rttm_labels(TESTSET / f"{n}.rttm") for n in NAMES}
    durations = {n: META["conversations"][n]["duration"] for n in NAMES}
    for setting in der_scoring.SETTINGS:
        assert der_scoring.score(truth, ours, durations, setting) == NEMO["der"][setting]["nemo"]


def test_the_model_tells_speakers_apart():
    """NeMo's DER of the demo Sortformer (the fixture's) is below both trivial answers:
    one speaker everywhere, and one speaker on exactly the true speech; and most of NeMo's
    words on the ASR conversation are on their true speaker (NeMo's scorer's speaker map)."""
    assert NEMO["asr_with_speakers"]["right_speaker_share"] > 0.9
    for setting, rows in NEMO["der"].items():
        assert rows["nemo"]["der"] < rows["true_speech"]["der"] < rows["whole_recording"]["der"], (
            setting
        )


def test_parakeet_words_carry_nemos_speakers(tmp_path):
    """`parakeet --diarize`: NeMo's words and times (demo ASR model) and NeMo's speaker on each
    (its ASR + diarization pipeline on NeMo's turns), on one conversation."""
    nemo = NEMO["asr_with_speakers"]
    audio = TESTSET / f"{nemo['conversation']}.flac"
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", str(audio), "--model", "demo",
               "--diarize", str(FOLDER / "demo_sortformer.nemo"), "--cache-dir", str(tmp_path),
               "--quiet", "--output-format", "json", "--output-dir", str(tmp_path)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / f"{audio.stem}.json").read_text())
    end = META["conversations"][nemo["conversation"]]["duration"]
    assert [(w["text"], w["speaker"]) for w in data["words"]] == [
        (w["word"], w["speaker"]) for w in nemo["words"]
    ]
    # the same frame times; NeMo's are products of floats (5.6000000000000005 for 5.6)
    ours = [t for w in data["words"] for t in (w["start"], w["end"])]
    theirs = [t for w in nemo["words"] for t in (w["start"], min(w["end"], end))]
    assert ours == pytest.approx(theirs, abs=1e-9)
    assert len({w["speaker"] for w in data["words"]}) > 1
