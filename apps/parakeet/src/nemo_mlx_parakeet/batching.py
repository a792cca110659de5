"""Inputs into pieces and pieces into batches: the whole input or overlapping chunks of its
features (`split`), batches of similar length under a memory bound (`batches`), a batch's
features padded to a length (`batch_features`), and its piece count on a GPU to a power of
two the bound allows (`padded_count`; the rule is mlx-conformer's `shapes`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import mlx.core as mx
import numpy as np

from mlx_audio_frontend import LogMel
from mlx_conformer.shapes import bucketed_count, bucketing
from speech_transcript.checkpoints import padding_for

from .errors import ParakeetError

OVERLAP_SECONDS = 15.0  # overlap of consecutive chunks
BATCH_SECONDS = 240.0  # a batch's attention memory at most that of one input this long


@dataclass(frozen=True)
class Piece:
    """One input, or a chunk of one: starting `offset` encoder frames into it, after `lead`
    seconds of padding in front (NeMo's padding of short inputs). A whole input keeps its
    samples (its features are computed with the rest of its batch, in one front-end call);
    a chunk keeps the feature frames cut from its input's features."""

    item: int
    offset: int
    lead: float
    feature_frames: int  # valid feature frames
    signal: np.ndarray | None = None
    features: mx.array | None = None  # (feature_frames, n_mels)
    # A speech segment's piece (`vad.py`): encoder frames from the piece's start to the
    # segment's end, which no token's span may pass
    limit: int | None = None


def pad_to_minimum(signal: np.ndarray, sample_rate: int) -> tuple[float, np.ndarray]:
    """NeMo's transcribe pads inputs shorter than 1 s with zeros, half before, half after;
    the seconds put in front and the padded samples."""
    before, after = padding_for(len(signal), sample_rate)
    if not before and not after:
        return 0.0, signal
    return before / sample_rate, np.pad(signal, (before, after))


def split(
    frontend: LogMel,
    factor: int,
    index: int,
    signal: np.ndarray,
    chunk: float | None,
    overlap: float,
    chunk_if_long: Callable[[int], float | None],
) -> list[Piece]:
    """The pieces of input `index`: all its feature frames, or overlapping chunks of them
    (`chunk` seconds; `chunk_if_long(frames)` seconds when no chunk is asked for and the
    policy wants one, else None).

    Features are computed over the whole input first, so chunks are normalised with
    the whole input's statistics, as a single pass would be; chunk bounds fall on
    encoder frames (`factor` feature frames each).
    """
    rate = frontend.config.sample_rate
    lead, padded = pad_to_minimum(signal, rate)
    frames = frontend.frame_count(len(padded))
    if chunk is None:
        chunk = chunk_if_long(frames)
    if chunk is None or len(signal) / rate <= chunk:
        return [Piece(index, 0, lead, frames, signal=padded)]
    features, length = frontend(padded)
    features = features[0, : int(length[0])]
    if overlap >= chunk / 2:
        raise ParakeetError(f"overlap ({overlap:g} s) must be under half the chunk ({chunk:g} s)")
    per_second = rate / frontend.config.hop_length
    size = max(factor, round(chunk * per_second / factor) * factor)
    step = max(factor, round((chunk - overlap) * per_second / factor) * factor)
    total = features.shape[0]
    pieces = []
    for start in range(0, total, step):
        part = features[start : start + size]
        pieces.append(Piece(index, start // factor, lead, part.shape[0], features=part))
        if start + size >= total:
            break
    return pieces


def batches(pieces: list[Piece], batch_size: int, limit: float) -> Iterator[list[Piece]]:
    """Pieces of similar length, at most `batch_size` of them, and so few long ones that
    the batch's attention scores (batch x longest**2) take no more memory than one input
    of `limit` feature frames: memory stays bounded for long inputs, short ones fill a batch."""
    batch: list[Piece] = []
    for piece in sorted(pieces, key=lambda p: p.feature_frames):
        longest = max([piece.feature_frames, *(p.feature_frames for p in batch)])
        if batch and not fits(len(batch) + 1, longest, batch_size, limit):
            yield batch
            batch = []
        batch.append(piece)
    if batch:
        yield batch


def fits(count: int, longest: int, batch_size: int, limit: float) -> bool:
    """Whether `count` pieces of at most `longest` feature frames make one batch: at most
    `batch_size`, and their attention scores (count x longest**2) no more than one input
    of `limit` frames takes."""
    return count <= max(1, batch_size) and (count == 1 or longest**2 * count <= limit**2)


def padded_count(batch: list[Piece], batch_size: int, limit: float, bucket: bool | None) -> int:
    """The piece count a batch is padded to on a GPU (`mlx_conformer.shapes.bucketed_count`):
    a power of two where `fits` allows one, else the most it allows (the padding pieces are
    the caller's, their results dropped)."""
    if not bucketing(bucket):
        return len(batch)
    longest = max(p.feature_frames for p in batch)
    most = len(batch)
    while fits(most + 1, longest, batch_size, limit) and most < 2 * len(batch):
        most += 1
    return bucketed_count(len(batch), most, bucket)


def batch_features(frontend: LogMel, pieces: list[Piece], longest: int) -> mx.array:
    """(B, longest, n_mels) for a batch: the whole inputs' through one front-end call over
    their zero-padded samples with their lengths (NeMo's batched preprocessor), chunks'
    from their cut features, each padded to `longest` frames."""
    whole = [p for p in pieces if p.signal is not None]
    if whole:
        width = max(longest * frontend.config.hop_length, *(len(p.signal) for p in whole))
        samples = padded_samples([p.signal for p in whole], width)
        batch, _ = frontend(samples, [len(p.signal) for p in whole])
        if len(whole) == len(pieces):
            return _frames_to(batch, longest)
        rows = iter(range(len(whole)))
        parts = [batch[next(rows), : p.feature_frames] if p.signal is not None else p.features
                 for p in pieces]  # fmt: skip
    else:
        parts = [p.features for p in pieces]
    return mx.stack([_frames_to(part[None], longest)[0] for part in parts])


def padded_samples(signals: list[np.ndarray], width: int) -> mx.array | np.ndarray:
    """(B, width) float32 samples, each signal zero-padded. On a GPU only the signals travel
    and the padding is made there: the samples' trip from host memory is most of a batch's
    front-end time there (H200, 32 inputs of 2-20 s: 17 ms padded, 10 ms unpadded, 2 ms of
    log-mel). On the CPU the padded array is filled in place (no device to reach)."""
    if mx.default_device() == mx.gpu:
        return mx.stack([
            mx.pad(mx.array(signal, dtype=mx.float32), (0, width - len(signal)))
            for signal in signals
        ])  # fmt: skip
    samples = np.zeros((len(signals), width), dtype=np.float32)
    for row, signal in enumerate(signals):
        samples[row, : len(signal)] = signal
    return samples


def _frames_to(features: mx.array, frames: int) -> mx.array:
    """(B, T, F) cut or zero-padded to `frames` frames."""
    if features.shape[1] >= frames:
        return features[:, :frames]
    return mx.pad(features, [(0, 0), (0, frames - features.shape[1]), (0, 0)])
