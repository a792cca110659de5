"""The command-line pieces both apps use: options, where results go, errors and exit codes."""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys

import pytest

from speech_transcript import Segment, SegmentLimits, Transcript, Word, render, seconds_at
from speech_transcript.cli import (
    Output,
    Timing,
    UsageError,
    add_audio_argument,
    add_dtype_argument,
    add_output_arguments,
    check_audio_arguments,
    command_parser,
    input_name,
    run_command,
)
from speech_transcript.options import (
    FrameContext,
    float_between,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
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
    output = Output.from_args(_args(), ["a.wav"])
    assert (output.formats, output.directory, output.template) == (("txt",), None, "{stem}.{ext}")
    assert _args().dtype is None
    assert _args("--dtype", "float16").dtype == "float16"


def test_several_formats_need_a_directory():
    with pytest.raises(UsageError, match=r"^--output-format all needs --output-dir$"):
        Output.from_args(_args("--output-format", "all"), ["a.wav"])


def test_an_unwritable_directory_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(
        UsageError, match=r"^--output-dir .*file/sub is not writable \(Not a directory\)$"
    ):
        Output.from_args(_args("--output-dir", str(tmp_path / "file" / "sub")), ["a.wav"])


def test_json_on_stdout_is_one_document_or_one_line_per_input(capsys):
    Output.from_args(_args("--output-format", "json"), ["a.wav"]).write(_transcript("a.wav"), 0)
    one = capsys.readouterr().out
    assert one.count("\n") > 2  # indented
    assert json.loads(one)["text"] == "Hello world. Again"
    several = Output.from_args(_args("--output-format", "json"), ["a.wav", "b.wav"])
    several.write(_transcript("a.wav"), 0)
    several.write(_transcript("b.wav"), 1)
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["text"] for line in lines] == ["Hello world. Again"] * 2
    assert [json.loads(line)["source"] for line in lines] == ["a.wav", "b.wav"]


def test_all_formats_to_files_named_by_the_template(tmp_path, capsys):
    args = _args("--output-format", "all", "--output-dir", str(tmp_path / "out"),
                 "--output-template", "{index}-{stem}-{name}.{ext}")  # fmt: skip
    output = Output.from_args(args, ["clips/talk.wav", "stdin"])
    output.write(_transcript("clips/talk.wav"), 0)
    output.write(_transcript("stdin"), 1)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    exts = ("json", "srt", "tsv", "txt", "vtt")
    assert names == [f"0-talk-talk.wav.{e}" for e in exts] + [f"1-stdin-stdin.{e}" for e in exts]
    assert json.loads((tmp_path / "out" / "0-talk-talk.wav.json").read_text())["duration"] == 3.0
    assert (tmp_path / "out" / "1-stdin-stdin.txt").read_text() == "Hello world. Again\n"
    assert capsys.readouterr().out == ""


