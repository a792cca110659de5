"""Per-item fusion models: each item of a batch with its own boosting tree (or none).

NeMo's per-stream boosting (`GPUBiasingMultiModel`, `enable_per_stream_biasing`) stores
every request's tree in one set of arrays, each at its own state and arc offsets, and
queries a batch of (state, model id) pairs. Here the merged arrays hold *global* states:
each model's states, arc targets and back-off targets are shifted by its offset, so the
query is `advance_tables` as for one model (a model's start state backs off to itself and
has an arc for every label, so the chain stops there as at state 0). An item without a tree
gets a one-state model whose every arc scores 0 (NeMo's model id -1: no bonus). Alphas are
given per item through `FusionModel(model, alpha=[...])`, multiplied into the scores as
NeMo's `model2alpha`. The end-of-sentence query (`eos_id`) is refused, as NeMo's
multi-model refuses it.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
import numpy as np

from .acceptor import START_STATE, AcceptorArrays, SuffixTreeAcceptor


def _empty_model(vocab_size: int) -> AcceptorArrays:
    """One start state with a zero-weight arc to itself for every label."""
    labels = np.arange(vocab_size, dtype=np.int32)
    zeros = np.zeros(1, dtype=np.int32)
    return AcceptorArrays(
        arc_from=np.zeros(vocab_size, dtype=np.int32), arc_to=np.zeros(vocab_size, dtype=np.int32),
        arc_labels=labels, arc_weights=np.zeros(vocab_size, dtype=np.float32),
        arcs_start=zeros, arcs_end=np.array([vocab_size], dtype=np.int32),
        state_order=np.ones(1, dtype=np.int32), backoff_to=zeros,
        backoff_weights=np.zeros(1, dtype=np.float32), final_weights=np.zeros(1, dtype=np.float32),
    )  # fmt: skip


class PerItemAcceptor(SuffixTreeAcceptor):
    """The acceptors of a batch's items (None: no model for that item) merged into one,
    queried with each item's states. Built for one batch: `get_init_states(len(models))`."""

    def __init__(self, models: Sequence[SuffixTreeAcceptor | None]) -> None:
        present = [m for m in models if m is not None]
        if not present:
            raise ValueError("per-item fusion needs at least one model")
        vocab_size = present[0].vocab_size
        if any(m.vocab_size != vocab_size for m in present):
            raise ValueError("per-item fusion models must share one vocabulary")
        distinct: list[SuffixTreeAcceptor | None] = []
        for model in models:  # each model once, however many items carry it
            if not any(model is seen for seen in distinct):
                distinct.append(model)
        parts, finals, offsets, state_offset, arc_offset = [], [], [], 0, 0
        for model in distinct:
            arrays = _empty_model(vocab_size) if model is None else model.arrays
            final = arrays.final_weights if model is None else model.final_weights
            starts = arrays.arcs_start + arc_offset
            ends = arrays.arcs_end + arc_offset
            empty = arrays.arcs_end == 0  # a state without arcs: (0, 0), kept empty
            parts.append(
                (arrays, state_offset, np.where(empty, 0, starts), np.where(empty, 0, ends))
            )
            finals.append(final)
            offsets.append(state_offset)
            state_offset += arrays.arcs_start.size
            arc_offset += arrays.arc_labels.size
        merged = AcceptorArrays(
            arc_from=np.concatenate([a.arc_from + s for a, s, _, _ in parts]).astype(np.int32),
            arc_to=np.concatenate([a.arc_to + s for a, s, _, _ in parts]).astype(np.int32),
            arc_labels=np.concatenate([a.arc_labels for a, _, _, _ in parts]),
            arc_weights=np.concatenate([a.arc_weights for a, _, _, _ in parts]),
            arcs_start=np.concatenate([st for _, _, st, _ in parts]).astype(np.int32),
            arcs_end=np.concatenate([en for _, _, _, en in parts]).astype(np.int32),
            state_order=np.concatenate([a.state_order for a, _, _, _ in parts]),
            backoff_to=np.concatenate([a.backoff_to + s for a, s, _, _ in parts]).astype(np.int32),
            backoff_weights=np.concatenate([a.backoff_weights for a, _, _, _ in parts]),
            final_weights=np.concatenate(finals).astype(np.float32),  # resolved per model
        )
        max_order = max(m.max_order for m in present)
        super().__init__(merged, vocab_size=vocab_size, max_order=max_order, bos_state=START_STATE)
        where = [offsets[next(i for i, seen in enumerate(distinct) if seen is m)] for m in models]
        self.item_start = np.array(where, dtype=np.int32)
        self.item_bos = self.item_start + np.array(
            [START_STATE if m is None else m.bos_state for m in models], dtype=np.int32
        )

    def get_init_states(self, batch_size: int, bos: bool = True) -> mx.array:
        """Each item's begin state in its own model (its start state with `bos=False`)."""
        if batch_size != self.item_start.size:
            raise ValueError(
                f"per-item fusion was built for {self.item_start.size} items, not {batch_size}"
            )
        return mx.array(self.item_bos if bos else self.item_start)

    def advance(self, states: mx.array, eos_id: int | None = None) -> tuple[mx.array, mx.array]:
        if eos_id is not None:
            raise ValueError("per-item fusion does not score the end of the sentence (nor NeMo's)")
        return super().advance(states)
