"""The `diarize` command: audio files (or stdin) -> who spoke when, as RTTM, JSON or text."""

from __future__ import annotations

import argparse
from pathlib import Path, PurePath

import mlx_cpu_runtime.auto  # noqa: F401  (loads the optimised BLAS before mlx)

from mlx_audio_frontend import AudioError
from mlx_diarization import PostProcessing
from speech_transcript import cli as common
from speech_transcript.files import check_writable, write_atomically
from speech_transcript.options import float_between

from .formats import EXTENSIONS, FORMATS, render
from .loading import DEFAULT_MODEL, DiarizeError, load


def build_parser() -> argparse.ArgumentParser:
    parser = common.command_parser(
        "diarize",
        "Who spoke when, with NVIDIA Sortformer models on MLX and NeMo's exact output. "
        "Models are converted from NVIDIA's checkpoints on first use.",
    )
    common.add_audio_argument(parser)
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"Hugging Face repo id, .nemo file or model directory (default: {DEFAULT_MODEL})")  # fmt: skip
    output = parser.add_argument_group("output")
    output.add_argument("--output-format", default="rttm", choices=FORMATS, help="default: rttm")
    output.add_argument("--output-dir", type=Path,
                        help="write <stem>.<ext> files here instead of printing to stdout")  # fmt: skip
    post = parser.add_argument_group("post-processing (NeMo's; defaults as its diarize())")
    unit = float_between(0, 1)
    seconds = float_between(0, 3600)
    post.add_argument("--onset", type=unit, default=0.5, help="speech starts above (0.5)")
    post.add_argument("--offset", type=unit, default=0.5, help="speech ends below (0.5)")
    post.add_argument("--pad-onset", type=seconds, default=0.0, help="seconds added before")
    post.add_argument("--pad-offset", type=seconds, default=0.0, help="seconds added after")
    post.add_argument("--min-duration-on", type=seconds, default=0.0,
                      help="shorter speech is dropped (seconds)")  # fmt: skip
    post.add_argument("--min-duration-off", type=seconds, default=0.0,
                      help="shorter gaps are filled (seconds)")  # fmt: skip
    common.add_cache_dir_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return common.run_command(
        "diarize", _run, build_parser().parse_intermixed_args(argv), (DiarizeError, AudioError)
    )


def _run(args: argparse.Namespace) -> int:
    common.check_audio_arguments(args.audio)
    if args.output_dir is not None:
        if problem := check_writable(args.output_dir):
            raise common.UsageError(f"--output-dir {problem}")
        stems = [PurePath(common.input_name(a)).stem for a in args.audio]
        if len(set(stems)) < len(stems):
            raise common.UsageError(
                "two inputs share a file name stem: their --output-dir files would clash"
            )
    params = PostProcessing(args.onset, args.offset, args.pad_onset, args.pad_offset,
                            args.min_duration_on, args.min_duration_off)  # fmt: skip
    diarizer = load(args.model, cache_dir=args.cache_dir)
    failures = 0
    for name in args.audio:
        source = common.input_name(name)
        try:
            turns = diarizer.diarize(common.read_input(name), params)
        except AudioError as err:
            common.print_error("diarize", str(err))
            failures += 1
            continue
        stem = PurePath(source).stem
        text = render(turns, stem, args.output_format)
        if args.output_dir is None:
            print(text, end="")
        else:
            write_atomically(args.output_dir / f"{stem}.{EXTENSIONS[args.output_format]}", text)
    return 1 if failures else 0