def test_app_options_reach_the_writers(capsys):
    timed = Output.from_args(_args(), ["a.wav"], timestamps=True)
    timed.write(_transcript("a.wav"), 0)
    assert capsys.readouterr().out == "[0.00 - 0.90] Hello world.\n[2.50 - 2.90] Again\n"
    cues = Output.from_args(_args("--output-format", "srt"), ["a.wav"],
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


# ------------------------------------------------------------ option values and templates


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("app", "test")
    parser.add_argument("--count", type=positive_int)
    parser.add_argument("--seconds", type=positive_float)
    parser.add_argument("--gap", type=non_negative_float)
    parser.add_argument("--window", type=float_between(1, 40))
    parser.add_argument("--context", type=non_negative_int, nargs=2, action=FrameContext)
    return parser


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--count", "0"], "app: error: argument --count: must be a whole number of at least 1, got 0\n"),
        (["--count", "-2"], "app: error: argument --count: must be a whole number of at least 1, got -2\n"),
        (["--count", "2.5"], "app: error: argument --count: must be a whole number of at least 1, got '2.5'\n"),
        (["--seconds", "-1"], "app: error: argument --seconds: must be a number above 0, got -1\n"),
        (["--seconds", "nan"], "app: error: argument --seconds: must be a number above 0, got 'nan'\n"),
        (["--seconds", "inf"], "app: error: argument --seconds: must be a number above 0, got inf\n"),
        (["--gap", "-0.5"], "app: error: argument --gap: must be a number of at least 0, got -0.5\n"),
        (["--window", "41"], "app: error: argument --window: must be from 1 to 40, got 41\n"),
        (["--context", "-1", "5"], "app: error: argument --context: must be a whole number of at least 0, got -1\n"),
        (["--context", "0", "0"], "app: error: argument --context: LEFT and RIGHT cannot both be 0\n"),
        (["--context", "3"], "app: error: argument --context: expected 2 arguments\n"),
    ],
)  # fmt: skip
def test_bad_option_values_are_one_line_naming_the_option(capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        _parser().parse_args(argv)
    assert stop.value.code == 2
    assert capsys.readouterr().err == message


def test_good_option_values_parse():
    args = _parser().parse_args(["--count", "3", "--seconds", "0.5", "--gap", "0", "--window",
                                 "40", "--context", "0", "5"])  # fmt: skip
    assert (args.count, args.seconds, args.gap, args.window, args.context) == (
        3,
        0.5,
        0.0,
        40.0,
        [0, 5],
    )


@pytest.mark.parametrize(
    ("template", "names", "message"),
    [
        ("../{stem}.{ext}", ["a.wav"], r"names '../a.txt', outside --output-dir$"),
        ("/tmp/{stem}.{ext}", ["a.wav"], r"names '/tmp/a.txt', outside --output-dir$"),
        ("x/../../{stem}.{ext}", ["a.wav"], "outside --output-dir"),
        ("{stem}.{lang}", ["a.wav"], r"unknown field \{lang\} \(fields: \{stem\} \{name\} \{index\} \{ext\}\)$"),
        ("{stem", ["a.wav"], "expected '}' before end of string"),
        ("same.{ext}", ["a.wav", "b.wav"], r"gives a.wav and b.wav the same file 'same.txt': put \{index\} in it$"),
        ("{stem}.{ext}", ["x/a.wav", "y/a.wav"], r"gives x/a.wav and y/a.wav the same file 'a.txt'"),
        ("{stem}.txt", ["a.wav"], r"gives the txt and srt outputs the same file 'a.txt': put \{ext\} in it$"),
    ],
)  # fmt: skip
def test_templates_that_escape_or_collide_are_refused(tmp_path, template, names, message):
    args = _args(
        "--output-format",
        "all",
        "--output-dir",
        str(tmp_path / "out"),
        "--output-template",
        template,
    )
    with pytest.raises(UsageError, match=message):
        Output.from_args(args, names)
    assert not (tmp_path / "out").exists()  # refused before anything is made


def test_templates_with_subfolders_and_indices_are_fine(tmp_path):
    args = _args("--output-dir", str(tmp_path), "--output-template", "sub/{index}-{stem}.{ext}")
    output = Output.from_args(args, ["x/a.wav", "y/a.wav"])
    output.write(_transcript("x/a.wav"), 0)
    output.write(_transcript("y/a.wav"), 1)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["0-a.txt", "1-a.txt"]


def test_an_output_dir_that_is_a_file_is_named_as_such(tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(UsageError, match=r"^--output-dir .*taken is a file, not a directory$"):
        Output.from_args(_args("--output-dir", str(tmp_path / "taken")), ["a.wav"])


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_get_the_umask_mode(tmp_path, umask):
    previous = os.umask(umask)
    try:
        Output.from_args(_args("--output-dir", str(tmp_path)), ["a.wav"]).write(
            _transcript("a.wav"), 0
        )
        plain = tmp_path / "plain"
        plain.write_text("x")  # what open() gives under this umask
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


@pytest.mark.parametrize("fmt", ["srt", "vtt", "txt", "tsv"])
def test_several_inputs_on_stdout_are_labelled_documents(capsys, fmt):
    output = Output.from_args(_args("--output-format", fmt), ["a.wav", "b.wav"])
    output.write(_transcript("a.wav"), 0)
    output.write(_transcript("b.wav"), 1)
    a, b = render(_transcript("a.wav"), fmt), render(_transcript("b.wav"), fmt)
    assert capsys.readouterr().out == f"# a.wav\n{a}\n# b.wav\n{b}"  # a blank line between
    one = Output.from_args(_args("--output-format", fmt), ["a.wav"])
    one.write(_transcript("a.wav"), 0)
    assert capsys.readouterr().out == render(_transcript("a.wav"), fmt)  # one input: unlabelled


def test_timing_reports_each_input_and_a_total(capsys):
    Timing("app", enabled=False).finished(_transcript("a.wav"))
    assert capsys.readouterr().err == ""
    timing = Timing("app", enabled=True)
    timing.loaded()
    timing.finished(_transcript("a.wav"))
    timing.total()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("app: model ready in ")
    assert lines[1].startswith("app: a.wav: 3.00 s of audio, done ")
    assert lines[2].startswith("app: 1 input(s), 3.00 s of audio in ")


def test_seconds_stay_within_the_input():
    assert seconds_at(10, 0.08, 5.0) == pytest.approx(0.8)
    assert seconds_at(10, 0.08, 0.5) == 0.5  # a last token reaching past the end
    assert seconds_at(1, 0.08, 5.0, lead=0.3) == 0.0  # inside the padding in front
    assert seconds_at(10, 0.08, 50.0, start=40.0, lead=0.3) == pytest.approx(40.5)
