"""The real `canary` command as a subprocess: option values refused in one line, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
AUDIO = REPO / "tests" / "fixtures" / "audio"
MODEL = REPO / "tests" / "fixtures" / "models" / "canary.nemo"
CLIP = str(AUDIO / "odd_length_16k.wav")


def run(*args: str, cache: Path) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "nemo_mlx_canary.cli",
        *args,
        "--cache-dir",
        str(cache),
        "--quiet",
    ]
    return subprocess.run(command, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--beam-size", "0"], "argument --beam-size: must be a whole number of at least 1, got 0"),
        (["--decoding", "beam", "--beam-size", "-2"], "argument --beam-size: must be a whole number of at least 1, got -2"),
        (["--batch-size", "0"], "argument --batch-size: must be a whole number of at least 1, got 0"),
        (["--chunk-duration", "50"], "argument --chunk-duration: must be from 1 to 40, got 50"),
        (["--chunk-duration", "-1"], "argument --chunk-duration: must be from 1 to 40, got -1"),
        (["--output-template", "../{stem}.{ext}"], "--output-template '../{stem}.{ext}' names '../odd_length_16k.txt', outside --output-dir"),
        ([CLIP, "--output-template", "x.{ext}"], f"--output-template 'x.{{ext}}' gives {CLIP} and {CLIP} the same file 'x.txt': put {{index}} in it"),
    ],
)  # fmt: skip
def test_bad_option_values_are_one_line_and_write_nothing(cache, tmp_path, args, message):
    out = tmp_path / "out"
    result = run(CLIP, "--model", str(MODEL), *args, "--output-dir", str(out), cache=cache)
    assert result.returncode != 0
    assert result.stderr == f"canary: error: {message}\n"
    assert not out.exists() or not any(out.iterdir())


def test_an_explicit_beam_size_is_used(cache):
    """`--beam-size 1` is a beam of one, not the checkpoint's default taking its place."""
    one = run(CLIP, "--model", str(MODEL), "--decoding", "beam", "--beam-size", "1", cache=cache)
    greedy = run(CLIP, "--model", str(MODEL), "--decoding", "greedy", cache=cache)
    assert one.returncode == 0, one.stderr
    assert one.stdout == greedy.stdout  # a beam of one finds the greedy hypothesis


def test_verbose_times_each_input(cache):
    command = [sys.executable, "-m", "nemo_mlx_canary.cli", CLIP, "--model", str(MODEL), "--verbose",
               "--cache-dir", str(cache)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert f"canary: {CLIP}: 1.50 s of audio, done " in result.stderr
    assert "canary: 1 input(s), 1.50 s of audio in " in result.stderr
