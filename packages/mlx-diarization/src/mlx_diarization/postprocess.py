"""NeMo's diarization post-processing: per-speaker probabilities -> speaker turns.

`ts_vad_post_processing` as `SortformerEncLabelModel.diarize()` applies it: each 80 ms frame
repeated as 10 ms frames, `binarization` (onset / offset hysteresis, padding), `filtering`
(minimum speech and gap durations; both NeMo's VAD steps, mlx-frame-vad's, as NeMo's
diarization calls its VAD utilities), seconds rounded to 2 decimals, then
`generate_diarization_output_lines` ("start end speaker_k", merged per speaker). Float32
where NeMo's tensors are, so the printed times are NeMo's to the digit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mlx_frame_vad import postprocessing as vad

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
    steps = vad.PostProcessing(**asdict(params))  # filter_speech_first: NeMo's default, True
    preds = np.asarray(preds, np.float32)
    turns = []
    for speaker in range(preds.shape[1]):
        frames = np.repeat(preds[:, speaker], subsampling_factor)
        segments = vad.filtering(vad.binarization(frames, _FRAME, steps), steps)
        rounded = [
            [round(float(np.float32(s + offset)), 2), round(float(np.float32(e + offset)), 2)]
            for s, e in segments.tolist()
        ]
        turns += [Turn(s, e, speaker) for s, e in _merge_float_intervals(rounded)]
    return turns
