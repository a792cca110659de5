"""The real `parakeet` command as a subprocess: formats, batches, stdin, errors."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
AUDIO = REPO / "tests" / "fixtures" / "audio"
MODELS = REPO / "tests" / "fixtures" / "models"


def run(*args: str, stdin: bytes | None = None, cache: Path) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "nemo_mlx_parakeet.cli",
        *args,
        "--cache-dir",
        str(cache),
        "--quiet",
    ]
    return subprocess.run(command, input=stdin, capture_output=True, check=False)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_json_to_stdout(cache):
    result = run(str(AUDIO / "speech_16k_mono.wav"), "--model", str(MODELS / "tdt.nemo"), "--output-format", "json",
                 cache=cache)  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"text", "duration", "model", "segments", "words", "tokens"}
    assert data["tokens"]
    assert abs(data["duration"] - 49459 / 16000) < 1e-3


def test_all_formats_to_a_directory_with_a_template(cache, tmp_path):
    out = tmp_path / "out"
    result = run(str(AUDIO / "speech_22k.flac"), str(AUDIO / "odd_length_16k.wav"), "--model", str(MODELS / "rnnt.nemo"),
                 "--output-format", "all", "--output-dir", str(out), "--output-template", "{index}-{stem}.{ext}",
                 cache=cache)  # fmt: skip
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in out.iterdir())
    expected = sorted(f"{i}-{stem}.{ext}" for i, stem in enumerate(["speech_22k", "odd_length_16k"])
                      for ext in ["txt", "srt", "vtt", "tsv", "json"])  # fmt: skip
    assert names == expected
    assert (out / "0-speech_22k.vtt").read_text().startswith("WEBVTT")


def test_stdin(cache):
    data = (AUDIO / "speech_24k.mp3").read_bytes()
    from_stdin = run("-", "--model", str(MODELS / "ctc.nemo"), stdin=data, cache=cache)
    from_file = run(str(AUDIO / "speech_24k.mp3"), "--model", str(MODELS / "ctc.nemo"), cache=cache)
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout == from_file.stdout
    assert from_stdin.stdout.strip()


def test_batch_equals_one_by_one(cache):
    clips = [
        str(AUDIO / c)
        for c in ("speech_48k.ogg", "shorter_than_frame_16k.wav", "silence_padded_16k.wav")
    ]
    batched = run(*clips, "--model", str(MODELS / "hybrid_tdt_ctc.nemo"), "--output-format", "json",
                  "--batch-size", "3", cache=cache)  # fmt: skip
    lines = [json.loads(line) for line in batched.stdout.splitlines()]
    assert len(lines) == 3
    for clip, line in zip(clips, lines, strict=True):
        alone = run(
            clip,
            "--model",
            str(MODELS / "hybrid_tdt_ctc.nemo"),
            "--output-format",
            "json",
            cache=cache,
        )
        assert json.loads(alone.stdout)["tokens"] == line["tokens"]


def test_a_bad_file_is_reported_and_the_others_finish(cache, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    result = run(str(broken), str(AUDIO / "odd_length_16k.wav"), str(tmp_path / "missing.wav"), "--model",
                 str(MODELS / "tdt.nemo"), cache=cache)  # fmt: skip
    assert result.returncode == 1
    errors = result.stderr.decode().strip().splitlines()
    assert len(errors) == 2
    assert all(line.startswith("parakeet: error: ") for line in errors)
    assert "missing.wav" in errors[1]
    assert len(result.stdout.decode().strip().splitlines()) == 1  # the good file's text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "no-such-model.nemo"], "no such file"),
        (["--model", "not a/repo/id"], "not a model directory"),
        (["--output-format", "all"], "needs --output-dir"),
        (["--mic"], "takes no audio files"),
        (["--model", str(MODELS / "ctc.nemo"), "--head", "tdt"], "no tdt head"),
    ],
)
def test_usage_errors_are_one_line(cache, args, message):
    result = run(str(AUDIO / "odd_length_16k.wav"), *args, cache=cache)
    assert result.returncode != 0
    stderr = result.stderr.decode()
    assert stderr.count("\n") == 1, stderr
    assert message in stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_output_dir_not_writable(cache, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = run(str(AUDIO / "odd_length_16k.wav"), "--model", str(MODELS / "tdt.nemo"), "--output-dir",
                 str(locked / "sub"), cache=cache)  # fmt: skip
    assert result.returncode == 1
    assert "not writable" in result.stderr.decode()


def test_a_canary_model_is_pointed_to_canary(cache, tmp_path):
    converted = tmp_path / "canary-like"
    subprocess.run([sys.executable, "-m", "nemo_mlx_convert.cli", str(MODELS / "tdt.nemo"), str(converted), "--quiet"],
                   check=True)  # fmt: skip
    config = json.loads((converted / "config.json").read_text())
    config["model_class"] = "nemo.collections.asr.models.aed_multitask_models.EncDecMultiTaskModel"
    (converted / "config.json").write_text(json.dumps(config))
    result = run(str(AUDIO / "odd_length_16k.wav"), "--model", str(converted), cache=cache)
    assert result.returncode == 1
    assert "canary" in result.stderr.decode()


def test_no_partial_output_file_on_failure(cache, tmp_path):
    out = tmp_path / "out"
    result = run(str(tmp_path / "missing.wav"), "--model", str(MODELS / "tdt.nemo"), "--output-dir", str(out),
                 cache=cache)  # fmt: skip
    assert result.returncode == 1
    assert list(out.iterdir()) == []


def test_console_script_is_installed():
    assert shutil.which("parakeet")


def test_no_network_and_no_cache_is_one_clear_line(cache, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", str(AUDIO / "odd_length_16k.wav"), "--model",
               "nvidia/parakeet-tdt-0.6b-v3", "--cache-dir", str(cache), "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "not in the local Hugging Face cache" in result.stderr


# ------------------------------------------------------------------------ streaming


def test_streaming_a_file_prints_growing_lines_ending_in_the_transcript(cache):
    """Not a terminal: one line per update that adds final text; with a context covering
    the file, the last line is the offline transcript."""
    clip, model = str(AUDIO / "speech_22k.flac"), str(MODELS / "rnnt.nemo")
    offline = run(clip, "--model", model, "--output-format", "json", cache=cache)
    assert offline.returncode == 0, offline.stderr
    offline = json.loads(offline.stdout)
    streamed = run(clip, "--model", model, "--streaming", "--chunk", "0.5", "--context", "1000", "1000",
                   cache=cache)  # fmt: skip
    assert streamed.returncode == 0, streamed.stderr
    lines = streamed.stdout.decode().splitlines()
    seconds, text = lines[-1].split("\t")
    assert text == offline["text"]
    assert abs(float(seconds) - offline["duration"]) < 0.01

    small = run(clip, "--model", model, "--streaming", "--chunk", "0.32", "--context", "20", "4",
                cache=cache)  # fmt: skip
    assert small.returncode == 0, small.stderr
    rows = [line.split("\t") for line in small.stdout.decode().splitlines()]
    assert len(rows) > 2  # text appeared while the audio was being fed
    times = [float(t) for t, _ in rows]
    assert times == sorted(times)
    assert times[0] < times[-1]
    for (_, before), (_, after) in itertools.pairwise(rows):
        assert after.startswith(before.rstrip())  # final text only grows


def test_streaming_cache_aware_model_with_a_lookahead_and_output_files(cache, tmp_path):
    meta = json.loads((MODELS / "streaming_hybrid.json").read_text())
    expected = meta["contexts"]["8_1"]["clips"]["speech_48k.ogg"]["rnnt"]["text"]
    result = run(str(AUDIO / "speech_48k.ogg"), "--model", str(MODELS / "streaming_hybrid.nemo"),
                 "--streaming", "--context", "8", "1", "--output-dir", str(tmp_path), "--output-format", "json",
                 cache=cache)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines()[-1].split("\t")[1] == expected
    assert json.loads((tmp_path / "speech_48k.json").read_text())["text"] == expected


def test_streaming_realtime_takes_the_audio_duration(cache):
    import time

    start = time.monotonic()
    result = run(str(AUDIO / "odd_length_16k.wav"), "--model", str(MODELS / "ctc.nemo"), "--streaming",
                 "--realtime", cache=cache)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - start >= 24023 / 16000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # without the extra (CI); with it but no input device: "no usable microphone"
        (
            ["--mic"],
            "nemo-mlx-parakeet[mic]"
            if importlib.util.find_spec("sounddevice") is None
            else "no usable microphone",
        ),
        (["--realtime", str(AUDIO / "odd_length_16k.wav")], "need --streaming"),
        ([], "no audio given"),
        (["--streaming", "--context", "8", "2", str(AUDIO / "odd_length_16k.wav")], "not one of"),
    ],
)
def test_streaming_errors_are_one_line(cache, args, message):
    result = run(*args, "--model", str(MODELS / "streaming_hybrid.nemo"), cache=cache)
    assert result.returncode == 1
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("parakeet: error:"), lines
    assert message in lines[0]


def test_timed_text_and_subtitle_options_follow_the_json(cache):
    from nemo_mlx_parakeet import demo

    clip = str(demo.EXAMPLE)
    data = json.loads(run(clip, "--model", "demo", "--output-format", "json", cache=cache).stdout)
    assert len(data["words"]) > 2
    timed = run(clip, "--model", "demo", "--timestamps", cache=cache)
    assert timed.returncode == 0, timed.stderr
    assert timed.stdout.decode() == "".join(
        f"[{s['start']:.2f} - {s['end']:.2f}] {s['text']}\n" for s in data["segments"]
    )
    srt = run(clip, "--model", "demo", "--output-format", "srt", "--highlight-words", "--max-words", "2",
              cache=cache).stdout.decode()  # fmt: skip
    cues = srt.strip().split("\n\n")
    assert len(cues) == len(data["words"])  # one cue per word
    for cue, word in zip(cues, data["words"], strict=True):
        assert f"<u>{word['text']}</u>" in cue.splitlines()[2]
        assert len(cue.splitlines()[2].split()) <= 2
