"""The command-line pieces the `parakeet` and `canary` commands share, so both behave alike:
the output options, writing each result, one-line errors and the exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .files import check_writable, write_atomically
from .model import Transcript
from .precision import DTYPES
from .segmenting import SegmentLimits
from .writers import FORMATS, formats_for, render, to_json_model

STDIN = "-"  # the audio argument that reads one input from stdin


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
                        help="file names in --output-dir; fields {stem} {name} {index} {ext} (default: {stem}.{ext})")  # fmt: skip
    return output


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


@dataclass(frozen=True)
class Output:
    """Where and how a run's transcripts go: each to stdout, or one file per input and format
    under `directory`, named by `template` ({stem} {name} {index} {ext}) and written whole or
    not at all."""

    formats: tuple[str, ...]
    directory: Path | None = None
    template: str = "{stem}.{ext}"
    json_lines: bool = False  # JSON on stdout as one line per input (several inputs)
    timestamps: bool = False  # txt: one timed line per segment
    limits: SegmentLimits | None = None  # srt/vtt/tsv segments
    highlight_words: bool = False  # srt/vtt: one cue per word

    @classmethod
    def from_args(
        cls,
        args: argparse.Namespace,
        inputs: int,
        *,
        timestamps: bool = False,
        limits: SegmentLimits | None = None,
        highlight_words: bool = False,
    ) -> Output:
        """From the options of `add_output_arguments`, for `inputs` inputs, and the app's own.
        UsageError when they cannot work: several formats to stdout, or a directory that
        cannot be written (checked before any model is loaded)."""
        formats = tuple(formats_for(args.output_format))
        if args.output_dir is None and len(formats) > 1:
            raise UsageError("--output-format all needs --output-dir")
        if args.output_dir is not None and (problem := check_writable(args.output_dir)):
            raise UsageError(problem)
        json_lines = args.output_dir is None and inputs > 1
        return cls(formats, args.output_dir, args.output_template, json_lines, timestamps, limits,
                   highlight_words)  # fmt: skip

    def write(self, result: Transcript, index: int) -> None:
        """Write `result`, the `index`-th input (0-based), in every format; files are named
        after `result.source` (`stdin` for stdin, `transcript` when it has none)."""
        for fmt in self.formats:
            if fmt == "json" and self.json_lines:
                text = to_json_model(result).model_dump_json() + "\n"
            else:
                text = render(result, fmt, limits=self.limits, highlight_words=self.highlight_words,
                              timestamps=self.timestamps)  # fmt: skip
            if self.directory is None:
                sys.stdout.write(text)
                sys.stdout.flush()
                continue
            source = Path(result.source or "transcript")
            name = self.template.format(stem=source.stem, name=source.name, index=index, ext=fmt)
            write_atomically(self.directory / name, text)


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
