"""Shallow fusion as NeMo's label-looping decoders apply it: weighted models, one score each.

NeMo's greedy transducer decoding takes `fusion_models` with `fusion_models_alpha` (its
config's `ngram_lm_model` / `ngram_lm_alpha`, then `boosting_tree` / `boosting_tree_alpha`).
At each step every model is advanced from its state, its scores are cast to the joint's
dtype and multiplied by the model's alpha, and added to the token logits one model after
the other, in that order; the state moves on with each emitted token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mlx.core as mx

from .acceptor import SuffixTreeAcceptor, advance_tables


@dataclass(frozen=True)
class FusionModel:
    """One fusion model and its weight (NeMo's alpha): one for the batch, or one per item
    (a sequence, for a `PerItemAcceptor`, as NeMo's per-stream `model2alpha`)."""

    model: SuffixTreeAcceptor
    alpha: float | Sequence[float]


def fusion_tables(models: Sequence[FusionModel], vocab_size: int) -> list[dict[str, mx.array]]:
    """The models' arrays and alphas, the inputs of `fusion_scores` (for compiled steps);
    each model must score the decoder's `vocab_size` tokens."""
    for fused in models:
        if fused.model.vocab_size != vocab_size:
            raise ValueError(
                f"a fusion model over {fused.model.vocab_size} tokens cannot fuse with a "
                f"decoder of {vocab_size} tokens"
            )
    return [{**fused.model.tables, "alpha": _alpha(fused.alpha)} for fused in models]


def _alpha(alpha: float | Sequence[float]) -> mx.array:
    """A scalar, or (B, 1) for per-item alphas (broadcast over a (B, V) score)."""
    if isinstance(alpha, (int, float)):
        return mx.array(alpha, dtype=mx.float32)
    return mx.array(list(alpha), dtype=mx.float32)[:, None]


def fusion_shapes(models: Sequence[FusionModel]) -> tuple[tuple[int, int], ...]:
    """What a compiled step needs to know of the models besides their arrays."""
    return tuple((fused.model.vocab_size, fused.model.max_order) for fused in models)


def fusion_scores(
    tables: Sequence[dict[str, mx.array]],
    states: Sequence[mx.array],
    shapes: tuple[tuple[int, int], ...],
    dtype: mx.Dtype,
) -> tuple[list[mx.array], list[mx.array]]:
    """Each model's weighted scores (B, V) in `dtype`, and its next states (B, V)."""
    scores, candidates = [], []
    for table, state, (vocab_size, max_order) in zip(tables, states, shapes, strict=True):
        score, nxt = advance_tables(table, state, vocab_size, max_order)
        scores.append(score.astype(dtype) * table["alpha"].astype(dtype))
        candidates.append(nxt)
    return scores, candidates


def add_fusion_scores(logits: mx.array, scores: Sequence[mx.array]) -> mx.array:
    """Token logits (B, ..., V) plus each model's scores (B, V), one after the other."""
    for score in scores:
        logits = logits + score.reshape(score.shape[0], *([1] * (logits.ndim - 2)), -1)
    return logits
