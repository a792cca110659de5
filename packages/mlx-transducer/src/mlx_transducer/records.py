"""What the greedy loop decided, step by step, and the hypotheses made from it."""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import numpy as np

from .hypothesis import Hypothesis, Token
from .networks import JointNetwork


@dataclass
class StepRecords:
    """What each step decided, (steps, B) each: whether it emitted, the label, the frame and
    the duration. The emitted tokens' log-probabilities are given (`logprob`, the CUDA
    kernel computes them in its loop) or computed by `collect_hypotheses` from `g`, the
    predictor output each step used (steps, B, H)."""

    emit: np.ndarray
    label: np.ndarray
    frame: np.ndarray
    duration: np.ndarray
    g: mx.array | None = None
    logprob: np.ndarray | None = None

    def __len__(self) -> int:
        return self.emit.shape[0]

    @classmethod
    def from_steps(cls, records: list[tuple]) -> StepRecords:
        """From the compiled step's per-step tuples (emit, label, frame, duration, g)."""
        if not records:
            empty = np.zeros((0, 0), dtype=np.int32)
            return cls(empty, empty, empty, empty)
        emit, label, frame, duration = (
            np.array(mx.stack(parts)) for parts in list(zip(*records, strict=True))[:4]
        )
        return cls(emit, label, frame, duration, g=mx.stack([record[4] for record in records]))


def collect_hypotheses(
    records: StepRecords, enc_proj: mx.array, joint: JointNetwork, blank_id: int, tdt: bool
) -> list[Hypothesis]:
    """Tokens from the step records, with their log-probabilities (given, or from one joint
    evaluation over all emitted tokens, from the frames and predictor outputs their steps
    used)."""
    batch = enc_proj.shape[0]
    hypotheses = [Hypothesis() for _ in range(batch)]
    if not len(records):
        return hypotheses
    steps, items = np.nonzero(records.emit)
    if steps.size == 0:
        return hypotheses
    labels, frames = records.label[steps, items], records.frame[steps, items]
    if records.logprob is not None:
        logprob = records.logprob[steps, items].astype(np.float32)
    else:
        logprob = _logprobs(records.g, steps, items, labels, frames, enc_proj, joint, blank_id)
    for k, (s, b) in enumerate(zip(steps.tolist(), items.tolist(), strict=True)):
        hypotheses[b].tokens.append(
            Token(
                id=int(labels[k]),
                frame=int(frames[k]),
                duration=int(records.duration[s, b]) if tdt else None,
                logprob=float(logprob[k]),
            )
        )
    return hypotheses


def _logprobs(
    g: mx.array,
    steps: np.ndarray,
    items: np.ndarray,
    labels: np.ndarray,
    frames: np.ndarray,
    enc_proj: mx.array,
    joint: JointNetwork,
    blank_id: int,
) -> np.ndarray:
    """The emitted tokens' log-probabilities: the joint on their frames and the predictor
    outputs their steps used, in slices of `_ROWS` tokens."""
    batch, time = enc_proj.shape[:2]
    g = g.reshape(-1, g.shape[-1])
    g_rows = mx.array(steps * batch + items)
    f_rows = mx.array(items * time + frames)
    f = enc_proj.reshape(-1, enc_proj.shape[-1])
    logprob = np.zeros(steps.size, dtype=np.float32)
    for lo in range(0, steps.size, _ROWS):
        hi = min(steps.size, lo + _ROWS)
        logits = joint(f[f_rows[lo:hi]], g[g_rows[lo:hi]])[:, : blank_id + 1].astype(mx.float32)
        best = mx.take_along_axis(logits, mx.array(labels[lo:hi])[:, None], axis=-1)[:, 0]
        logprob[lo:hi] = np.array(best - mx.logsumexp(logits, axis=-1))
    return logprob


_ROWS = 4096  # emitted tokens per joint evaluation for their confidences
