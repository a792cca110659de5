"""The `parakeet` command: transcribe audio files (or stdin) with a Parakeet model."""

from __future__ import annotations

import argparse
import sys

import mlx_cpu_runtime.auto  # noqa: F401  (loads the optimised BLAS before mlx)
from mlx_cpu_runtime import kernels_compiled

from tqdm import tqdm

from mlx_audio_frontend import AudioError
from mlx_diarization import Diarizer
from mlx_frame_vad import FrameVAD
from speech_corpus import cli as corpus
from speech_transcript import SegmentLimits, Transcript
from speech_transcript import cli as common
from speech_transcript.biasing import (
    Biasing,
    BiasingError,
    add_biasing_arguments,
    biasing_from_args,
)
from speech_transcript.cli import Output, Timing, UsageError
from speech_transcript.options import (
    FrameContext,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)

from .attention import FULL_ATTENTION_BUDGET, LONG_AUDIO_ATTENTION
from .batching import OVERLAP_SECONDS
from .diarization import live_choice, load_diarizer
from .errors import ParakeetError
from .loading import DEFAULT_MODEL, load
from .speaker_asr import by_speaker, is_multitalker
from .vad import load_vad


def build_parser() -> argparse.ArgumentParser:
    parser = common.command_parser(
        "parakeet",
        "Transcribe speech with NVIDIA Parakeet models (TDT, RNNT, CTC, hybrid) on MLX, "
        "with NeMo's exact output. Models are converted from NVIDIA's checkpoints on first use.",
    )
    common.add_audio_argument(parser, nargs="*")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"Hugging Face repo id, .nemo file, model directory, or `demo` (bundled, offline) (default: {DEFAULT_MODEL})")  # fmt: skip
    _add_output_options(common.add_output_arguments(parser))
    _add_decoding_options(parser.add_argument_group("decoding"))
    common.add_vad_argument(parser.add_argument_group("voice activity"))
    add_biasing_arguments(parser)
    common.add_diarize_argument(parser.add_argument_group("speakers"))
    _add_streaming_options(parser.add_argument_group("streaming"))
    corpus.add_corpus_arguments(parser)
    common.add_model_arguments(parser)
    common.add_verbosity_arguments(parser)
    return parser


def _add_output_options(output: argparse._ArgumentGroup) -> None:
    """Parakeet's own output options, after the shared ones: timed lines and subtitle cues."""
    output.add_argument("--timestamps", action="store_true", help="txt: one timed line per segment")
    output.add_argument(
        "--highlight-words", action="store_true", help="srt/vtt: one cue per word, underlined"
    )
    output.add_argument(
        "--max-words", type=positive_int, help="srt/vtt/tsv: at most N words per segment"
    )
    output.add_argument(
        "--max-duration", type=positive_float, help="srt/vtt/tsv: at most S seconds per segment"
    )
    output.add_argument("--max-chars", type=positive_int, default=84,
                        help="srt/vtt/tsv: at most N characters (default 84)")  # fmt: skip
    output.add_argument(
        "--split-gap",
        type=positive_float,
        help="srt/vtt/tsv: start a new segment after S seconds of silence",
    )


def _add_decoding_options(decoding: argparse._ArgumentGroup) -> None:
    """The decoder, batches and precision, then how long inputs run (`_add_long_audio_options`)."""
    decoding.add_argument(
        "--decoding", choices=["greedy", "beam"], default="greedy", help="default: greedy"
    )
    decoding.add_argument(
        "--beam-size",
        type=positive_int,
        default=4,
        help="beam width for --decoding beam (default 4)",
    )
    decoding.add_argument("--length-penalty", type=float, default=1.0,
                          help="transducer beam: rank hypotheses by score / length ** P "
                               "(default 1, NeMo's score_norm; 0: raw score)")  # fmt: skip
    decoding.add_argument("--head", choices=["auto", "tdt", "rnnt", "ctc"], default="auto",
                          help="decoder of a hybrid TDT-CTC model (default: the transducer)")  # fmt: skip
    decoding.add_argument("--word-spotter", action="store_true",
                          help="spot the --boost-phrase / --boost-file phrases with NeMo's CTC-based "
                               "word spotter on the CTC head (CTC or hybrid models, greedy) and "
                               "merge them into the result, instead of boosting them in the "
                               "search; --boost-score is its bonus per token (default 3, NeMo's "
                               "recipe's); a phrase word_spelling1_spelling2 gives spellings")  # fmt: skip
    decoding.add_argument("--language",
                          help="language-prompt models (nvidia/nemotron-3.5-asr-streaming-0.6b): "
                               "the language to transcribe, one of the model's locales (en-US, "
                               "de-DE, ...) or auto, which finds it (default: auto, as NeMo)")  # fmt: skip
    decoding.add_argument(
        "--batch-size", type=positive_int, default=8, help="inputs decoded together (default 8)"
    )
    common.add_dtype_argument(decoding)
    _add_long_audio_options(decoding)


