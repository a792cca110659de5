"""A manifest job in one process: rows longest first in batches through a transcriber, each
batch's rows into a shard as it finishes, the output manifest merged in input order."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mlx_audio_frontend import AudioError
from speech_transcript import Transcript

from .manifest import Entry, longest_first
from .store import Store


class JobError(RuntimeError):
    """A job that could not finish (a Ray cluster that failed it); one line."""


class Transcriber(Protocol):
    """What a job drives: an app's model with its options bound (see the apps' `corpus`
    modules). It takes mono samples at `sample_rate` and returns one transcript each."""

    sample_rate: int

    def __call__(self, samples: list[np.ndarray]) -> list[Transcript]: ...


@dataclass
class ModelTranscriber:
    """A `Transcriber` from an app's model (anything with `sample_rate` and a `transcribe`
    that takes a list of sample arrays) and the `transcribe` options every batch uses."""

    model: Any
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    def __call__(self, samples: list[np.ndarray]) -> list[Transcript]:
        return self.model.transcribe(list(samples), **self.options)


@dataclass
class JobReport:
    """What a job did: the output rows (input order) and this run's share of the work."""

    rows: list[dict[str, Any]]
    ran: int  # rows transcribed or failed in this run
    resumed: int  # rows finished by an earlier run, skipped
    audio_seconds: float  # audio transcribed in this run
    seconds: float  # wall time of this run's transcription

    @property
    def failed(self) -> int:
        return sum("error" in row for row in self.rows)

    @property
    def rtfx(self) -> float | None:
        """Seconds of audio per second of wall time (the Open ASR Leaderboard's RTFx)."""
        return self.audio_seconds / self.seconds if self.seconds > 0 and self.ran else None


def output_row(row: dict[str, Any], transcript: Transcript, words: bool) -> dict[str, Any]:
    """The input row with `pred_text` (and `words`: text, start, end in seconds) added."""
    out = {**row, "pred_text": transcript.text}
    out.pop("error", None)
    if words:
        out["words"] = [{"word": w.text, "start": w.start, "end": w.end} for w in transcript.words]
    return out


def transcribe_entries(
    transcriber: Transcriber, entries: Sequence[Entry], words: bool
) -> tuple[list[tuple[int, dict[str, Any]]], float]:
    """(index, output row) for each entry, and the seconds of audio transcribed. A row whose
    audio cannot be read gets `error` (the reason) instead of `pred_text`; the rest go on."""
    results: list[tuple[int, dict[str, Any]]] = []
    loaded: list[tuple[Entry, np.ndarray]] = []
    for entry in entries:
        try:
            loaded.append((entry, entry.samples(transcriber.sample_rate)))
        except AudioError as err:
            results.append((entry.index, {**entry.row, "error": " ".join(str(err).split())}))
    if loaded:
        transcripts = transcriber([samples for _, samples in loaded])
        for (entry, _), transcript in zip(loaded, transcripts, strict=True):
            results.append((entry.index, output_row(entry.row, transcript, words)))
    seconds = sum(len(samples) for _, samples in loaded) / transcriber.sample_rate
    return results, seconds


def pending(entries: list[Entry], store: Store) -> tuple[list[Entry], int]:
    """The entries still to run, longest first, and how many are finished already."""
    done = store.finished(entries)
    return longest_first([e for e in entries if e.index not in done]), len(done)


def run_local(
    entries: list[Entry],
    transcriber: Transcriber,
    output: str | Path,
    *,
    batch_size: int = 8,
    words: bool = False,
    progress: Callable[[int], None] | None = None,
) -> JobReport:
    """Transcribe the manifest's rows not finished in `output` (resume) in this process."""
    store = Store(output)
    todo, resumed = pending(entries, store)
    start = time.perf_counter()
    audio = 0.0
    for first in range(0, len(todo), batch_size):
        batch = todo[first : first + batch_size]
        results, seconds = transcribe_entries(transcriber, batch, words)
        store.write(results)
        audio += seconds
        if progress is not None:
            progress(len(batch))
    seconds = time.perf_counter() - start
    return JobReport(store.merge(entries), len(todo), resumed, audio, seconds)
