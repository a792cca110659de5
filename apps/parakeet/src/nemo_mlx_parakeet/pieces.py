"""One input's pieces, there and back: the input cut into what the batch decoder takes (the
whole input or overlapping chunks of its features, `batching.split`; with a VAD model, the
pieces of its speech segments, `vad.py`), and its pieces' hypotheses joined into its
transcript (chunks merged, `merging.py`; assembled, `transcripts.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from mlx_audio_frontend import LogMel
from mlx_conformer import Conformer
from mlx_frame_vad import FrameVAD
from speech_transcript import Transcript

from . import attention, batching
from .attention import CACHE_AWARE_CHUNK_SECONDS
from .batching import Piece
from .decoding import Head, Hypothesis
from .merging import merge_chunks
from .transcripts import Assembly
from .vad import speech_pieces, speech_spans


class PiecedModel(Protocol):
    """What cutting and joining read of the model (`Parakeet` has it): its modules, rate,
    head, attention budget and transcript assembly."""

    frontend: LogMel
    encoder: Conformer
    sample_rate: int
    head: Head
    attention_budget: int | None

    @property
    def assemble(self) -> Assembly: ...


def input_pieces(
    model: PiecedModel,
    index: int,
    signal: np.ndarray,
    chunk: float | None,
    overlap: float,
    vad: FrameVAD | None,
) -> list[Piece]:
    """Input `index`'s pieces (`split`), or its speech segments' with a VAD model."""
    if vad is None:
        return split(model, index, signal, chunk, overlap)
    per_frame = model.frontend.config.hop_length * model.encoder.subsampling_factor
    spans = speech_spans(vad, signal, model.sample_rate, per_frame)
    split_part = lambda part: split(model, index, part, chunk, overlap)  # noqa: E731
    return speech_pieces(spans, signal, per_frame, split_part)


def split(
    model: PiecedModel, index: int, signal: np.ndarray, chunk: float | None, overlap: float
) -> list[Piece]:
    """The pieces of one input (`batching.split`); a cache-aware checkpoint's input beyond
    the attention budget goes in `CACHE_AWARE_CHUNK_SECONDS` chunks."""

    def chunk_if_long(frames: int) -> float | None:
        beyond = attention.chunk_beyond_budget(model.encoder, model.attention_budget, frames)
        return CACHE_AWARE_CHUNK_SECONDS if beyond else None

    factor = model.encoder.subsampling_factor
    return batching.split(model.frontend, factor, index, signal, chunk, overlap, chunk_if_long)


def joined(
    model: PiecedModel,
    parts: list[tuple[Piece, Hypothesis]],
    duration: float,
    item: object,
) -> Transcript:
    """One input's transcript from its pieces' hypotheses, in order (chunks merged); no
    pieces (a VAD found no speech): an empty one. A path `item` is the transcript's source."""
    chunks = [(piece.offset, piece.feature_frames, hypothesis.limited(piece.limit))
              for piece, hypothesis in parts]  # fmt: skip
    if not chunks:
        merged = Hypothesis([], [], [] if model.head == "tdt" else None, [])
    else:  # one piece: its tokens moved by its offset (a speech segment's start)
        merged = merge_chunks(chunks, model.encoder.subsampling_factor)
    label = str(item) if isinstance(item, (str, Path)) else None
    return model.assemble(merged, duration, parts[0][0].lead if parts else 0.0, label)
