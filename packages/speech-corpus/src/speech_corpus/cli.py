"""The manifest options both apps add (`add_corpus_arguments`) and the run they lead to
(`run`): an app hands over a factory for its transcriber, nothing else."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from speech_transcript.cli import UsageError, print_error
from speech_transcript.options import non_negative_float, positive_float, positive_int

from .api import transcribe_manifest
from .evaluate import NORMALIZERS, EvaluationError
from .job import JobError, Transcriber
from .manifest import ManifestError
from .options import RayOptions

LOCAL = "local"  # --ray without an address: a Ray started in this process


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `manifests` group: --manifest, --output-manifest, --words, --eval,
    --normalizer, --eval-json, --ray and its pool options."""
    group = parser.add_argument_group("manifests (NeMo JSONL)")
    group.add_argument("--manifest", type=Path,
                       help="transcribe the rows of this NeMo manifest (audio_filepath relative to "
                            "its folder, duration, optional offset and text) instead of files")  # fmt: skip
    group.add_argument("--output-manifest", type=Path,
                       help="with --manifest: the rows with pred_text added, in input order; "
                            "rerun with the same file to resume")  # fmt: skip
    group.add_argument("--words", action="store_true",
                       help="with --manifest: each row also gets its words with start and end")  # fmt: skip
    group.add_argument("--eval", action="store_true",
                       help="with --manifest: WER, CER and RTFx against the rows' text, a table "
                            "on stdout and JSON in --eval-json")  # fmt: skip
    group.add_argument("--normalizer", choices=NORMALIZERS, default="none",
                       help="--eval: text normaliser: none, nemo (lower case, no punctuation) or "
                            "whisper (Whisper's English one) (default: none)")  # fmt: skip
    group.add_argument("--eval-json", type=Path,
                       help="--eval: where the scores go (default: the output manifest's name "
                            "with .eval.json)")  # fmt: skip
    group.add_argument("--ray", nargs="?", const=LOCAL, metavar="ADDRESS",
                       help="with --manifest: run on Ray, a local one, or the cluster at ADDRESS "
                            "(auto, host:port, ray://host:port)")  # fmt: skip
    group.add_argument("--ray-actors", type=positive_int,
                       help="--ray: model replicas (default: as many as the CPUs or GPUs allow)")  # fmt: skip
    group.add_argument("--ray-cpus", type=positive_float, default=1.0,
                       help="--ray: CPUs per replica (default 1)")  # fmt: skip
    group.add_argument("--ray-gpus", type=non_negative_float, default=0.0,
                       help="--ray: GPUs per replica (default 0; 1 for one GPU each)")  # fmt: skip


def check(args: argparse.Namespace) -> None:
    """UsageError for manifest options that cannot work (before any model is loaded)."""
    if args.manifest is None:
        manifest_only = ("output_manifest", "words", "eval", "eval_json", "ray", "ray_actors")
        if used := [name for name in manifest_only if getattr(args, name)]:
            raise UsageError(f"--{used[0].replace('_', '-')} needs --manifest")
        return
    if args.audio:
        raise UsageError("--manifest takes no audio files")
    if args.output_manifest is None:
        raise UsageError("--manifest needs --output-manifest")
    if args.output_manifest.resolve() == args.manifest.resolve():
        raise UsageError("--output-manifest must not be the input manifest")


def run(prog: str, args: argparse.Namespace, factory: Callable[[], Transcriber]) -> int:
    """Run the manifest job the options describe; 1 when a row failed or nothing could run."""
    check(args)
    ray = None
    if args.ray is not None:
        ray = RayOptions(address=None if args.ray == LOCAL else args.ray, actors=args.ray_actors,
                         cpus_per_actor=args.ray_cpus, gpus_per_actor=args.ray_gpus)  # fmt: skip
    try:
        result = transcribe_manifest(args.manifest, args.output_manifest, factory,
                                     batch_size=args.batch_size, words=args.words,
                                     normalizer_name=args.normalizer if args.eval else None,
                                     ray=ray, quiet=not args.verbose)  # fmt: skip
    except (ManifestError, EvaluationError, JobError) as err:
        print_error(prog, str(err))
        return 1
    report = result.report
    if not args.quiet:
        rtfx = f", RTFx {report.rtfx:.1f}" if report.rtfx is not None else ""
        print(f"{prog}: {len(report.rows)} rows in {args.output_manifest} ({report.ran} run now, "
              f"{report.resumed} finished before, {report.failed} failed): {report.audio_seconds:.1f} s "
              f"of audio in {report.seconds:.1f} s{rtfx}", file=sys.stderr)  # fmt: skip
    if result.evaluation is not None:
        sys.stdout.write(result.evaluation.table())
        target = args.eval_json or args.output_manifest.with_suffix(".eval.json")
        result.evaluation.write_json(target)
    return 1 if report.failed else 0
