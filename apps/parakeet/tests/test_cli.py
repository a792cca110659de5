"""The real `parakeet` command as a subprocess: formats, batches, stdin, errors."""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
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
    label, text = result.stdout.decode().splitlines()  # the good file's text, labelled
    assert label == f"# {AUDIO / 'odd_length_16k.wav'}"
    assert text.strip()


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


def test_a_wordpiece_tokenizer_is_refused_in_one_line(cache, tmp_path):
    converted = tmp_path / "wpe-like"
    subprocess.run([sys.executable, "-m", "nemo_mlx_convert.cli", str(MODELS / "tdt.nemo"), str(converted), "--quiet"],
                   check=True)  # fmt: skip
    config = json.loads((converted / "config.json").read_text())
    config["nemo_config"]["tokenizer"]["type"] = "wpe"
    (converted / "config.json").write_text(json.dumps(config))
    result = run(str(AUDIO / "odd_length_16k.wav"), "--model", str(converted), cache=cache)
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"parakeet: error: {converted}: WordPiece (wpe) tokenizers are not supported yet; "
        "SentencePiece (bpe) checkpoints are\n"
    )


def test_a_checkpoint_without_a_conformer_encoder_is_refused_in_one_line(cache, tmp_path):
    """NeMo's character CTC class is also QuartzNet's, Jasper's and Citrinet's (a ConvASREncoder):
    the class and the encoder are named, and what runs (the config is read before the weights)."""
    config = {"target": "nemo.collections.asr.models.ctc_models.EncDecCTCModel",
              "labels": [" ", "a", "b"],
              "encoder": {"_target_": "nemo.collections.asr.modules.ConvASREncoder", "feat_in": 64},
              "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder",
                          "feat_in": 1024, "num_classes": 3, "vocabulary": [" ", "a", "b"]}}  # fmt: skip
    nemo = tmp_path / "quartznet-like.nemo"
    with tarfile.open(nemo, "w") as archive:
        data = json.dumps(config).encode()  # JSON is YAML
        member = tarfile.TarInfo("./model_config.yaml")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    result = run(str(AUDIO / "odd_length_16k.wav"), "--model", str(nemo), cache=cache)
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"parakeet: error: {nemo}: EncDecCTCModel with a ConvASREncoder encoder (QuartzNet, "
        "Jasper, Citrinet) is not supported; supported: Conformer and FastConformer encoders "
        "(ConformerEncoder)\n"
    )


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


# ------------------------------------------------------------ option values and outputs

CLIP = str(AUDIO / "odd_length_16k.wav")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--local-attention", "-1", "5"], "argument --local-attention: must be a whole number of at least 0, got -1"),
        (["--local-attention", "0", "0"], "argument --local-attention: LEFT and RIGHT cannot both be 0"),
        (["--decoding", "beam", "--beam-size", "-2"], "argument --beam-size: must be a whole number of at least 1, got -2"),
        (["--beam-size", "0"], "argument --beam-size: must be a whole number of at least 1, got 0"),
        (["--batch-size", "0"], "argument --batch-size: must be a whole number of at least 1, got 0"),
        (["--max-words", "0"], "argument --max-words: must be a whole number of at least 1, got 0"),
        (["--chunk-duration", "-1"], "argument --chunk-duration: must be a number above 0, got -1"),
        (["--chunk-duration", "20", "--overlap-duration", "10"], "--overlap-duration (10 s) must be under half of --chunk-duration (20 s)"),
        (["--overlap-duration", "-3"], "argument --overlap-duration: must be a number of at least 0, got -3"),
        (["--streaming", "--chunk", "0"], "argument --chunk: must be a number above 0, got 0"),
        (["--streaming", "--decoding", "beam"], "--streaming decodes greedily; --decoding beam is for whole inputs"),
        (["--output-template", "../x.{ext}"], "--output-template '../x.{ext}' names '../x.txt', outside --output-dir"),
        (["--output-template", "{lang}.{ext}"], "--output-template '{lang}.{ext}': unknown field {lang} (fields: {stem} {name} {index} {ext})"),
        ([str(AUDIO / "speech_16k_mono.wav"), "--output-template", "same.{ext}"], f"--output-template 'same.{{ext}}' gives {CLIP} and {AUDIO / 'speech_16k_mono.wav'} the same file 'same.txt': put {{index}} in it"),
        (["--model", str(MODELS / "streaming_hybrid.nemo"), "--streaming", "--chunk", "1"], "--chunk is for offline-trained models; this cache-aware model streams in the chunks it was trained for: choose them with --context LEFT RIGHT, one of [[8, 3], [8, 1], [8, 0]]"),
    ],
)  # fmt: skip
def test_bad_option_values_are_one_line_and_write_nothing(cache, tmp_path, args, message):
    out = tmp_path / "out"
    result = run(CLIP, "--model", "demo", *args, "--output-dir", str(out), cache=cache)
    assert result.returncode != 0
    stderr = result.stderr.decode()
    assert stderr == f"parakeet: error: {message}\n"
    assert not out.exists() or not any(out.iterdir())


