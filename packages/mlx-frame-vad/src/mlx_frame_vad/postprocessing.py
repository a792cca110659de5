"""NeMo's VAD post-processing: frame probabilities -> speech segments in seconds.

The steps of `nemo.collections.asr.parts.utils.vad_utils.generate_vad_segment_table_per_tensor`
as `generate_vad_segment_table` runs them for a file: `binarization` (onset / offset
hysteresis, `pad_onset` / `pad_offset` added, overlaps merged), then `filtering` (speech
shorter than `min_duration_on` dropped, pauses shorter than `min_duration_off` filled, in the
order `filter_speech_first` says), then sorting. NeMo keeps segment times in float32 tensors
and compares in float32; so does this module, so that its segments equal NeMo's bit for bit
(including NeMo's quirks: a merge keeps the end of the last segment of a run, and the final
sort orders starts and ends separately).

Defaults are those of NeMo's frame-VAD inference config (`frame_vad_infer_postprocess.yaml`).
`binarization` and `filtering` are also NeMo's first steps of Sortformer's post-processing
(`ts_vad_post_processing`); mlx-diarization uses them from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_F32 = np.float32


@dataclass(frozen=True)
class PostProcessing:
    """Thresholds (probabilities) and durations (seconds) of NeMo's VAD post-processing."""

    onset: float = 0.3
    offset: float = 0.3
    pad_onset: float = 0.5
    pad_offset: float = 0.5
    min_duration_on: float = 0.0
    min_duration_off: float = 0.6
    filter_speech_first: bool = True


@dataclass(frozen=True)
class SpeechSegment:
    """Speech from `start` to `end` seconds (float32 values, as NeMo's table holds them)."""

    start: float
    end: float


def speech_segments(
    probabilities: Sequence[float] | np.ndarray,
    frame_seconds: float,
    params: PostProcessing | None = None,
) -> list[SpeechSegment]:
    """Speech segments of one recording from its per-frame speech probabilities."""
    params = params or PostProcessing()
    segments = binarization(np.asarray(probabilities, dtype=_F32), frame_seconds, params)
    segments = filtering(segments, params)
    if len(segments) == 0:
        return []
    starts, ends = np.sort(segments[:, 0]), np.sort(segments[:, 1])  # column by column, as NeMo
    return [SpeechSegment(float(s), float(e)) for s, e in zip(starts, ends, strict=True)]


def binarization(probs: np.ndarray, frame: float, p: PostProcessing) -> np.ndarray:
    """NeMo's `binarization`: float32 frame probabilities, `frame` seconds each -> (n, 2)
    float32 speech segments (onset / offset hysteresis, padded, overlaps merged)."""
    onset, offset = _F32(p.onset), _F32(p.offset)
    rows: list[tuple[float, float]] = []
    speech, start = False, 0.0
    for i, value in enumerate(probs):
        if speech:
            if value < offset:
                begin = max(0.0, start - p.pad_onset)
                if i * frame + p.pad_offset > begin:
                    rows.append((begin, i * frame + p.pad_offset))
                start, speech = i * frame, False
        elif value > onset:
            start, speech = i * frame, True
    if speech:
        last = len(probs) - 1
        rows.append((max(0.0, start - p.pad_onset), last * frame + p.pad_offset))
    return _merge(np.array(rows, dtype=_F32).reshape(-1, 2))


def _merge(segments: np.ndarray) -> np.ndarray:
    """NeMo's `merge_overlap_segment`: runs of segments that touch become (first start, last end)."""
    if len(segments) <= 1:
        return segments
    segments = segments[np.argsort(segments[:, 0], kind="stable")]
    touches = segments[:-1, 1] >= segments[1:, 0]
    heads = segments[~np.concatenate([[False], touches]), 0]
    tails = segments[~np.concatenate([touches, [False]]), 1]
    return np.stack([heads, tails], axis=1)


def _longer(segments: np.ndarray, threshold: float) -> np.ndarray:
    return segments[(segments[:, 1] - segments[:, 0]) >= _F32(threshold)]


def _short_gaps(segments: np.ndarray, min_off: float) -> np.ndarray:
    """The pauses between segments shorter than `min_off` (NeMo's gap segments, less the long)."""
    ordered = segments[np.argsort(segments[:, 0], kind="stable")]
    gaps = np.stack([ordered[:-1, 1], ordered[1:, 0]], axis=1).reshape(-1, 2)
    for long_gap in _longer(gaps, min_off):
        gaps = gaps[~(gaps == long_gap).all(axis=1)]
    return gaps


def _fill_short_gaps(segments: np.ndarray, min_off: float) -> np.ndarray:
    return _merge(np.concatenate([segments, _short_gaps(segments, min_off)]))


def filtering(segments: np.ndarray, p: PostProcessing) -> np.ndarray:
    """NeMo's `filtering`: short speech dropped and short pauses filled, in the order
    `filter_speech_first` says."""
    if len(segments) == 0:
        return segments
    if p.filter_speech_first:
        if p.min_duration_on > 0.0:
            segments = _longer(segments, p.min_duration_on)
        if p.min_duration_off > 0.0:
            segments = _fill_short_gaps(segments, p.min_duration_off)
    else:
        if p.min_duration_off > 0.0:
            segments = _fill_short_gaps(segments, p.min_duration_off)
        if p.min_duration_on > 0.0:
            segments = _longer(segments, p.min_duration_on)
    return segments
