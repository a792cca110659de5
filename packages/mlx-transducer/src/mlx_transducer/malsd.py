"""NeMo's batched beam search (`malsd_batch`) for RNNT and TDT, with shallow fusion.

NeMo 3.0 fuses an n-gram LM and a phrase-boosting tree into transducer beam search only in
this strategy (`ModifiedALSDBatchedRNNTComputer` / `ModifiedALSDBatchedTDTComputer`,
`modified_alsd_torch`); its `default` beam (`beam.py`) takes no fusion models. Every item of
the batch keeps `beam` hypothesis slots (`batched_beams.py`), and one step moves them all:

1. the joint scores every slot at its current frame; log-softmax (TDT: over tokens and
   blank, and separately over durations);
2. each slot proposes its top-`beam` extensions (TDT: top label x duration pairs), with the
   fusion models' weighted scores added to the tokens as `pruning_mode` and
   `blank_lm_score_mode` say (`_fused_topk`); a finished slot proposes itself unchanged, and
   a slot with `max_symbols` tokens on its frame proposes only blank;
3. the best `beam` of the `beam x beam` proposals become the new slots, identical ones are
   recombined, the prediction network and the fusion models' states follow each slot's
   label (blank keeps them), and the frame moves on (RNNT: by a blank; TDT: by the
   duration, blank at least 1).

The scores are float32 in NeMo's order of operations. As in NeMo, a TDT duration is the
index of the chosen duration output (NeMo's `malsd_batch` uses the index as the number of
frames; the two agree for the usual durations 0, 1, 2, ..., as NVIDIA's checkpoints have).
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
import numpy as np

from mlx_asr_fusion import (
    FusionModel,
    fusion_next,
    fusion_scores,
    fusion_shapes,
    fusion_tables,
)

from .batched_beams import INACTIVE_SCORE, NO_LABEL, BatchedBeams
from .beam import BeamHypothesis, _log_softmax
from .networks import JointNetwork, PredictionNetwork

PRUNING_MODES = ("late", "early")
BLANK_LM_SCORE_MODES = ("lm_weighted_full", "no_score")
EPS = np.float32(1e-2)  # NeMo's clamp of p(blank) below 1 in `lm_weighted_full`


def _topk(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest along the last axis, largest first, ties to the lower index."""
    order = np.argsort(-values, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(values, order, axis=-1), order


class _Fusion:
    """The fusion models' states per slot and their weighted scores for the next token."""

    def __init__(self, models: Sequence[FusionModel], vocab_size: int, rows: int) -> None:
        if any(not isinstance(fused.alpha, (int, float)) for fused in models):
            raise ValueError("per-item fusion models work with greedy decoding only (not yet beam)")
        self.tables = fusion_tables(models, vocab_size)
        self.shapes = fusion_shapes(models)
        self.alpha_sum = sum(fused.alpha for fused in models)  # a Python float, as NeMo's
        self.states = [fused.model.get_init_states(rows, bos=True) for fused in models]
        self._advance()

    def _advance(self) -> None:
        scores, self.candidates = fusion_scores(self.tables, self.states, self.shapes, mx.float32)
        total = scores[0]
        for score in scores[1:]:
            total = total + score
        self.scores = np.array(total)  # (rows, V): NeMo's `sum(fusion_scores_list)`

    def follow(self, rows: mx.array, labels: mx.array, keep: mx.array) -> None:
        """Each slot takes slot `rows`' state, moved on by its label unless `keep`."""
        previous = [state[rows] for state in self.states]
        candidates = [c if isinstance(c, int) else c[rows] for c in self.candidates]
        self.states = fusion_next(self.tables, previous, candidates, labels, ~keep)
        self._advance()


def _fused_topk(
    log_probs: np.ndarray,
    fused: np.ndarray,
    alpha_sum: float,
    beam: int,
    pruning_mode: str,
    blank_lm_score_mode: str,
) -> tuple[np.ndarray, np.ndarray]:
    """NeMo's `topk_fusion_model` over labels (blank last), for RNNT; `log_probs` is changed
    in place as NeMo changes it (its blank column is then read for the forced blank)."""
    weighted = blank_lm_score_mode == "lm_weighted_full"
    if weighted:
        blank = log_probs[..., -1]
        non_blank = np.log1p(-np.minimum(np.exp(blank), np.float32(1.0) - EPS))
        scaled = non_blank[..., None] * np.float32(alpha_sum)
    if pruning_mode == "late":
        if weighted:
            log_probs[..., :-1] += scaled + fused
            log_probs[..., -1] *= np.float32(1 + alpha_sum)
        else:
            log_probs[..., :-1] += fused
        return _topk(log_probs, beam)
    values, labels = _topk(log_probs, beam)
    is_blank = labels == log_probs.shape[-1] - 1
    gathered = np.take_along_axis(fused, np.where(is_blank, 0, labels), axis=-1)
    if weighted:
        values = np.where(is_blank, values * np.float32(1 + alpha_sum), values + scaled + gathered)
    else:
        values = np.where(is_blank, values, values + gathered)
    return values.astype(np.float32), labels


def _tdt_topk(
    log_probs: np.ndarray,
    duration_log_probs: np.ndarray,
    fused: np.ndarray | None,
    alpha_sum: float,
    beam: int,
    pruning_mode: str,
    blank_lm_score_mode: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top (label, duration index) pairs: NeMo's TDT `topk_fusion_model`, or without fusion
    the plain top-k of label + duration log-probabilities."""
    batch, slots, _ = log_probs.shape
    count = duration_log_probs.shape[-1]
    if fused is not None and pruning_mode == "early":
        values, labels = _fused_topk(
            log_probs, fused, alpha_sum, beam, "early", blank_lm_score_mode
        )
        total = (values[..., :, None] + duration_log_probs[..., None, :]).reshape(batch, slots, -1)
        values, index = _topk(total, beam)
        return values, np.take_along_axis(labels, index // count, axis=-1), index % count
    if fused is not None:  # late: fused label scores, then every pair
        _fused_topk(log_probs, fused, alpha_sum, beam, "late", blank_lm_score_mode)
    total = (log_probs[..., :, None] + duration_log_probs[..., None, :]).reshape(batch, slots, -1)
    values, index = _topk(total, beam)
    return values, index // count, index % count


def malsd_batch(
    prednet: PredictionNetwork,
    joint: JointNetwork,
    encoder_output: mx.array,
    lengths: Sequence[int],
    *,
    blank_id: int,
    durations: tuple[int, ...] = (),
    beam_size: int = 4,
    max_symbols: int | None = 10,
    fusion: Sequence[FusionModel] = (),
    pruning_mode: str = "late",
    blank_lm_score_mode: str = "lm_weighted_full",
    length_penalty: float = 1.0,
) -> list[list[BeamHypothesis]]:
    """NeMo's `malsd_batch` over (B, T, D) encoder frames with valid `lengths`: per item an
    n-best list, best first (NeMo's `return_best_hypothesis=False`). `fusion` as NeMo's
    `fusion_models` (LM first, then the boosting tree); `pruning_mode` and
    `blank_lm_score_mode` as NeMo's (its decoding config's defaults: late,
    lm_weighted_full); `length_penalty` 1.0 is NeMo's `score_norm=True`, 0.0 `False`."""
    _check(pruning_mode, blank_lm_score_mode, beam_size)
    tdt = bool(durations)
    batch, time, _ = encoder_output.shape
    beam = beam_size
    rows = batch * beam
    sizes = np.asarray(lengths, dtype=np.int64)
    enc = joint.project_encoder(encoder_output).reshape(batch * time, -1)
    beams = BatchedBeams(batch, beam, blank_id, tdt)
    fusion_state = _Fusion(fusion, blank_id, rows) if fusion else None

    # NeMo's frame bookkeeping: RNNT clamps the last frame at 0 and starts zero-length
    # items inactive; TDT does neither (both as NeMo writes them).
    last = np.broadcast_to(
        (np.maximum(sizes - 1, 0) if not tdt else sizes - 1)[:, None], (batch, beam)
    )
    frames = np.zeros((batch, beam), dtype=np.int64)
    active = frames <= last
    if not tdt:
        active &= (sizes > 0)[:, None]
    item_rows = np.repeat(np.arange(batch), beam).reshape(batch, beam)

    labels = mx.full((rows,), blank_id, dtype=mx.int32)  # blank embeds as zeros
    out, state = prednet(labels, prednet.initial_state(rows, enc.dtype))
    g = joint.project_prednet(out)
    while active.any():
        safe = np.minimum(frames, last) % time
        f = enc[mx.array((item_rows * time + safe).reshape(-1))]
        logits = np.array(joint(f, g).astype(mx.float32)).reshape(batch, beam, -1)
        log_probs = _log_softmax(logits[..., : blank_id + 1])
        raw = log_probs.copy()
        candidates, top_labels, top_durations = _expand(
            log_probs, logits, beams, active, fusion_state, blank_id=blank_id, tdt=tdt,
            beam=beam, max_symbols=max_symbols, pruning_mode=pruning_mode,
            blank_lm_score_mode=blank_lm_score_mode,
        )  # fmt: skip

        next_scores, chosen = _topk(candidates.reshape(batch, -1).astype(np.float32), beam)
        parents = chosen // beam
        next_labels = np.take_along_axis(top_labels.reshape(batch, -1), chosen, axis=-1)
        own = np.take_along_axis(raw, parents[..., None], axis=1)  # (B, beam, V + 1)
        logprobs = np.take_along_axis(own, np.maximum(next_labels, 0)[..., None], axis=-1)[..., 0]
        next_durations = (
            np.take_along_axis(top_durations.reshape(batch, -1), chosen, axis=-1) if tdt else None
        )
        beams.add(parents, next_labels, next_scores, logprobs, next_durations)
        beams.recombine()

        source = mx.array((item_rows * beam + parents).reshape(-1))
        g, state = _follow(prednet, joint, g, state, source, next_labels, blank_id, fusion_state)

        moved = np.where(next_labels >= 0, next_durations, 0) if tdt else (next_labels == blank_id)
        frames = np.take_along_axis(frames, parents, axis=-1) + moved
        active = frames <= last
    return beams.nbest(length_penalty)


def _expand(
    log_probs: np.ndarray,
    logits: np.ndarray,
    beams: BatchedBeams,
    active: np.ndarray,
    fusion_state: _Fusion | None,
    *,
    blank_id: int,
    tdt: bool,
    beam: int,
    max_symbols: int | None,
    pruning_mode: str,
    blank_lm_score_mode: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Each hypothesis's `beam` best extensions (B, beam, beam): their scores, labels and
    (TDT) durations, with NeMo's handling of finished hypotheses (kept once, as they are)
    and of `max_symbols` (only a forced blank)."""
    batch = log_probs.shape[0]
    top_durations = None
    fused = None if fusion_state is None else fusion_state.scores.reshape(batch, beam, -1)
    if tdt:
        duration_log_probs = _log_softmax(logits[..., blank_id + 1 :])
        values, top_labels, top_durations = _tdt_topk(
            log_probs, duration_log_probs, fused,
            fusion_state.alpha_sum if fusion_state else 0.0, beam, pruning_mode, blank_lm_score_mode,
        )  # fmt: skip
        top_durations = np.where((top_labels == blank_id) & (top_durations == 0), 1, top_durations)
        forced_blank = log_probs[..., -1] + duration_log_probs.max(-1)
    else:
        if fused is None:
            values, top_labels = _topk(log_probs, beam)
        else:
            values, top_labels = _fused_topk(log_probs, fused, fusion_state.alpha_sum, beam,
                                             pruning_mode, blank_lm_score_mode)  # fmt: skip
        forced_blank = log_probs[..., blank_id]
    scores = beams.scores
    candidates = scores[..., None] + values
    forced = scores + forced_blank
    candidates = np.where(active[..., None], candidates, INACTIVE_SCORE)
    candidates[..., 0] = np.where(active, candidates[..., 0], scores)
    top_labels = np.where(active[..., None], top_labels, NO_LABEL)
    force = active & (beams.tokens_on_frame >= (max_symbols if max_symbols is not None else np.inf))
    candidates = np.where(force[..., None], INACTIVE_SCORE, candidates)
    candidates[..., 0] = np.where(force, forced, candidates[..., 0])
    top_labels = np.where(force[..., None], blank_id, top_labels)
    if tdt:
        top_durations = np.where(force[..., None] & (top_durations == 0), 1, top_durations)
    return candidates, top_labels, top_durations


def _follow(
    prednet: PredictionNetwork,
    joint: JointNetwork,
    g: mx.array,
    state: tuple[mx.array, mx.array],
    source: mx.array,
    next_labels: np.ndarray,
    blank_id: int,
    fusion_state: _Fusion | None,
) -> tuple[mx.array, tuple[mx.array, mx.array]]:
    """The prediction network (and the fusion models) of the chosen hypotheses: their
    parents' (rows `source`), stepped on the label each emitted; a blank keeps them."""
    emitted = np.where(next_labels >= 0, next_labels, blank_id)
    keep = mx.array((emitted == blank_id).reshape(-1))
    labels = mx.array(emitted.reshape(-1).astype(np.int32))
    previous_g = g[source]
    previous_state = (state[0][:, source], state[1][:, source])
    out, state = prednet(labels, previous_state)
    g = mx.where(keep[:, None], previous_g, joint.project_prednet(out))
    state = tuple(
        mx.where(keep[None, :, None], p, s) for p, s in zip(previous_state, state, strict=True)
    )
    if fusion_state is not None:
        fusion_state.follow(source, labels, keep)
    return g, state


def _check(pruning_mode: str, blank_lm_score_mode: str, beam_size: int) -> None:
    """ValueError for a mode NeMo does not have, or a beam of no hypotheses."""
    if pruning_mode not in PRUNING_MODES:
        raise ValueError(f"pruning_mode must be one of {PRUNING_MODES}, not {pruning_mode!r}")
    if blank_lm_score_mode not in BLANK_LM_SCORE_MODES:
        raise ValueError(
            f"blank_lm_score_mode must be one of {BLANK_LM_SCORE_MODES}, not {blank_lm_score_mode!r}"
        )
    if beam_size < 1:
        raise ValueError("beam_size must be at least 1")
