"""Corpus jobs for the speech apps: NeMo JSONL manifests in and out (resumable, bad rows
recorded), WER/CER evaluation with NeMo's or Whisper's normaliser, and the same job spread
over a Ray cluster. The apps hand over a transcriber factory; Ray is imported only by
`ray_job`, when a job asks for it."""

from .api import CorpusResult, transcribe_manifest
from .evaluate import NORMALIZERS, Evaluation, EvaluationError, evaluate, normalizer
from .job import JobError, JobReport, ModelTranscriber, Transcriber, run_local
from .manifest import Entry, ManifestError, read_manifest
from .options import RayOptions
from .store import Store

__version__ = "0.1.0"

__all__ = [
    "NORMALIZERS",
    "CorpusResult",
    "Entry",
    "Evaluation",
    "EvaluationError",
    "JobError",
    "JobReport",
    "ManifestError",
    "ModelTranscriber",
    "RayOptions",
    "Store",
    "Transcriber",
    "evaluate",
    "normalizer",
    "read_manifest",
    "run_local",
    "transcribe_manifest",
]