def _add_long_audio_options(decoding: argparse._ArgumentGroup) -> None:
    """Long inputs: the attention budget, chunks and their overlap, local attention."""
    decoding.add_argument("--attention-budget", type=positive_float, metavar="GIB",
                          default=FULL_ATTENTION_BUDGET / 2**30,
                          help="inputs run whole, with full attention while NeMo's attention "
                               "scores (batch x heads x frames^2 x 4 bytes) fit GIB GiB, beyond "
                               "that with NeMo's long-audio recipe, local attention "
                               f"{list(LONG_AUDIO_ATTENTION[1])} (default {FULL_ATTENTION_BUDGET / 2**30:g}: "
                               "24.4 min for 8-head models such as parakeet-tdt-0.6b)")  # fmt: skip
    decoding.add_argument("--chunk-duration", type=positive_float,
                          help="transcribe inputs longer than S seconds in overlapping chunks of S "
                               "seconds whose tokens are merged (default: every input whole)")  # fmt: skip
    decoding.add_argument("--overlap-duration", type=non_negative_float,
                          help="chunk overlap in seconds, under half the chunk (default: "
                               f"{OVERLAP_SECONDS:g}, or a quarter of a --chunk-duration under "
                               f"{4 * OVERLAP_SECONDS:g} s)")  # fmt: skip
    decoding.add_argument("--local-attention", type=non_negative_int, nargs=2, action=FrameContext,
                          metavar=("LEFT", "RIGHT"),
                          help="use local attention with this context in encoder frames (e.g. 256 "
                               "256; one side may be 0) for every input")  # fmt: skip


def _add_streaming_options(live: argparse._ArgumentGroup) -> None:
    """--streaming and --mic, and the chunk and context a stream runs with."""
    live.add_argument("--streaming", action="store_true",
                      help="transcribe while the audio is fed: a live line on a terminal, "
                           "timed lines otherwise")  # fmt: skip
    live.add_argument("--realtime", action="store_true",
                      help="with --streaming: feed files at the speed they play")  # fmt: skip
    live.add_argument("--mic", action="store_true",
                      help="stream from the default microphone (needs nemo-mlx-parakeet[mic]); Ctrl-C ends")  # fmt: skip
    live.add_argument("--chunk", type=positive_float,
                      help="seconds of audio per encoder step (offline-trained models; default 1.0)")  # fmt: skip
    live.add_argument("--context", type=non_negative_int, nargs=2, metavar=("LEFT", "RIGHT"),
                      help="encoder frames of context around each chunk; for cache-aware models "
                           "one of their att_context_size entries (its lookahead)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    return common.run_command(
        "parakeet", _run, build_parser().parse_intermixed_args(argv), (ParakeetError, BiasingError)
    )


def _check(args: argparse.Namespace) -> None:
    """UsageError for options that cannot work together (before any model is loaded)."""
    if args.mic and args.audio:
        raise UsageError("--mic takes no audio files")
    if not args.mic and not args.audio:
        raise UsageError("no audio given (a file, -, or --mic)")
    streaming = args.streaming or args.mic
    if (args.realtime or args.chunk or args.context) and not streaming:
        raise UsageError("--realtime, --chunk and --context need --streaming or --mic")
    if streaming and args.vad:
        raise UsageError("--vad is for whole inputs, not --streaming or --mic")
    if streaming and args.decoding == "beam":
        raise UsageError("--streaming decodes greedily; --decoding beam is for whole inputs")
    if streaming and args.output_dir is None and args.output_format != "txt":
        raise UsageError(f"--streaming prints timed lines; --output-format {args.output_format} "
                         "needs --output-dir")  # fmt: skip
    if args.chunk_duration is not None and _overlap(args) >= args.chunk_duration / 2:
        raise UsageError(f"--overlap-duration ({_overlap(args):g} s) must be under half of "
                         f"--chunk-duration ({args.chunk_duration:g} s)")  # fmt: skip
    common.check_audio_arguments(args.audio)


