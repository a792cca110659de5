"""Shallow fusion as NeMo's label-looping decoders apply it: weighted models, one score each.

NeMo's greedy transducer decoding takes `fusion_models` with `fusion_models_alpha` (its
config's `ngram_lm_model` / `ngram_lm_alpha`, then `boosting_tree` / `boosting_tree_alpha`).
At each step every model is advanced from its state, its scores are cast to the joint's
dtype and multiplied by the model's alpha, and added to the token logits one model after
the other, in that order; the state moves on with each emitted token.

A model whose every state's answer fits in `DENSE_ENTRIES` (states x vocabulary) is asked
once for all its states (`dense_answers`) and then read by row: a decoding step's query is
one gather instead of a walk down the back-off chain, one small operation per tree level or
LM order, which on the CPU costs more than the decoding itself. The rows are `advance`'s own
answers, so the scores are the same bits. With one alpha for the batch the table is kept
weighted (cast to the logits' dtype and times alpha, as a step would), so a step gathers
one row and adds it; and a step reads a dense model's next state only for the token it
chose (`fusion_next`), not a row of next states for every token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mlx.core as mx

from .acceptor import SuffixTreeAcceptor, advance_tables

DENSE_ENTRIES = 1 << 23  # states x vocabulary of a model whose answers are kept whole (64 MiB)
_DENSE_CHUNK = 4096  # states asked at once while building them
_WEIGHTED_KEPT = 4  # weighted tables kept per model (one per alpha and dtype in use)


@dataclass(frozen=True)
class FusionModel:
    """One fusion model and its weight (NeMo's alpha): one for the batch, or one per item
    (a sequence, for a `PerItemAcceptor`, as NeMo's per-stream `model2alpha`)."""

    model: SuffixTreeAcceptor
    alpha: float | Sequence[float]


def fusion_tables(
    models: Sequence[FusionModel], vocab_size: int, dtype: mx.Dtype = mx.float32
) -> list[dict[str, mx.array]]:
    """The models' arrays, the inputs of `fusion_scores` / `fusion_next` (for compiled steps),
    for scores added in `dtype` (the logits'); each model must score the decoder's
    `vocab_size` tokens. A dense model with one alpha gets its table of every state's
    weighted scores (`weighted_scores`), so that a step gathers a row and adds it; the
    others keep their alpha, multiplied in at each step."""
    for fused in models:
        if fused.model.vocab_size != vocab_size:
            raise ValueError(
                f"a fusion model over {fused.model.vocab_size} tokens cannot fuse with a "
                f"decoder of {vocab_size} tokens"
            )
    tables = []
    for fused in models:
        dense = dense_answers(fused.model)
        if not dense:
            tables.append({**fused.model.tables, "alpha": _alpha(fused.alpha)})
            continue
        # next states flat: a step reads one element per item (no row, no squeeze)
        table = {"next_flat": dense["dense_next"].reshape(-1)}
        mx.eval(table)  # a view of the same memory, not a node of the first step
        if isinstance(fused.alpha, (int, float)):
            table["weighted"] = weighted_scores(fused.model, fused.alpha, dtype)
        else:
            table.update(dense_scores=dense["dense_scores"], alpha=_alpha(fused.alpha))
        tables.append(table)
    return tables


def _alpha(alpha: float | Sequence[float]) -> mx.array:
    """A scalar, or (B, 1) for per-item alphas (broadcast over a (B, V) score)."""
    if isinstance(alpha, (int, float)):
        return mx.array(alpha, dtype=mx.float32)
    return mx.array(list(alpha), dtype=mx.float32)[:, None]


def weighted_scores(model: SuffixTreeAcceptor, alpha: float, dtype: mx.Dtype) -> mx.array:
    """Every state's scores cast to `dtype` and times `alpha` in `dtype` (NeMo's order of
    operations, so the same bits as weighting a row at each step), made once per model,
    alpha and dtype (the last `_WEIGHTED_KEPT` kept). For a dense model only."""
    kept = model.__dict__.setdefault("_weighted_scores", {})
    key = (float(alpha), dtype)
    if key not in kept:
        scores = dense_answers(model)["dense_scores"].astype(dtype)
        kept[key] = scores * _alpha(alpha).astype(dtype)
        mx.eval(kept[key])
        while len(kept) > _WEIGHTED_KEPT:
            kept.pop(next(iter(kept)))
    return kept[key]


def dense_answers(model: SuffixTreeAcceptor) -> dict[str, mx.array]:
    """Every state's scores (num_states, V) and next states (num_states, V + 1, the last
    column the state itself: reading no token stays), as `dense_scores` and `dense_next`
    (made once per model), or nothing for a model over `DENSE_ENTRIES`."""
    if model.num_states * model.vocab_size > DENSE_ENTRIES:
        return {}
    cached = model.__dict__.get("_dense_answers")
    if cached is None:
        scores, targets = [], []
        for start in range(0, model.num_states, _DENSE_CHUNK):
            states = mx.arange(start, min(start + _DENSE_CHUNK, model.num_states), dtype=mx.int32)
            score, nxt = advance_tables(model.tables, states, model.vocab_size, model.max_order)
            nxt = mx.concatenate([nxt, states[:, None]], axis=1)
            mx.eval(score, nxt)
            scores.append(score)
            targets.append(nxt)
        cached = {"dense_scores": mx.concatenate(scores), "dense_next": mx.concatenate(targets)}
        mx.eval(cached)
        model.__dict__["_dense_answers"] = cached
    return cached


def fusion_shapes(models: Sequence[FusionModel]) -> tuple[tuple[int, int], ...]:
    """What a compiled step needs to know of the models besides their arrays."""
    return tuple((fused.model.vocab_size, fused.model.max_order) for fused in models)


def fusion_scores(
    tables: Sequence[dict[str, mx.array]],
    states: Sequence[mx.array],
    shapes: tuple[tuple[int, int], ...],
    dtype: mx.Dtype,
) -> tuple[list[mx.array], list[mx.array | int]]:
    """Each model's weighted scores (B, V) in `dtype`, and what `fusion_next` needs of it:
    the next states (B, V) of a model walked down its back-offs, the vocabulary's size for
    a dense one (its next state is read for the chosen token only)."""
    scores, candidates = [], []
    for table, state, (vocab_size, max_order) in zip(tables, states, shapes, strict=True):
        if "next_flat" in table:
            candidates.append(vocab_size)
        if "weighted" in table:  # every state's weighted answer kept: one row gathered
            if table["weighted"].dtype != dtype:
                raise ValueError("fusion tables made for another dtype than the logits'")
            scores.append(table["weighted"][state])
            continue
        if "dense_scores" in table:
            score = table["dense_scores"][state]
        else:
            score, nxt = advance_tables(table, state, vocab_size, max_order)
            candidates.append(nxt)
        scores.append(score.astype(dtype) * table["alpha"].astype(dtype))
    return scores, candidates


def fusion_next(
    tables: Sequence[dict[str, mx.array]],
    states: Sequence[mx.array],
    candidates: Sequence[mx.array | int],
    tokens: mx.array,
    moves: mx.array,
) -> list[mx.array]:
    """Each model's states (B,) after reading `tokens` (B,) where `moves`, the same states
    elsewhere (where tokens may be anything), with `fusion_scores`' candidates. A dense
    model's is one read of its flat table, at (state, token) or at its staying column."""
    moved = []
    for table, state, nxt in zip(tables, states, candidates, strict=True):
        if isinstance(nxt, int):  # a row of V + 1 per state, the last one staying
            start = state * (nxt + 1)
            at = mx.where(moves, start + tokens, start + nxt)
            moved.append(mx.take_along_axis(table["next_flat"], at, axis=0))
        else:
            token = mx.minimum(tokens, nxt.shape[1] - 1)[:, None]
            moved.append(mx.where(moves, mx.take_along_axis(nxt, token, axis=1)[:, 0], state))
    return moved


def add_fusion_scores(logits: mx.array, scores: Sequence[mx.array]) -> mx.array:
    """Token logits (B, ..., V) plus each model's scores (B, V), one after the other."""
    for score in scores:
        logits = logits + score.reshape(score.shape[0], *([1] * (logits.ndim - 2)), -1)
    return logits
