"""The biasing options of the `parakeet` command: bad values are one line and a non-zero
exit, before any audio is read; streaming takes the options too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import nemo_mlx_parakeet as parakeet
from nemo_mlx_parakeet.demo import EXAMPLE
from speech_transcript.biasing import Biasing

REPO = Path(__file__).resolve().parents[3]
BIASING = json.loads((REPO / "tests" / "fixtures" / "demo" / "biasing.json").read_text())


def run(*args: str, cache: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", str(EXAMPLE), "--model", "demo",
               *args, "--cache-dir", str(cache), "--quiet"]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def bad_arpa(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lm") / "bad.arpa"
    path.write_text("not an arpa file\n")
    return path


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--boost-file", "/no/such/names.txt"], 1, "cannot read phrase file /no/such/names.txt"),
        (["--boost-phrase", "anna", "--boost-alpha", "nan"], 2,
         "argument --boost-alpha: must be a number of at least 0, got 'nan'"),
        (["--boost-phrase", "anna", "--boost-alpha", "-1"], 2,
         "argument --boost-alpha: must be a number of at least 0, got -1"),
        (["--lm", "/no/such.arpa", "--lm-alpha", "0.5"], 1, "LM file /no/such.arpa does not exist"),
        (["--lm", "BAD", "--lm-alpha", "0.5"], 1, "not an ARPA file (no \\data\\ header)"),
        (["--word-spotter", "--boost-phrase", "anna", "--decoding", "beam"], 1,
         "--word-spotter works with greedy decoding"),
        (["--word-spotter", "--boost-phrase", "anna", "--boost-alpha", "2"], 1,
         "--word-spotter takes phrases and --boost-score only"),
        (["--word-spotter", "--boost-phrase", "anna", "--streaming"], 1,
         "the word spotter works on whole inputs, not on a stream"),
        (["--manifest", "rows.jsonl", "--boost-phrase", "anna"], 1,
         "--manifest takes no --boost-*, --lm or --word-spotter"),
    ],
)  # fmt: skip
def test_bad_values_are_one_line(cache, bad_arpa, args, code, message):
    result = run(*[str(bad_arpa) if a == "BAD" else a for a in args], cache=cache)
    assert result.returncode == code
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("parakeet: error: ")
    assert message in result.stderr


def test_streaming_takes_the_phrases_and_the_stream_carries_them(cache):
    """--streaming with --boost-phrase runs; the API's stream with the fixture's phrases
    ends in the offline boosted transcript (the greedy stream carries the tree's state)."""
    result = run("--streaming", "--boost-phrase", "anna", cache=cache)
    assert result.returncode == 0, result.stderr
    model = parakeet.load("demo", cache_dir=cache, verbose=False)
    biasing = Biasing(tuple(BIASING["phrases"]), boost_alpha=BIASING["boosting_tree_alpha"])
    clip = REPO / "tests" / "fixtures" / "demo" / BIASING["heads"]["rnnt"]["boost"]["changed"][0]
    offline = model.transcribe(clip, biasing=biasing)
    samples = model.load_audio(clip)
    with model.transcribe_stream(chunk=2.0, context=(1000, 1000), biasing=biasing) as stream:
        stream.add_audio(samples)
        streamed = stream.finalize()
    assert streamed.text == offline.text
    assert offline.text == BIASING["heads"]["rnnt"]["boost"]["clips"][clip.relative_to(
        clip.parents[1]).as_posix()]["text"]  # fmt: skip