def _overlap(args: argparse.Namespace) -> float:
    """--overlap-duration, or its default: 15 s, or a quarter of a --chunk-duration under 60 s."""
    if args.overlap_duration is not None:
        return args.overlap_duration
    return min(OVERLAP_SECONDS, args.chunk_duration / 4) if args.chunk_duration else OVERLAP_SECONDS


def _run(args: argparse.Namespace) -> int:
    if args.manifest is not None:
        return _run_manifest(args)
    corpus.check(args)
    _check(args)
    biasing = biasing_from_args(args)  # phrase files and the LM read before the model loads
    if biasing.word_spotter and args.decoding == "beam":
        raise UsageError("--word-spotter works with greedy decoding (NeMo's recipe)")
    limits = SegmentLimits(max_words=args.max_words, max_duration=args.max_duration, max_chars=args.max_chars,
                           gap=args.split_gap)  # fmt: skip
    names = [common.input_name(a) for a in args.audio] or ["mic"]
    output = Output.from_args(args, names, timestamps=args.timestamps, limits=limits,
                              highlight_words=args.highlight_words)  # fmt: skip
    timing = Timing("parakeet", args.verbose)
    model = load(
        args.model,
        dtype=args.dtype,
        head=args.head,
        cache_dir=args.cache_dir,
        verbose=not args.quiet,
        quantize=args.quantize,
    )
    vad = None
    if args.vad:
        vad = load_vad(args.vad, cache_dir=args.cache_dir, verbose=not args.quiet)
    choice = live_choice(args.diarize) if args.streaming or args.mic else args.diarize
    diarizer = load_diarizer(choice, cache_dir=args.cache_dir, verbose=not args.quiet)
    timing.loaded()
    model.language(args.language)  # an unknown language is one line, before any audio is read
    if args.local_attention:
        model.encoder.change_attention_model("rel_pos_local_attn", args.local_attention)
    model.attention_budget = round(args.attention_budget * 2**30)
    model.decoding_aids(biasing)  # a malformed LM or phrase is one line, before any audio
    if args.verbose:
        model.notice = lambda line: print(f"parakeet: {line}", file=sys.stderr)
    with kernels_compiled(model.dtype, "parakeet", notify=not args.quiet):
        if args.streaming or args.mic:
            if diarizer is not None and is_multitalker(model):
                raise UsageError("--diarize on a multitalker checkpoint transcribes whole inputs "
                                 "per speaker; per-speaker streaming is the Python API's "
                                 "transcribe_speakers(..., streaming=True)")  # fmt: skip
            return _run_streaming(model, args, output, biasing, diarizer)
        return _run_files(model, args, output, timing, biasing, vad, diarizer)


def _run_manifest(args: argparse.Namespace) -> int:
    """--manifest: the job runs in `speech_corpus` with a transcriber built from the options."""
    if args.streaming or args.mic:
        raise UsageError("--manifest transcribes whole rows; it takes no --streaming or --mic")
    if biasing_from_args(args):
        raise UsageError("--manifest takes no --boost-*, --lm or --word-spotter (not built yet)")
    from functools import partial

    from .corpus import transcriber

    factory = partial(transcriber, args.model, dtype=args.dtype, head=args.head,
                      cache_dir=args.cache_dir, quantize=args.quantize,
                      attention_budget=round(args.attention_budget * 2**30),
                      local_attention=args.local_attention,
                      verbose=not args.quiet and args.ray is None, batch_size=args.batch_size,
                      decoding=args.decoding, beam_size=args.beam_size,
                      length_penalty=args.length_penalty, chunk_duration=args.chunk_duration,
                      overlap_duration=_overlap(args), language=args.language)  # fmt: skip
    return corpus.run("parakeet", args, factory)


