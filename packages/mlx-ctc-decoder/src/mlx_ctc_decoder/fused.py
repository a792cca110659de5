"""Greedy CTC decoding with shallow fusion, as NeMo 3.0's `GreedyBatchedCTCInfer` does it
(`greedy.ngram_lm_model` / `greedy.boosting_tree` of a CTC model's `greedy_batch` decoding).

Frame by frame, for the whole batch: the plain argmax (blank included) is kept when it is
blank or repeats the previous frame's label; otherwise the label becomes the argmax over the
non-blank labels of log-probability plus each fusion model's weighted score (mlx-asr-fusion's
`fusion_scores`, added model after model in NeMo's order), the previous label excluded. Each
model's state follows the labels so chosen and stays put on blanks and repeats. Padded
frames are decoded too (as NeMo's loop does) and dropped by the caller; they come after an
item's own frames, so they change nothing in it.

The per-frame labels are NeMo's `y_sequence`; `greedy.py` collapses them into tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mlx.core as mx
import numpy as np

from mlx_asr_fusion import (
    FusionModel,
    add_fusion_scores,
    fusion_next,
    fusion_scores,
    fusion_shapes,
    fusion_tables,
)

NEG_INF = float("-inf")
EVAL_EVERY = 64  # frames between evaluations: a bounded graph without a sync per frame


@dataclass
class FusedState:
    """Where a fused greedy search stands: each model's states (B,) and the last label (B,)."""

    states: list[mx.array]
    last: mx.array


def initial_state(fusion: Sequence[FusionModel], batch: int, blank_id: int) -> FusedState:
    """Every model at `<s>` (NeMo: `get_init_states(bos=True)`), the last label blank."""
    return FusedState(
        [fused.model.get_init_states(batch) for fused in fusion],
        mx.full((batch,), blank_id, dtype=mx.int32),
    )


def fused_labels(
    log_probs: mx.array,
    fusion: Sequence[FusionModel],
    blank_id: int,
    state: FusedState | None = None,
) -> tuple[np.ndarray, np.ndarray, FusedState]:
    """Per-frame labels (B, T) and their acoustic log-probabilities (B, T) of (B, T, C)
    log-probabilities, and the state after the last frame (resume from it with the next
    frames). The log-probabilities are the acoustic ones of the labels chosen (a token's
    confidence), not NeMo's fused `predictions_logprobs`."""
    batch, time, _ = log_probs.shape
    if state is None:
        state = initial_state(fusion, batch, blank_id)
    if time == 0:
        return np.zeros((batch, 0), np.int64), np.zeros((batch, 0), np.float32), state
    # A frame whose plain argmax is blank for every item keeps blank whatever the models
    # say (NeMo's rule): no model moves and the last label becomes blank. Only the other
    # frames (about one per token) go through the fused step.
    plain = mx.argmax(log_probs, axis=-1).astype(mx.int32)
    plain_scores = mx.take_along_axis(log_probs, plain[..., None], axis=-1)[..., 0]
    mx.eval(plain, plain_scores)
    labels, scores = np.array(plain).astype(np.int64), np.array(plain_scores.astype(mx.float32))
    busy = np.flatnonzero((labels != blank_id).any(axis=0))
    step = _step_for(fusion_shapes(fusion), blank_id)
    tables = fusion_tables(fusion, blank_id, log_probs.dtype)
    blank = mx.full((batch,), blank_id, dtype=mx.int32)
    chosen, previous = [], -1
    for k, t in enumerate(busy):
        last = state.last if t == previous + 1 else blank  # a skipped frame left blank
        label, score, states = step(log_probs[:, int(t)], last, state.states, tables)
        state = FusedState(states, label)
        chosen.append((label, score))
        previous = int(t)
        if (k + 1) % EVAL_EVERY == 0:
            mx.eval(chosen[-EVAL_EVERY:], state.states)
    if previous != time - 1:
        state = FusedState(state.states, blank)
    if chosen:
        stacked = (mx.stack([c[0] for c in chosen], axis=1),
                   mx.stack([c[1] for c in chosen], axis=1).astype(mx.float32))  # fmt: skip
        mx.eval(stacked, state.states)
        labels[:, busy], scores[:, busy] = np.array(stacked[0]), np.array(stacked[1])
    return labels, scores, state


_STEPS: dict[tuple, object] = {}


def _step_for(shapes: tuple[tuple[int, int], ...], blank_id: int):
    """The compiled step for models of `shapes` (vocabulary, max order) and `blank_id`."""
    key = (shapes, blank_id)
    if key not in _STEPS:
        _STEPS[key] = mx.compile(_make_step(shapes, blank_id))
    return _STEPS[key]


def _make_step(shapes: tuple[tuple[int, int], ...], blank_id: int):
    columns = mx.arange(blank_id, dtype=mx.int32)

    def step(
        frame: mx.array, last: mx.array, states: list[mx.array], tables: list[dict[str, mx.array]]
    ) -> tuple[mx.array, mx.array, list[mx.array]]:
        plain = mx.argmax(frame, axis=-1).astype(mx.int32)
        scores, candidates = fusion_scores(tables, states, shapes, frame.dtype)
        fused = add_fusion_scores(frame[:, :blank_id], scores)
        fused = mx.where(columns[None] == last[:, None], NEG_INF, fused)
        chosen = mx.argmax(fused, axis=-1).astype(mx.int32)
        keep = (plain == blank_id) | (plain == last)
        label = mx.where(keep, plain, chosen)
        score = mx.take_along_axis(frame, label[:, None], axis=-1)[:, 0]
        return label, score, fusion_next(tables, states, candidates, label, ~keep)

    return step
