"""Voice-activity detection before the encoder (`--vad`, `transcribe(..., vad=...)`): a NeMo
frame-VAD model (mlx-frame-vad) finds the speech segments, with NeMo's post-processing, and
only they become pieces to transcribe.

Each segment is cut on encoder frames, rounded inwards (so no word can come from outside the
speech NeMo's post-processing found), and transcribed as an input of its own, as NeMo's VAD +
ASR pipeline transcribes its segments; its tokens are shifted by its offset, so times stay
those of the whole input. Segments do not overlap, so joining them keeps every token.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

import mlx_frame_vad as frame_vad
from mlx_frame_vad import FrameVAD, VadChoice
from nemo_mlx_convert import ConversionError
from speech_transcript import checkpoints
from speech_transcript.precision import load_auxiliary

from .batching import Piece
from .errors import ParakeetError


def load_vad(
    choice: VadChoice, *, cache_dir: str | Path | None = None, verbose: bool = True
) -> FrameVAD | None:
    """`vad=` / `--vad` as a model (`mlx_frame_vad.resolve`: None, a model, True for the
    default, or a reference, converted into the cache on first use and said on stderr when
    `verbose`); ParakeetError (one line) for what is not a frame-VAD model."""
    return load_auxiliary("parakeet", "--vad", frame_vad.resolve, choice, cache_dir=cache_dir,
                          verbose=verbose, error=ParakeetError,
                          failures=(ConversionError, ValueError))  # fmt: skip


def speech_spans(
    vad: FrameVAD, signal: np.ndarray, sample_rate: int, samples_per_frame: int
) -> list[tuple[int, int]]:
    """The input's speech segments as [first, last) encoder frames (`checkpoints.speech_spans`)."""
    try:
        segments = vad.segments(signal, sample_rate=sample_rate)
    except ValueError as err:
        raise ParakeetError(str(err)) from None
    spans = [(s.start, s.end) for s in segments]
    return checkpoints.speech_spans(spans, len(signal), sample_rate, samples_per_frame)


def speech_pieces(
    spans: list[tuple[int, int]],
    signal: np.ndarray,
    samples_per_frame: int,
    split: Callable[[np.ndarray], list[Piece]],
) -> list[Piece]:
    """The pieces of each span's samples (`split`), moved to the span's encoder frame."""
    pieces = []
    for first, last in spans:
        part = signal[first * samples_per_frame : last * samples_per_frame]
        pieces += [
            dataclasses.replace(p, offset=p.offset + first, limit=last - first - p.offset)
            for p in split(part)
        ]
    return pieces
