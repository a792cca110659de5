"""The command-line pieces the `parakeet` and `canary` commands share, so both behave alike:
the output options, writing each result, one-line errors and the exit codes."""

from __future__ import annotations

import argparse
import string
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import NoReturn

from .files import check_writable, write_atomically
from .model import Transcript
from .precision import DTYPES, QUANTIZE_BITS
from .segmenting import SegmentLimits
from .writers import FORMATS, formats_for, render, to_json_model

STDIN = "-"  # the audio argument that reads one input from stdin
TEMPLATE_FIELDS = ("stem", "name", "index", "ext")


class UsageError(ValueError):
    """Options or arguments that cannot work together; `run_command` reports it as one line."""


def add_audio_argument(parser: argparse.ArgumentParser, nargs: str = "+") -> None:
    """Add the positional audio inputs (`-`: stdin)."""
    parser.add_argument(
        "audio", nargs=nargs, help="audio or video files; - reads one file from stdin"
    )


def check_audio_arguments(audio: list[str]) -> None:
    """UsageError unless stdin is given at most once (it can be read once)."""
    if audio.count(STDIN) > 1:
        raise UsageError("stdin (-) can be given once")


def add_output_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the `output` group (--output-format, --output-dir, --output-template) and return it,
    for an app to add its own output options after these."""
    output = parser.add_argument_group("output")
    output.add_argument(
        "--output-format", default="txt", choices=[*FORMATS, "all"], help="default: txt"
    )
    output.add_argument(
        "--output-dir", type=Path, help="write files here instead of printing to stdout"
    )
    output.add_argument("--output-template", default="{stem}.{ext}",
                        help="file names in --output-dir; fields {stem} {name} {index} {ext} "
                             "(default: {stem}.{ext}); names that two outputs would share, or "
                             "that leave the directory, are refused")  # fmt: skip
    return output


def add_model_arguments(group: argparse._ActionsContainer) -> None:
    """Add --quantize (`precision.QUANTIZE_BITS`) and --cache-dir (converted models)."""
    group.add_argument("--quantize", type=int, choices=list(QUANTIZE_BITS),
                       help="quantise the linear layers to 8 or 4 bits (less memory; output may change slightly)")  # fmt: skip
    add_cache_dir_argument(group)


def add_cache_dir_argument(group: argparse._ActionsContainer) -> None:
    """Add --cache-dir (where converted models are kept)."""
    group.add_argument(
        "--cache-dir",
        type=Path,
        help="where converted models are kept (default: ~/.cache/nemo-mlx)",
    )


def add_vad_argument(group: argparse._ActionsContainer) -> None:
    """Add --vad [MODEL]: a frame-VAD checkpoint whose speech segments are all the ASR
    encoder sees (True without MODEL: mlx-frame-vad's default; unset: no VAD)."""
    group.add_argument("--vad", nargs="?", const=True, metavar="MODEL",
                       help="skip non-speech before the encoder: transcribe only the speech "
                            "segments a NeMo frame-VAD model finds, with NeMo's post-processing "
                            "(MODEL: repo id, .nemo or model directory; default "
                            "nvidia/Frame_VAD_Multilingual_MarbleNet_v2.0)")  # fmt: skip


def add_diarize_argument(group: argparse._ActionsContainer) -> None:
    """Add --diarize [MODEL]: a Sortformer checkpoint whose speaker turns label every word and
    segment (True without MODEL: mlx-diarization's default; unset: no diarization)."""
    group.add_argument("--diarize", nargs="?", const=True, metavar="MODEL",
                       help="who spoke when: a speaker on every word and segment (segments split "
                            "where it changes), from a NeMo Sortformer diarizer with NeMo's "
                            "post-processing; --output-format rttm writes its turns (MODEL: repo "
                            "id, .nemo or model directory; default nvidia/diar_sortformer_4spk-v1, "
                            "for a live stream nvidia/diar_streaming_sortformer_4spk-v2)")  # fmt: skip


def add_verbosity_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --verbose (the load time, each input's timing and a total on stderr) and --quiet."""
    parser.add_argument("--verbose", action="store_true",
                        help="on stderr: the model's load time, each input's audio duration and "
                             "finishing time, and a total with the real-time factor")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress, no hints")


class CommandParser(argparse.ArgumentParser):
    """argparse with one-line errors (`print_error`) and exit 2, without the usage block
    argparse prints first (`--help` still shows it)."""

    def error(self, message: str) -> NoReturn:
        print_error(self.prog, message)
        raise SystemExit(2)


def command_parser(prog: str, description: str) -> CommandParser:
    """The app's parser: one-line errors (`CommandParser`)."""
    return CommandParser(prog=prog, description=description)


def add_dtype_argument(group: argparse._ActionsContainer) -> None:
    """Add --dtype (the names `precision.DTYPES`; unset: the device's default)."""
    group.add_argument(
        "--dtype", choices=list(DTYPES), help="default: float32 on CPU, bfloat16 on GPU"
    )


def input_name(argument: str) -> str:
    """How an audio argument is named in results and file names: `stdin` for `-`."""
    return "stdin" if argument == STDIN else argument


def read_input(argument: str) -> str | bytes:
    """An audio argument as the models take it: the path, or stdin's bytes for `-`."""
    return sys.stdin.buffer.read() if argument == STDIN else argument


@dataclass
class Output:
    """Where and how a run's transcripts go: each to stdout, or one file per input and format
    under `directory`, named by `template` ({stem} {name} {index} {ext}) and written whole or
    not at all. Several inputs on stdout are told apart: JSON as one line per input with its
    `source`, RTTM as it is (its lines name the input), the other formats as documents each
    after a `# <source>` line."""

    formats: tuple[str, ...]
    directory: Path | None = None
    template: str = "{stem}.{ext}"
    several: bool = False  # several inputs to stdout
    timestamps: bool = False  # txt: one timed line per segment
    limits: SegmentLimits | None = None  # srt/vtt/tsv segments
    highlight_words: bool = False  # srt/vtt: one cue per word
    printed: int = field(default=0, init=False)  # documents written to stdout so far

    @classmethod
    def from_args(
        cls,
        args: argparse.Namespace,
        names: Sequence[str],
        *,
        timestamps: bool = False,
        limits: SegmentLimits | None = None,
        highlight_words: bool = False,
    ) -> Output:
        """From the options of `add_output_arguments`, for the inputs named `names` (as
        `input_name` names them), and the app's own. UsageError when they cannot work: several
        formats to stdout; a directory that cannot be written; a template with an unknown
        field, naming a file outside the directory, or giving two outputs one name (checked
        before any model is loaded)."""
        speakers = bool(getattr(args, "diarize", None))
        if args.output_format == "rttm" and not speakers:
            raise UsageError("--output-format rttm writes speaker turns: it needs --diarize")
        formats = tuple(formats_for(args.output_format, speakers))
        if args.output_dir is None and len(formats) > 1:
            raise UsageError("--output-format all needs --output-dir")
        if args.output_dir is not None:
            check_template(args.output_template, names, formats)
            if problem := check_writable(args.output_dir):
                raise UsageError(f"--output-dir {problem}")
        several = args.output_dir is None and len(names) > 1
        return cls(formats, args.output_dir, args.output_template, several, timestamps, limits,
                   highlight_words)  # fmt: skip

    def write(self, result: Transcript, index: int) -> None:
        """Write `result`, the `index`-th input (0-based), in every format; files are named
        after `result.source` (`stdin` for stdin, `transcript` when it has none)."""
        for fmt in self.formats:
            if fmt == "json" and self.several:
                text = to_json_model(result).model_dump_json() + "\n"
            else:
                text = render(result, fmt, limits=self.limits, highlight_words=self.highlight_words,
                              timestamps=self.timestamps)  # fmt: skip
            if self.directory is None:
                if self.several and fmt not in ("json", "rttm"):  # RTTM lines name their file
                    separator = "\n" if self.printed else ""
                    text = f"{separator}# {result.source or 'transcript'}\n{text}"
                self.printed += 1
                sys.stdout.write(text)
                sys.stdout.flush()
                continue
            write_atomically(self.directory / file_name(self.template, result.source, index, fmt),
                             text)  # fmt: skip


def file_name(template: str, source: str | None, index: int, ext: str) -> str:
    """The output file name `template` gives input `source` (the `index`-th) in format `ext`."""
    path = PurePath(source or "transcript")
    return template.format(stem=path.stem, name=path.name, index=index, ext=ext)


def check_template(template: str, names: Sequence[str], formats: Sequence[str]) -> None:
    """UsageError unless `template` names every input's every format a distinct file inside
    the output directory."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as err:
        raise UsageError(f"--output-template {template!r}: {err}") from None
    allowed = " ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS)
    for name in fields:
        if name not in TEMPLATE_FIELDS:
            raise UsageError(f"--output-template {template!r}: unknown field {{{name}}} "
                             f"(fields: {allowed})")  # fmt: skip
    seen: dict[str, tuple[int, str]] = {}
    for index, source in enumerate(names):
        for fmt in formats:
            try:
                target = file_name(template, source, index, fmt)
            except (ValueError, IndexError) as err:
                raise UsageError(f"--output-template {template!r}: {err}") from None
            path = PurePath(target)
            if not target or path.is_absolute() or ".." in path.parts:
                raise UsageError(f"--output-template {template!r} names {target!r}, outside "
                                 "--output-dir")  # fmt: skip
            if (earlier := seen.get(target)) is not None:
                same_input = earlier[0] == index
                what = (f"the {earlier[1]} and {fmt} outputs" if same_input
                        else f"{names[earlier[0]]} and {source}")  # fmt: skip
                raise UsageError(f"--output-template {template!r} gives {what} the same file "
                                 f"{target!r}: put {'{ext}' if same_input else '{index}'} in it")  # fmt: skip
            seen[target] = (index, fmt)


@dataclass
class Timing:
    """--verbose: the load time, each input's audio duration and finishing time, and a total,
    on stderr (inputs are decoded in batches, so an input's time is when it was done)."""

    prog: str
    enabled: bool
    start: float = field(default_factory=time.perf_counter)
    audio: float = 0.0
    inputs: int = 0

    def loaded(self) -> None:
        """The model is ready: report its load time and time the inputs from here."""
        self._say(f"model ready in {time.perf_counter() - self.start:.2f} s")
        self.start = time.perf_counter()

    def finished(self, result: Transcript) -> None:
        self.audio += result.duration
        self.inputs += 1
        self._say(f"{result.source or 'transcript'}: {result.duration:.2f} s of audio, done "
                  f"{time.perf_counter() - self.start:.2f} s after the model was ready")  # fmt: skip

    def total(self) -> None:
        elapsed = time.perf_counter() - self.start
        speed = f" ({self.audio / elapsed:.1f}x real time)" if elapsed > 0 and self.audio else ""
        self._say(f"{self.inputs} input(s), {self.audio:.2f} s of audio in {elapsed:.2f} s{speed}")

    def _say(self, message: str) -> None:
        if self.enabled:
            print(f"{self.prog}: {message}", file=sys.stderr)


def print_error(prog: str, message: str) -> None:
    """One line on stderr, `<prog>: error: <message>`, whitespace folded."""
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)


def run_command(
    prog: str,
    run: Callable[[argparse.Namespace], int],
    args: argparse.Namespace,
    errors: tuple[type[Exception], ...],
) -> int:
    """`run(args)`'s exit code; a UsageError or an exception in `errors` (the app's own) is
    one error line and exit 1, Ctrl-C exit 130, and a closed stdout (`... | head`) ends
    quietly with 0."""
    try:
        return run(args)
    except (UsageError, *errors) as err:
        print_error(prog, str(err))
        return 1
    except KeyboardInterrupt:
        print_error(prog, "interrupted")
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0
