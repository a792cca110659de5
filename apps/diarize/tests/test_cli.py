"""The `diarize` command on the NeMo-made Sortformer fixtures: NeMo's lines, RTTM, JSON, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nemo_mlx_convert import convert_nemo
from nemo_mlx_diarize.cli import main

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures"
CLIP = FIXTURES / "audio" / "shorter_than_frame_16k.wav"  # the fixtures' `short` clip, whole


@pytest.fixture(
    scope="module", params=["diar_sortformer_4spk-v1", "diar_streaming_sortformer_4spk-v2"]
)
def model(request, tmp_path_factory) -> tuple[Path, dict]:
    directory = tmp_path_factory.mktemp("diarize") / request.param
    convert_nemo(FIXTURES / "checkpoints" / f"{request.param}.nemo", directory)
    meta = json.loads((FIXTURES / "checkpoints" / f"{request.param}.json").read_text())
    if "forward" in meta:
        return directory, meta["forward"]["short"]
    return directory, meta["settings"]["recipe"]["clips"]["short"]  # the config's settings


def test_txt_is_nemos_diarize_lines(model, capsys):
    directory, nemo = model
    assert main([str(CLIP), "--model", str(directory), "--output-format", "txt"]) == 0
    assert capsys.readouterr().out.splitlines() == nemo["diarize_lines"]


def test_rttm_and_json_carry_the_same_turns(model, tmp_path, capsys):
    directory, nemo = model
    assert main([str(CLIP), "--model", str(directory), "--output-dir", str(tmp_path)]) == 0
    rttm = (tmp_path / "shorter_than_frame_16k.rttm").read_text().splitlines()
    assert main([str(CLIP), "--model", str(directory), "--output-format", "json"]) == 0
    turns = json.loads(capsys.readouterr().out)["turns"]
    lines = [f"{t['start']:.3f} {t['end']:.3f} {t['speaker']}" for t in turns]
    assert lines == nemo["diarize_lines"]
    assert len(rttm) == len(turns)
    for line, turn in zip(rttm, turns, strict=True):
        fields = line.split()
        assert fields[:3] == ["SPEAKER", "shorter_than_frame_16k", "1"]
        assert fields[3] == f"{turn['start']:.3f}"
        assert fields[7] == turn["speaker"]


def test_a_model_that_is_not_a_diarizer_is_one_line(tmp_path, capsys):
    parakeet = tmp_path / "tdt"
    convert_nemo(FIXTURES / "models" / "tdt.nemo", parakeet)
    assert main([str(CLIP), "--model", str(parakeet)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "not a Sortformer diarizer" in err[0]


def test_missing_audio_is_one_line_and_exit_1(model, capsys):
    directory, _ = model
    assert main(["no-such.wav", "--model", str(directory)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("diarize: error:")
