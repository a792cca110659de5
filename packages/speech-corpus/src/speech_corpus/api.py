"""One call for a whole manifest job: read, transcribe (here or on Ray), merge, score."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .evaluate import Evaluation, check_references, evaluate, normalizer
from .job import JobReport, Transcriber, run_local
from .manifest import read_manifest
from .options import RayOptions


@dataclass
class CorpusResult:
    report: JobReport
    evaluation: Evaluation | None = None


def transcribe_manifest(
    manifest: str | Path,
    output: str | Path,
    factory: Callable[[], Transcriber],
    *,
    batch_size: int = 8,
    words: bool = False,
    normalizer_name: str | None = None,
    ray: RayOptions | None = None,
    progress: Callable[[int], None] | None = None,
    quiet: bool = True,
) -> CorpusResult:
    """Transcribe `manifest` into the output manifest `output` (resuming it), with the
    transcriber `factory` builds: in this process, or on Ray when `ray` is given (each actor
    calls `factory` once). With `normalizer_name`, score the rows (`evaluate`)."""
    entries = read_manifest(manifest)
    if normalizer_name is not None:
        normalizer(normalizer_name)  # an unknown name or a missing text fails before any work
        check_references([e.row for e in entries])
    if ray is None:
        report = run_local(entries, factory(), output, batch_size=batch_size, words=words,
                           progress=progress)  # fmt: skip
    else:
        from .ray_job import run_ray

        report = run_ray(entries, factory, output, replace(ray, batch_size=batch_size),
                         words=words, progress=progress, quiet=quiet)  # fmt: skip
    evaluation = None
    if normalizer_name is not None:
        evaluation = evaluate(report.rows, normalizer_name, report.rtfx)
    return CorpusResult(report, evaluation)
