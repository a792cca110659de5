"""The `canary` command: transcribe or translate audio files (or stdin) with a Canary model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mlx_cpu_runtime.auto

from tqdm import tqdm

from mlx_audio_frontend import AudioError
from speech_transcript.cli import (
    Output,
    add_audio_argument,
    add_dtype_argument,
    add_output_arguments,
    check_audio_arguments,
    input_name,
    print_error,
    read_input,
    run_command,
)

from .errors import CanaryError
from .loading import DEFAULT_MODEL, load
from .model import CHUNK_SECONDS
from .prompt import PromptOptions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="canary",
        description="Transcribe or translate speech with NVIDIA Canary models on MLX, with NeMo's "
        "exact output. Models are converted from NVIDIA's checkpoints on first use.",
    )
    add_audio_argument(parser)
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"Hugging Face repo id, .nemo file or model directory (default: {DEFAULT_MODEL})")  # fmt: skip
    task = parser.add_argument_group("task")
    task.add_argument("--source-lang", default="en", help="the spoken language (default: en)")
    task.add_argument("--target-lang", help="the output language (default: the source language)")
    task.add_argument("--task", choices=["asr", "ast"],
                      help="asr: transcribe, ast: translate (default: from the two languages)")  # fmt: skip
    task.add_argument("--pnc", action=argparse.BooleanOptionalAction, default=True,
                      help="punctuation and capitals (default: on)")  # fmt: skip
    task.add_argument("--timestamps", action="store_true",
                      help="word and segment times, from the frame tokens the model writes "
                      "(canary-1b-flash, canary-180m-flash)")  # fmt: skip
    add_output_arguments(parser)
    decoding = parser.add_argument_group("decoding")
    decoding.add_argument("--decoding", choices=["greedy", "beam"],
                          help="default: the checkpoint's (NeMo: beam search of width 1)")  # fmt: skip
    decoding.add_argument("--beam-size", type=int, help="beam width (default: the checkpoint's)")
    decoding.add_argument(
        "--batch-size", type=int, default=8, help="chunks decoded together (default 8)"
    )
    decoding.add_argument("--chunk-duration", type=float, default=CHUNK_SECONDS,
                          help=f"longer inputs are cut into chunks of S seconds (default {CHUNK_SECONDS:g})")  # fmt: skip
    add_dtype_argument(decoding)
    parser.add_argument("--quantize", type=int, choices=[8, 4],
                        help="quantise the linear layers to 8 or 4 bits (less memory; output may change slightly)")  # fmt: skip
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="where converted models are kept (default: ~/.cache/nemo-mlx)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress, no hints")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command("canary", _run, build_parser().parse_args(argv), (CanaryError, AudioError))


def _run(args: argparse.Namespace) -> int:
    check_audio_arguments(args.audio)
    output = Output.from_args(args, len(args.audio))
    if not args.quiet:
        mlx_cpu_runtime.hint("canary")
    model = load(args.model, dtype=args.dtype, cache_dir=args.cache_dir, verbose=not args.quiet,
                 quantize=args.quantize)  # fmt: skip
    options = dict(source_lang=args.source_lang, target_lang=args.target_lang, task=args.task, pnc=args.pnc,
                   timestamps=args.timestamps, decoding=args.decoding, beam_size=args.beam_size,
                   batch_size=args.batch_size, chunk_duration=args.chunk_duration)  # fmt: skip
    # Languages, task and timestamps are checked before any audio is read.
    model.prompt(PromptOptions(args.source_lang, args.target_lang, args.task, args.pnc,
                               timestamps=args.timestamps))  # fmt: skip
    failures = 0
    show = len(args.audio) > 1 and not args.quiet and sys.stderr.isatty()
    for index, name in enumerate(tqdm(args.audio, unit="file", disable=not show, file=sys.stderr)):
        try:
            result = model.transcribe(read_input(name), **options)
        except AudioError as err:
            print_error("canary", str(err))
            failures += 1
            continue
        result.source = input_name(name)
        output.write(result, index)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
