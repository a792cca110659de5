"""Greedy CTC decoding: per-frame argmax, repeats merged, blanks dropped, with frame spans;
with shallow fusion (`fusion`), NeMo's fused choice of each frame's label (`fused.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import mlx.core as mx
import numpy as np

from mlx_asr_fusion import FusionModel

from .fused import fused_labels


@dataclass(frozen=True)
class CTCToken:
    """One token and the frames [start_frame, end_frame] (inclusive) of its run of argmaxes.

    `logprob` is the token's mean log-probability over those frames (its confidence).
    """

    id: int
    start_frame: int
    end_frame: int
    logprob: float


@dataclass
class CTCHypothesis:
    """Tokens in order, and the per-frame argmax (NeMo's `y_sequence` for CTC models)."""

    tokens: list[CTCToken] = field(default_factory=list)
    alignment: list[int] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [token.id for token in self.tokens]

    def nemo_offsets(self) -> list[tuple[int, int]]:
        """Each token's (start_offset, end_offset) in frames, by NeMo's rule for CTC.

        NeMo (`CTCDecoding._compute_offsets`) ends token k at the frame where it starts and
        starts it where token k - 1 started; the first token starts one frame before its
        own first frame. Word and segment timestamps in NeMo are built from these, so
        reproducing NeMo's timestamps means using them, not the runs in `tokens`.
        """
        starts = [token.start_frame for token in self.tokens]
        if not starts:
            return []
        previous = [max(0, starts[0] - 1), *starts[:-1]]
        return list(zip(previous, starts, strict=True))


def greedy_decode(
    log_probs: mx.array,
    lengths: mx.array | None = None,
    *,
    blank_id: int,
    fusion: Sequence[FusionModel] = (),
) -> list[CTCHypothesis]:
    """Decode (B, T, C) log-probabilities with valid lengths (B,): one hypothesis per item.
    With `fusion` (an n-gram LM, a boosting tree, each with its alpha; NeMo's order, LM
    first), NeMo's greedy shallow fusion chooses the labels."""
    batch, time, _ = log_probs.shape
    if fusion:
        labels, scores, _ = fused_labels(log_probs, fusion, blank_id)
    else:
        best = mx.argmax(log_probs, axis=-1)
        best_logprob = mx.take_along_axis(log_probs, best[..., None], axis=-1)[..., 0]
        labels, scores = np.array(best), np.array(best_logprob.astype(mx.float32))
    sizes = [time] * batch if lengths is None else np.array(lengths).tolist()
    return [_collapse(labels[b, : sizes[b]], scores[b, : sizes[b]], blank_id) for b in range(batch)]


def _collapse(labels: np.ndarray, scores: np.ndarray, blank_id: int) -> CTCHypothesis:
    hypothesis = CTCHypothesis(alignment=labels.tolist())
    if labels.size == 0:
        return hypothesis
    starts = np.flatnonzero(np.concatenate([[True], labels[1:] != labels[:-1]]))
    ends = np.concatenate([starts[1:], [labels.size]]) - 1
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        label = int(labels[start])
        if label != blank_id:
            logprob = float(scores[start : end + 1].mean())
            hypothesis.tokens.append(CTCToken(label, start, end, logprob))
    return hypothesis
