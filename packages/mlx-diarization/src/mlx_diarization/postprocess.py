"""NeMo's diarization post-processing: per-speaker probabilities -> speaker turns.

`ts_vad_post_processing` as `SortformerEncLabelModel.diarize()` applies it: each 80 ms frame
repeated as 10 ms frames, `binarization` (onset / offset hysteresis, padding), `filtering`
(minimum speech and gap durations), seconds rounded to 2 decimals, then
`generate_diarization_output_lines` ("start end speaker_k", merged per speaker). Float32
where NeMo's tensors are, so the printed times are NeMo's to the digit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FRAME = 0.01  # binarization's frame_length_in_sec default


@dataclass(frozen=True)
class PostProcessing:
    """NeMo's `PostProcessingParams`; the defaults are what `diarize()` uses without a YAML."""

    onset: float = 0.5
    offset: float = 0.5
    pad_onset: float = 0.0
    pad_offset: float = 0.0
    min_duration_on: float = 0.0
    min_duration_off: float = 0.0


@dataclass(frozen=True)
class Turn:
    """One speaker's speech from `start` to `end` seconds."""

    start: float
    end: float
    speaker: int

    @property
    def line(self) -> str:
        """NeMo's output line: `"0.480 1.440 speaker_0"`."""
        return f"{self.start:.3f} {self.end:.3f} speaker_{self.speaker}"


def _segment(start: float, end: float) -> np.ndarray:
    return np.array([[start, end]], np.float32)


def _merge_overlaps(segments: np.ndarray) -> np.ndarray:
    """`merge_overlap_segment`: sort by start, join touching or overlapping segments."""
    if len(segments) <= 1:
        return segments
    segments = segments[np.argsort(segments[:, 0], kind="stable")]
    joins = segments[:-1, 1] >= segments[1:, 0]
    heads = segments[~np.concatenate([[False], joins]), 0]
    tails = segments[~np.concatenate([joins, [False]]), 1]
    return np.stack([heads, tails], axis=1)


def binarize(frames: np.ndarray, params: PostProcessing) -> np.ndarray:
    """NeMo's `binarization` of 10 ms frame probabilities -> (n, 2) float32 seconds."""
    parts = []
    speech, start, i = False, 0.0, 0
    for i in range(len(frames)):
        if speech:
            if frames[i] < params.offset:
                end = i * _FRAME + params.pad_offset
                if end > max(0, start - params.pad_onset):
                    parts.append(_segment(max(0, start - params.pad_onset), end))
                start, speech = i * _FRAME, False
        elif frames[i] > params.onset:
            start, speech = i * _FRAME, True
    if speech:
        parts.append(_segment(max(0, start - params.pad_onset), i * _FRAME + params.pad_offset))
    segments = np.concatenate(parts) if parts else np.zeros((0, 2), np.float32)
    return _merge_overlaps(segments)


def _long_enough(segments: np.ndarray, threshold: float) -> np.ndarray:
    return segments[segments[:, 1] - segments[:, 0] >= np.float32(threshold)]


def _short_gaps(segments: np.ndarray, threshold: float) -> np.ndarray:
    """Gaps between segments shorter than `threshold` (`remove_segments` of the long ones)."""
    ordered = segments[np.argsort(segments[:, 0], kind="stable")]
    gaps = np.stack([ordered[:-1, 1], ordered[1:, 0]], axis=1)
    long = _long_enough(gaps, threshold)
    keep = [not any(np.array_equal(g, x) for x in long) for g in gaps]
    return gaps[np.array(keep, bool)] if len(gaps) else gaps


def filter_segments(segments: np.ndarray, params: PostProcessing) -> np.ndarray:
    """NeMo's `filtering` (speech first): drop short speech, then fill short gaps."""
    if len(segments) == 0:
        return segments
    if params.min_duration_on > 0.0:
        segments = _long_enough(segments, params.min_duration_on)
    if params.min_duration_off > 0.0:
        segments = np.concatenate([segments, _short_gaps(segments, params.min_duration_off)])
        segments = _merge_overlaps(segments)
    return segments


def _to_int(x: float, decimals: int) -> int:
    return int(np.round(np.float32(x * 10**decimals)))


def _to_float(x: int, decimals: int) -> float:
    return float(np.round(np.float32(x / 10**decimals), decimals))


def _merge_float_intervals(ranges: list[list[float]], decimals: int = 5, margin: int = 2):
    """NeMo's `merge_float_intervals` (with `merge_int_intervals`, which sorts starts and
    ends independently: kept, as it decides NeMo's output)."""
    ints = []
    for start, end in ranges:
        a, b = _to_int(start, decimals) + margin, _to_int(end, decimals)
        if a < b:
            ints.append([a, b])
    if len(ints) > 1:
        starts, ends = sorted(a for a, _ in ints), sorted(b for _, b in ints)
        merged, (start, end) = [], (starts[0], ends[0])
        for a, b in zip(starts[1:], ends[1:], strict=True):
            if end >= a:
                end = max(b, end)
            else:
                merged.append([start, end])
                start, end = a, max(b, end)
        merged.append([start, end])
        ints = merged
    return [[_to_float(a - margin, decimals), _to_float(b, decimals)] for a, b in ints]


def speaker_turns(
    preds: np.ndarray,
    subsampling_factor: int = 8,
    params: PostProcessing | None = None,
    offset: float = 0.0,
) -> list[Turn]:
    """(frames, speakers) probabilities -> NeMo's turns, speaker by speaker, in its order."""
    params = params or PostProcessing()
    preds = np.asarray(preds, np.float32)
    turns = []
    for speaker in range(preds.shape[1]):
        frames = np.repeat(preds[:, speaker], subsampling_factor)
        segments = filter_segments(binarize(frames, params), params)
        rounded = [
            [round(float(np.float32(s + offset)), 2), round(float(np.float32(e + offset)), 2)]
            for s, e in segments.tolist()
        ]
        turns += [Turn(s, e, speaker) for s, e in _merge_float_intervals(rounded)]
    return turns
