"""The `canary` command: transcribe or translate audio files (or stdin) with a Canary model."""

from __future__ import annotations

import argparse
import sys

import mlx_cpu_runtime.auto  # noqa: F401  (loads the optimised BLAS before mlx)
from mlx_cpu_runtime import kernels_compiled

from tqdm import tqdm

from mlx_audio_frontend import AudioError
from speech_corpus import cli as corpus
from speech_transcript import cli as common
from speech_transcript.biasing import BiasingError, add_biasing_arguments, biasing_from_args
from speech_transcript.cli import Output, Timing
from speech_transcript.options import float_between, positive_int

from .biasing import fusion_for
from .errors import CanaryError
from .loading import DEFAULT_MODEL, load, load_diarizer, load_vad
from .model import CHUNK_SECONDS
from .prompt import PromptOptions


def build_parser() -> argparse.ArgumentParser:
    parser = common.command_parser(
        "canary",
        "Transcribe or translate speech with NVIDIA Canary models on MLX, with NeMo's "
        "exact output. Models are converted from NVIDIA's checkpoints on first use.",
    )
    common.add_audio_argument(parser, nargs="*")
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
    common.add_output_arguments(parser)
    decoding = parser.add_argument_group("decoding")
    decoding.add_argument("--decoding", choices=["greedy", "beam"],
                          help="default: the checkpoint's (NeMo: beam search of width 1)")  # fmt: skip
    decoding.add_argument(
        "--beam-size", type=positive_int, help="beam width (default: the checkpoint's)"
    )
    decoding.add_argument(
        "--batch-size", type=positive_int, default=8, help="chunks decoded together (default 8)"
    )
    decoding.add_argument("--chunk-duration", type=float_between(1, CHUNK_SECONDS), default=CHUNK_SECONDS,
                          help=f"longer inputs are cut into chunks of S seconds, 1 to {CHUNK_SECONDS:g} "
                               f"(default {CHUNK_SECONDS:g})")  # fmt: skip
    common.add_dtype_argument(decoding)
    common.add_vad_argument(parser.add_argument_group("voice activity"))
    add_biasing_arguments(parser)
    corpus.add_corpus_arguments(parser)
    common.add_diarize_argument(parser.add_argument_group("speakers"))
    common.add_model_arguments(parser)
    common.add_verbosity_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return common.run_command(
        "canary",
        _run,
        build_parser().parse_intermixed_args(argv),
        (CanaryError, AudioError, BiasingError),
    )


def _run(args: argparse.Namespace) -> int:
    if args.manifest is not None:
        return _run_manifest(args)
    corpus.check(args)
    if not args.audio:
        raise common.UsageError("no audio given (a file, -, or --manifest)")
    common.check_audio_arguments(args.audio)
    if args.diarize and not args.timestamps:
        raise common.UsageError("--diarize needs --timestamps: words get speakers by their times")
    biasing = biasing_from_args(args)  # phrase files and the LM read before the model loads
    output = Output.from_args(args, [common.input_name(a) for a in args.audio])
    timing = Timing("canary", args.verbose)
    model = load(args.model, dtype=args.dtype, cache_dir=args.cache_dir, verbose=not args.quiet,
                 quantize=args.quantize)  # fmt: skip
    vad = load_vad(args.vad, cache_dir=args.cache_dir, verbose=not args.quiet)
    diarizer = load_diarizer(args.diarize, cache_dir=args.cache_dir, verbose=not args.quiet)
    timing.loaded()
    options = dict(source_lang=args.source_lang, target_lang=args.target_lang, task=args.task, pnc=args.pnc,
                   timestamps=args.timestamps, decoding=args.decoding, beam_size=args.beam_size,
                   batch_size=args.batch_size, chunk_duration=args.chunk_duration, vad=vad,
                   diarize=diarizer, biasing=biasing)  # fmt: skip
    # Languages, task, timestamps and fusion are checked before any audio is read.
    model.prompt(PromptOptions(args.source_lang, args.target_lang, args.task, args.pnc,
                               timestamps=args.timestamps))  # fmt: skip
    fusion_for(biasing, model.tokenizer, args.source_lang, args.decoding or model.default_decoding)
    with kernels_compiled(model.dtype, "canary", notify=not args.quiet):
        failures = _run_files(model, args, options, output, timing)
    return 1 if failures else 0


def _run_manifest(args: argparse.Namespace) -> int:
    """--manifest: the job runs in `speech_corpus` with a transcriber built from the options."""
    if biasing_from_args(args):
        raise common.UsageError("--manifest takes no --boost-* or --lm (not built yet)")
    from functools import partial

    from .corpus import transcriber

    factory = partial(transcriber, args.model, dtype=args.dtype, cache_dir=args.cache_dir,
                      quantize=args.quantize, verbose=not args.quiet and args.ray is None,
                      source_lang=args.source_lang, target_lang=args.target_lang, task=args.task,
                      pnc=args.pnc, timestamps=args.timestamps, decoding=args.decoding,
                      beam_size=args.beam_size, batch_size=args.batch_size,
                      chunk_duration=args.chunk_duration)  # fmt: skip
    return corpus.run("canary", args, factory)


def _run_files(
    model, args: argparse.Namespace, options: dict, output: Output, timing: Timing
) -> int:
    """Transcribe each input in turn; the number that could not be read."""
    failures = 0
    show = len(args.audio) > 1 and not args.quiet and (args.verbose or sys.stderr.isatty())
    bar = tqdm(args.audio, unit="file", disable=not show, file=sys.stderr)
    for index, name in enumerate(bar):
        try:
            result = model.transcribe(common.read_input(name), **options)
        except AudioError as err:
            bar.clear()
            common.print_error("canary", str(err))
            failures += 1
            continue
        result.source = common.input_name(name)
        if timing.enabled:
            bar.clear()
        timing.finished(result)
        output.write(result, index)
    bar.close()
    timing.total()
    return failures


if __name__ == "__main__":
    raise SystemExit(main())