def _run_files(
    model,
    args: argparse.Namespace,
    output: Output,
    timing: Timing,
    biasing: Biasing,
    vad: FrameVAD | None = None,
    diarizer: Diarizer | None = None,
) -> int:
    sources = [common.read_input(name) for name in args.audio]
    show_progress = len(sources) > 1 and not args.quiet and (args.verbose or sys.stderr.isatty())
    bar = tqdm(total=len(sources), unit="file", disable=not show_progress, file=sys.stderr)
    failures = 0
    if diarizer is not None and is_multitalker(model):  # a transcript per speaker, merged
        _check_multitalker(args, vad, biasing)
        results = by_speaker(model, sources, diarizer)
    else:
        results = model.transcribe_many(sources, batch_size=args.batch_size, decoding=args.decoding,
                                    beam_size=args.beam_size, length_penalty=args.length_penalty,
                                    chunk_duration=args.chunk_duration,
                                        overlap_duration=_overlap(args), progress=bar.update,
                                        language=args.language, vad=vad, biasing=biasing,
                                        diarize=diarizer)  # fmt: skip
    finished: dict[int, Transcript | None] = {}
    next_index = 0
    for index, result in results:
        if isinstance(result, AudioError):
            bar.clear()
            common.print_error("parakeet", str(result))
            failures += 1
            finished[index] = None
        else:
            result.source = common.input_name(args.audio[index])
            finished[index] = result
            if timing.enabled:
                bar.clear()
            timing.finished(result)
        while next_index in finished:  # print in the order the inputs were given
            done = finished.pop(next_index)
            if done is not None:
                output.write(done, next_index)
            next_index += 1
    bar.close()
    timing.total()
    return 1 if failures else 0


def _check_multitalker(args: argparse.Namespace, vad, biasing: Biasing) -> None:
    """--diarize on a multitalker checkpoint runs NeMo's per-speaker pass: whole inputs,
    greedy, no VAD, no biasing, no chunking."""
    if vad is not None or biasing or args.decoding == "beam" or args.chunk_duration:
        raise UsageError("--diarize on a multitalker checkpoint transcribes each speaker of "
                         "whole inputs greedily: leave out --vad, --boost-*/--lm, "
                         "--decoding beam and --chunk-duration")  # fmt: skip


def _run_streaming(
    model,
    args: argparse.Namespace,
    output: Output,
    biasing: Biasing,
    diarizer: Diarizer | None = None,
) -> int:
    """Stream each input (or the microphone) through `transcribe_stream` and the display.

    The live display goes to stdout; with --output-dir the final transcripts are also
    written in the chosen formats, with speakers when `diarizer` is given (live on a
    cache-aware transducer model, else the whole stream diarized when it ends)."""
    from .live import Display, microphone, pieces, run_stream

    if model.cache_aware and args.chunk is not None:
        raise UsageError("--chunk is for offline-trained models; this cache-aware model streams "
                         "in the chunks it was trained for: choose them with --context LEFT RIGHT, "
                         f"one of {model.context_choices}")  # fmt: skip
    options = {"chunk": args.chunk, "context": args.context, "language": args.language,
               "biasing": biasing, "diarize": diarizer}  # fmt: skip
    display = Display()
    if args.mic:
        result = run_stream(model, microphone(model.sample_rate), display, interruptible=True,
                            **options)  # fmt: skip
        result.source = "mic"
        if args.output_dir is not None:
            output.write(result, 0)
        return 0
    failures = 0
    for index, name in enumerate(args.audio):
        source = common.read_input(name)
        try:
            samples = model.load_audio(source)
        except AudioError as err:
            common.print_error("parakeet", str(err))
            failures += 1
            continue
        if len(args.audio) > 1:  # which input the lines that follow belong to
            sys.stdout.write(f"# {common.input_name(name)}\n")
        result = run_stream(
            model, pieces(samples, model.sample_rate, args.realtime), display, **options
        )
        result.source = common.input_name(name)
        if args.output_dir is not None:
            output.write(result, index)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
