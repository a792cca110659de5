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
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mlx_frame_vad import FrameVAD, PostProcessing
from nemo_mlx_convert import ConversionError, resolve_model
from speech_transcript.checkpoints import MIN_SECONDS
from speech_transcript.cli import VAD_MODEL
from speech_transcript.precision import load_settings

from .batching import Piece
from .errors import ParakeetError

VadInput = FrameVAD | str | Path | bool | None


def load_vad(
    reference: str | Path = VAD_MODEL,
    *,
    cache_dir: str | Path | None = None,
    verbose: bool = True,
) -> FrameVAD:
    """A frame-VAD model (float32: it is small) from a repo id, `.nemo` file or model
    directory, converted into the cache on first use (said on stderr when `verbose`);
    ParakeetError (one line) for anything else."""
    _, notify = load_settings("parakeet", None, None, gpu=False, verbose=verbose,
                              error=ParakeetError)  # fmt: skip
    try:
        return FrameVAD.from_model_directory(
            resolve_model(reference, cache_dir=cache_dir, on_convert=notify)
        )
    except (ConversionError, ValueError) as err:
        raise ParakeetError(f"--vad: {err}") from None


def resolve_vad(vad: VadInput) -> FrameVAD | None:
    """`transcribe`'s `vad`: a loaded model, a reference to load, True (the default model)."""
    if vad is None or vad is False:
        return None
    if isinstance(vad, FrameVAD):
        return vad
    return load_vad(VAD_MODEL if vad is True else vad)


def speech_spans(
    vad: FrameVAD, signal: np.ndarray, sample_rate: int, samples_per_frame: int
) -> list[tuple[int, int]]:
    """The input's speech segments as [first, last) encoder frames, rounded inwards; a
    segment under NeMo's 1 s minimum input grows to it (whole frames, within the input)."""
    if vad.config.preprocessor.sample_rate != sample_rate:
        raise ParakeetError(
            f"the VAD model takes {vad.config.preprocessor.sample_rate} Hz audio, "
            f"the ASR model {sample_rate} Hz"
        )
    total = len(signal) // samples_per_frame
    minimum = math.ceil(MIN_SECONDS * sample_rate / samples_per_frame)
    spans = []
    for segment in vad.segments(signal, PostProcessing()):
        first = math.ceil(segment.start * sample_rate / samples_per_frame)
        last = min(total, math.floor(segment.end * sample_rate / samples_per_frame))
        if last <= first:
            continue
        if last - first < minimum:
            first = max(0, first - (minimum - (last - first) + 1) // 2)
            last = min(total, first + minimum)
            first = max(0, last - minimum)
        if spans and first <= spans[-1][1]:  # grown into the one before: one span
            first = spans.pop()[0]
        spans.append((first, last))
    return spans


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
        pieces += [dataclasses.replace(p, offset=p.offset + first) for p in split(part)]
    return pieces
