"""`--diarize` / `transcribe(..., diarize=...)`: a speaker on every word and segment.

The diarizer is the NeMo-built Sortformer fixture (tests/reference/make_sortformer_fixtures.py,
diar_sortformer_4spk-v1's recipe) on its 10 s clip of three espeak-ng recordings put end to end
(its `long` clip); the turns the tests expect are NeMo's own `diarize()` lines from the
fixture's JSON. Which speaker a word gets is NeMo's rule, `speech_transcript.speakers`, which
tests/test_speaker_words_live_nemo.py holds to NeMo's own function.
"""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from mlx_audio_frontend import load_audio
from nemo_mlx_parakeet import load
from nemo_mlx_parakeet.diarization import load_diarizer
from speech_transcript import SpeakerTurn, Word
from speech_transcript.speakers import in_time_order, word_speakers

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"
DIARIZER = FIXTURES / "checkpoints" / "diar_sortformer_4spk-v1.nemo"
META = json.loads((FIXTURES / "checkpoints" / "diar_sortformer_4spk-v1.json").read_text())
NEMO_TURNS = [
    SpeakerTurn(float(a), float(b), s)
    for a, b, s in (line.split() for line in META["forward"]["long"]["diarize_lines"])
]


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> Path:
    """The fixture's `long` clip as a 16-bit WAV (its pieces are 16-bit WAVs: no change)."""
    pieces = [
        np.array(load_audio(FIXTURES / "audio" / f))[a:b] for f, a, b in META["clips"]["long"]
    ]
    samples = np.concatenate(pieces)
    assert len(samples) == META["forward"]["long"]["num_samples"]
    path = tmp_path_factory.mktemp("audio") / "voices.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(np.round(samples * 32768).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """Where the Sortformer fixture is converted, once for the module."""
    return tmp_path_factory.mktemp("cache")


def _run(audio: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", str(audio), "--model", "demo",
               "--diarize", str(DIARIZER), "--cache-dir", str(cache), "--quiet", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_api_words_and_segments_carry_nemos_speakers(audio, cache):
    model = load("demo", verbose=False)
    diarizer = load_diarizer(DIARIZER, cache_dir=cache, verbose=False)
    result = model.transcribe(audio, diarize=diarizer)
    plain = model.transcribe(audio)
    assert [(w.text, w.start, w.end) for w in result.words] == [
        (w.text, w.start, w.end) for w in plain.words
    ], "diarization changes no word"
    assert len(result.words) > 10
    assert result.speakers == in_time_order(NEMO_TURNS)
    assert [w.speaker for w in result.words] == word_speakers(plain.words, NEMO_TURNS)
    assert len({w.speaker for w in result.words}) > 1, "the clip has several speakers"
    # segments: NeMo's segments cut where the speaker changes, one speaker each
    assert [w for s in result.segments for w in s.words] == result.words
    for segment in result.segments:
        assert {w.speaker for w in segment.words} == {segment.speaker}
    for before, after in zip(result.segments, result.segments[1:], strict=False):
        same_asr_segment = any(before.words[-1] in s.words and after.words[0] in s.words
                               for s in plain.segments)  # fmt: skip
        if same_asr_segment:
            assert before.speaker != after.speaker


def test_cli_json_and_rttm(audio, cache, tmp_path):
    result = _run(audio, cache, "--output-format", "all", "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "voices.json").read_text())
    assert all(w["speaker"].startswith("speaker_") for w in data["words"])
    assert all(s["speaker"].startswith("speaker_") for s in data["segments"])
    ordered = in_time_order(NEMO_TURNS)
    assert [(t["start"], t["end"], t["speaker"]) for t in data["speakers"]] == [
        (t.start, t.end, t.speaker) for t in ordered
    ]
    rttm = (tmp_path / "voices.rttm").read_text().splitlines()
    assert rttm == [t.rttm("voices") for t in ordered]
    assert rttm[0].split()[:5] == ["SPEAKER", "voices", "1", "0.000", "0.080"]
    txt = (tmp_path / "voices.txt").read_text().splitlines()
    assert all(line.startswith("[speaker_") for line in txt)
    assert " ".join(line.split("] ", 1)[1] for line in txt) == data["text"]
    srt = (tmp_path / "voices.srt").read_text()
    cues = [block.splitlines()[2] for block in srt.strip().split("\n\n")]
    assert all(cue.startswith("[speaker_") for cue in cues)
    tsv = (tmp_path / "voices.tsv").read_text().splitlines()
    assert tsv[0] == "start\tend\tspeaker\ttext"
    assert all(row.split("\t")[2].startswith("speaker_") for row in tsv[1:])
    assert (tmp_path / "voices.vtt").read_text().count("[speaker_") == len(cues)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--output-format", "rttm"], "needs --diarize"),
     (["--diarize", str(FIXTURES / "models" / "tdt.nemo")], "not a Sortformer"),
     (["--diarize", "/no/such/model.nemo"], "--diarize")],
)  # fmt: skip
def test_diarize_usage_errors_are_one_line(audio, cache, args, message):
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", str(audio), "--model", "demo",
               *args, "--cache-dir", str(cache), "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr


def test_a_stream_gets_its_speakers_when_it_ends(audio, cache, tmp_path):
    """`--streaming --diarize` on a model that is not cache-aware (NeMo labels no such stream
    live): the lines shown live have no speakers; the last line and the transcript written at
    the end do, the whole stream diarized (NeMo's turns) and NeMo's rule on its words."""
    result = _run(audio, cache, "--streaming", "--output-format", "json",
                  "--output-dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "[speaker_" in lines[-1]
    assert not any("[speaker_" in line for line in lines[:-1])
    data = json.loads((tmp_path / "voices.json").read_text())
    assert data["words"]
    words = [Word(w["text"], w["start"], w["end"]) for w in data["words"]]
    assert [w["speaker"] for w in data["words"]] == word_speakers(words, NEMO_TURNS)
    assert [(t["start"], t["end"]) for t in data["speakers"]] == [
        (t.start, t.end) for t in in_time_order(NEMO_TURNS)
    ]
