"""Speakers on words (`--diarize`, `transcribe(..., diarize=...)`): a NeMo Sortformer model
(mlx-diarization) finds who spoke when over the whole input, with NeMo's post-processing, and
`speech_transcript.speakers` gives every word and segment its speaker by NeMo's rule.
A cache-aware stream's words are labelled live instead (`live_speakers.py`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import mlx_diarization
from mlx_diarization import Diarizer, DiarizerChoice
from nemo_mlx_convert import ConversionError
from speech_transcript import SpeakerTurn, Transcript
from speech_transcript.precision import load_auxiliary
from speech_transcript.speakers import named_turns, with_speakers

from .errors import ParakeetError


def load_diarizer(
    choice: DiarizerChoice, *, cache_dir: str | Path | None = None, verbose: bool = True
) -> Diarizer | None:
    """`diarize=` / `--diarize` as a model (`mlx_diarization.resolve`: None, a model, True
    for the default, or a reference, converted into the cache on first use and said on stderr
    when `verbose`); ParakeetError (one line) for what is not a Sortformer."""
    return load_auxiliary("parakeet", "--diarize", mlx_diarization.resolve, choice,
                          cache_dir=cache_dir, verbose=verbose, error=ParakeetError,
                          failures=(ConversionError, ValueError))  # fmt: skip


def speaker_turns(diarizer: Diarizer, signal: np.ndarray) -> list[SpeakerTurn]:
    """The input's speaker turns (16 kHz samples), NeMo's `diarize()` output."""
    return named_turns(diarizer.diarize(signal))


def live_choice(choice: DiarizerChoice) -> DiarizerChoice:
    """A stream's `diarize=`: True means mlx-diarization's streaming model (live labels need
    one), anything else as it is."""
    return mlx_diarization.STREAMING_MODEL if choice is True else choice


def with_speakers_of(
    result: Transcript, diarizer: Diarizer | None, audio: list[np.ndarray]
) -> Transcript:
    """A streamed transcript with the speakers of its whole `audio` (its pieces in order),
    diarized offline once the stream has ended; as it is without a diarizer or audio."""
    if diarizer is None or not audio:
        return result
    return with_speakers(result, speaker_turns(diarizer, np.concatenate(audio)))


def labelled(result: Transcript, turns: dict[int, list[SpeakerTurn]], index: int) -> Transcript:
    """`result` with its speakers, where the input was diarized."""
    return with_speakers(result, turns.pop(index)) if index in turns else result
