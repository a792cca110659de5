"""The command-line pieces both apps use: options, where results go, errors and exit codes."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from speech_transcript import Segment, SegmentLimits, Transcript, Word
from speech_transcript.cli import (
    Output,
    UsageError,
    add_audio_argument,
    add_dtype_argument,
    add_output_arguments,
    check_audio_arguments,
    input_name,
    run_command,
)
from speech_transcript.precision import DTYPES, default_dtype, resolve_precision

WORDS = [Word("Hello", 0.0, 0.4), Word("world.", 0.5, 0.9), Word("Again", 2.5, 2.9)]


def _transcript(source: str) -> Transcript:
    segments = [
        Segment("Hello world.", 0.0, 0.9, tuple(WORDS[:2])),
        Segment("Again", 2.5, 2.9, WORDS[2:3]),
    ]
    result = Transcript("Hello world. Again", 3.0, "m", words=WORDS, segments=segments)
    result.source = source
    return result


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_audio_argument(parser, nargs="*")
    add_output_arguments(parser)
    add_dtype_argument(parser)
    return parser.parse_args(argv)


def test_defaults_are_text_on_stdout():
    output = Output.from_args(_args(), inputs=1)
    assert (output.formats, output.directory, output.template) == (("txt",), None, "{stem}.{ext}")
    assert _args().dtype is None
    assert _args("--dtype", "float16").dtype == "float16"


def test_several_formats_need_a_directory():
    with pytest.raises(UsageError, match=r"^--output-format all needs --output-dir$"):
        Output.from_args(_args("--output-format", "all"), inputs=1)


def test_an_unwritable_directory_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="output directory is not writable"):
        Output.from_args(_args("--output-dir", str(tmp_path / "file" / "sub")), inputs=1)


def test_json_on_stdout_is_one_document_or_one_line_per_input(capsys):
    Output.from_args(_args("--output-format", "json"), inputs=1).write(_transcript("a.wav"), 0)
    one = capsys.readouterr().out
    assert one.count("\n") > 2  # indented
    assert json.loads(one)["text"] == "Hello world. Again"
    several = Output.from_args(_args("--output-format", "json"), inputs=2)
    several.write(_transcript("a.wav"), 0)
    several.write(_transcript("b.wav"), 1)
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["text"] for line in lines] == ["Hello world. Again"] * 2


def test_all_formats_to_files_named_by_the_template(tmp_path, capsys):
    args = _args("--output-format", "all", "--output-dir", str(tmp_path / "out"),
                 "--output-template", "{index}-{stem}-{name}.{ext}")  # fmt: skip
    output = Output.from_args(args, inputs=2)
    output.write(_transcript("clips/talk.wav"), 0)
    output.write(_transcript("stdin"), 1)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    exts = ("json", "srt", "tsv", "txt", "vtt")
    assert names == [f"0-talk-talk.wav.{e}" for e in exts] + [f"1-stdin-stdin.{e}" for e in exts]
    assert json.loads((tmp_path / "out" / "0-talk-talk.wav.json").read_text())["duration"] == 3.0
    assert (tmp_path / "out" / "1-stdin-stdin.txt").read_text() == "Hello world. Again\n"
    assert capsys.readouterr().out == ""


def test_app_options_reach_the_writers(capsys):
    timed = Output.from_args(_args(), inputs=1, timestamps=True)
    timed.write(_transcript("a.wav"), 0)
    assert capsys.readouterr().out == "[0.00 - 0.90] Hello world.\n[2.50 - 2.90] Again\n"
    cues = Output.from_args(_args("--output-format", "srt"), inputs=1,
                            limits=SegmentLimits(max_words=1), highlight_words=True)  # fmt: skip
    cues.write(_transcript("a.wav"), 0)
    srt = capsys.readouterr().out
    assert srt.count(" --> ") == 3
    assert "<u>Hello</u>" in srt


def test_stdin_is_named_stdin_and_read_once():
    assert (input_name("-"), input_name("talk.wav")) == ("stdin", "talk.wav")
    assert _args("a.wav", "-").audio == ["a.wav", "-"]
    check_audio_arguments(["a.wav", "-", "b.wav"])
    with pytest.raises(UsageError, match=r"^stdin \(-\) can be given once$"):
        check_audio_arguments(["-", "a.wav", "-"])


class AppError(Exception):
    pass


def _raises(error: BaseException):
    def run(_: argparse.Namespace) -> int:
        raise error

    return run


@pytest.mark.parametrize(
    ("error", "code", "stderr"),
    [
        (AppError("bad\n   input"), 1, "app: error: bad input\n"),
        (UsageError("bad options"), 1, "app: error: bad options\n"),
        (KeyboardInterrupt(), 130, "app: error: interrupted\n"),
    ],
)
def test_errors_are_one_line_and_an_exit_code(capsys, error, code, stderr):
    assert run_command("app", _raises(error), argparse.Namespace(), (AppError,)) == code
    assert capsys.readouterr().err == stderr


def test_exit_codes_of_a_run_and_other_errors():
    assert run_command("app", lambda args: 3, argparse.Namespace(), (AppError,)) == 3
    for error in (RuntimeError("x"), ValueError("x")):  # not the app's: a bug, with its traceback
        with pytest.raises(type(error)):
            run_command("app", _raises(error), argparse.Namespace(), (AppError,))


def test_precision_defaults_by_device_and_checks_the_names():
    assert (default_dtype(gpu=False), default_dtype(gpu=True)) == ("float32", "bfloat16")
    assert resolve_precision(None, None, gpu=True) == "bfloat16"
    assert resolve_precision("float16", 4, gpu=False) == "float16"
    assert DTYPES == ("float32", "bfloat16", "float16")
    with pytest.raises(ValueError, match=r"^dtype 'int8' is not supported; choose from float32, bfloat16, float16$"):  # fmt: skip
        resolve_precision("int8", None, gpu=False)
    with pytest.raises(ValueError, match=r"^quantize must be 8 or 4 bits, got 3$"):
        resolve_precision(None, 3, gpu=False)


def test_a_closed_stdout_ends_quietly():
    code = (
        "import argparse, sys\n"
        "from speech_transcript.cli import run_command\n"
        "def run(args):\n"
        "    raise BrokenPipeError\n"
        "sys.exit(run_command('app', run, argparse.Namespace(), (ValueError,)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (0, "")