def test_streaming_json_without_a_directory_is_refused(cache):
    result = run(CLIP, "--model", "demo", "--streaming", "--output-format", "json", cache=cache)
    assert (result.returncode, result.stdout) == (1, b"")
    assert result.stderr.decode() == (
        "parakeet: error: --streaming prints timed lines; --output-format json needs --output-dir\n"
    )


def test_an_output_dir_that_is_a_file(cache, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    result = run(CLIP, "--model", "demo", "--output-dir", str(taken), cache=cache)
    assert result.returncode == 1
    assert (
        result.stderr.decode()
        == f"parakeet: error: --output-dir {taken} is a file, not a directory\n"
    )
    assert taken.read_text() == "mine"


def test_a_random_bytes_nemo_is_one_line(cache, tmp_path):
    bad = tmp_path / "random.nemo"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    out = tmp_path / "out"
    result = run(CLIP, "--model", str(bad), "--output-dir", str(out), cache=cache)
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"parakeet: error: {bad}: not a .nemo checkpoint (a .nemo file is a tar archive; "
        "this file is not one)\n"
    )
    assert not any(out.iterdir())


def test_transcripts_get_the_umask_mode(cache, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", CLIP, "--model", "demo", "--output-format", "all",
               "--output-dir", str(out), "--cache-dir", str(cache), "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, umask=0o027, check=False)
    assert result.returncode == 0, result.stderr
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert len(modes) == 5
    assert set(modes.values()) == {0o640}, modes


def test_times_stay_within_a_short_input(cache, tmp_path):
    """The 0.062 s clip: NeMo's last token ends 0.331 s in (padding); ours end at 0.062."""
    clip = str(AUDIO / "shorter_than_frame_16k.wav")
    out = tmp_path / "out"
    result = run(
        clip, "--model", "demo", "--output-format", "all", "--output-dir", str(out), cache=cache
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "shorter_than_frame_16k.json").read_text())
    assert data["duration"] == 0.062
    assert data["words"]
    times = [t for key in ("tokens", "words", "segments") for item in data[key]
             for t in (item["start"], item["end"])]  # fmt: skip
    assert max(times) == 0.062
    assert "00:00:00,000 --> 00:00:00,062" in (out / "shorter_than_frame_16k.srt").read_text()
    assert "00:00:00.000 --> 00:00:00.062" in (out / "shorter_than_frame_16k.vtt").read_text()
    assert (out / "shorter_than_frame_16k.tsv").read_text().splitlines()[1].split("\t")[:2] == [
        "0",
        "62",
    ]


def test_several_inputs_on_stdout_are_told_apart(cache):
    clips = [CLIP, str(AUDIO / "speech_16k_mono.wav")]
    srt = run(*clips, "--model", "demo", "--output-format", "srt", cache=cache)
    assert srt.returncode == 0, srt.stderr
    documents = srt.stdout.decode().split("\n\n# ")
    assert len(documents) == 2
    assert documents[0].startswith(f"# {clips[0]}\n1\n00:00:00,000 --> ")
    assert documents[1].startswith(f"{clips[1]}\n1\n00:00:00,000 --> ")
    lines = run(
        *clips, "--model", "demo", "--output-format", "json", cache=cache
    ).stdout.splitlines()
    assert [json.loads(line)["source"] for line in lines] == clips


def test_verbose_times_each_input(cache):
    clips = [CLIP, str(AUDIO / "speech_16k_mono.wav")]
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", *clips, "--model", "demo", "--verbose",
               "--cache-dir", str(cache)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("parakeet: ")]
    assert any(line.startswith("parakeet: model ready in ") for line in lines)
    assert any(line.startswith(f"parakeet: {clips[0]}: 1.50 s of audio, done ") for line in lines)
    assert any(line.startswith(f"parakeet: {clips[1]}: 3.09 s of audio, done ") for line in lines)
    assert lines[-1].startswith("parakeet: 2 input(s), 4.59 s of audio in ")


def test_the_help_states_what_happens_to_long_inputs():
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", "--help"]
    text = " ".join(
        subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    )
    assert "merged (default: every input whole)" in text
    assert ("beyond that with NeMo's long-audio recipe, local attention [256, 256] (default 10: "
            "24.4 min for 8-head models such as parakeet-tdt-0.6b)") in text  # fmt: skip
    assert "each input's audio duration and finishing time" in text


def test_the_first_run_in_a_dtype_says_kernels_are_compiled(cache, tmp_path):
    """MLX's CPU backend compiles its kernels into <TMPDIR>/mlx on first use: a fresh
    temporary directory makes this the first run, and the next run is silent about it."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    command = [
        sys.executable,
        "-m",
        "nemo_mlx_parakeet.cli",
        CLIP,
        "--model",
        "demo",
        "--cache-dir",
        str(cache),
    ]
    first = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert first.returncode == 0, first.stderr
    assert (
        "parakeet: first run in float32 with this MLX: its CPU kernels are being compiled"
        in first.stderr
    )
    assert list((tmp_path / "mlx").glob("*/cpu/*.so"))  # MLX did compile there
    second = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert second.returncode == 0, second.stderr
    assert "kernels are being compiled" not in second.stderr
    assert second.stdout == first.stdout
