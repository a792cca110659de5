"""A weighted acceptor with back-off arcs, queried for the whole vocabulary at once.

NeMo keeps its n-gram LM and its phrase-boosting tree in one layout (`NGramGPULanguageModel`
and `GPUBoostingTreeModel`): each state's outgoing arcs are one contiguous range of an arc
table, sorted by label, and each state has one back-off arc (weight, target). The start
state (0) has an arc for every label, so following back-offs always ends with an answer.

`advance(states)` gives, for every state of a batch and every label, the score of reading
the label and the state it leads to: the first state on the back-off chain (the queried
state first) that has an arc for the label answers, and the score is the back-off weights
summed along the way plus that arc's weight. All of it is float32 and summed in NeMo's
order (back-offs from the queried state outward, then the arc), so the results equal
NeMo's bit for bit. The chain is at most `max_order` states long, so `advance` is a fixed
number of vectorised steps: no per-state Python loop, nothing that needs the host, and it
can run inside `mx.compile` (`advance_tables` takes the arrays as inputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import numpy as np

# NeMo's "no final weight" marker (`nemo.collections.common.parts.NEG_INF`), not -inf:
# final weights at or below it are resolved through back-offs.
NEG_INF = -10000.0
START_STATE = 0


@dataclass(frozen=True)
class AcceptorArrays:
    """The acceptor as the builders make it (numpy, NeMo's dtypes and arc order).

    Arcs: `arc_from`, `arc_to`, `arc_labels` (int32), `arc_weights` (float32). States:
    `arcs_start`, `arcs_end` (the arc range; empty as 0, 0), `state_order` (1 for the start
    state), `backoff_to`, `backoff_weights` and `final_weights` (as given, before back-off
    resolution).
    """

    arc_from: np.ndarray
    arc_to: np.ndarray
    arc_labels: np.ndarray
    arc_weights: np.ndarray
    arcs_start: np.ndarray
    arcs_end: np.ndarray
    state_order: np.ndarray
    backoff_to: np.ndarray
    backoff_weights: np.ndarray
    final_weights: np.ndarray

    def check(self, vocab_size: int, max_order: int) -> None:
        """The invariants `advance` relies on (NeMo asserts the same)."""
        labels = self.arc_labels
        if labels.size and (labels.min() < 0 or labels.max() >= vocab_size):
            raise ValueError(f"arc labels must lie in [0, {vocab_size})")
        if self.state_order.min() != 1 or self.state_order.max() > max_order:
            raise ValueError(f"state orders must lie in [1, {max_order}]")


class AcceptorBuilder:
    """Arrays being filled (sized by the builder), states and arcs added in NeMo's order."""

    def __init__(self, num_states: int, num_arcs: int, final: float) -> None:
        self.arc_from = np.zeros(num_arcs, dtype=np.int32)
        self.arc_to = np.zeros(num_arcs, dtype=np.int32)
        self.arc_labels = np.zeros(num_arcs, dtype=np.int32)
        self.arc_weights = np.zeros(num_arcs, dtype=np.float32)
        self.arcs_start = np.zeros(num_states, dtype=np.int32)
        self.arcs_end = np.zeros(num_states, dtype=np.int32)
        self.order = np.zeros(num_states, dtype=np.int32)
        self.backoff_to = np.zeros(num_states, dtype=np.int32)
        self.backoff_weights = np.zeros(num_states, dtype=np.float32)
        self.final = np.full(num_states, final, dtype=np.float32)
        self.num_states = 0
        self.num_arcs = 0

    def set_arc(self, arc: int, source: int, target: int, label: int, weight: float) -> None:
        self.arc_from[arc], self.arc_to[arc] = source, target
        self.arc_labels[arc], self.arc_weights[arc] = label, weight

    def add_arc(self, source: int, target: int, label: int, weight: float) -> int:
        """A new arc after the last; its index."""
        arc = self.num_arcs
        self.num_arcs += 1
        self.set_arc(arc, source, target, label, weight)
        return arc

    def add_state(self, order: int, backoff_to: int, backoff_weight: float) -> int:
        state = self.num_states
        self.num_states += 1
        self.order[state], self.backoff_to[state] = order, backoff_to
        self.backoff_weights[state] = backoff_weight
        return state

    def extend_range(self, state: int, arc: int) -> None:
        """Arc `arc` is the next of `state`'s (its arcs are contiguous)."""
        if self.arcs_start[state] == 0:
            self.arcs_start[state] = arc
        elif self.arcs_end[state] != arc:
            raise ValueError("a state's arcs must be contiguous")
        self.arcs_end[state] = arc + 1

    def arrays(self) -> AcceptorArrays:
        s, a = self.num_states, self.num_arcs
        return AcceptorArrays(
            arc_from=self.arc_from[:a],
            arc_to=self.arc_to[:a],
            arc_labels=self.arc_labels[:a],
            arc_weights=self.arc_weights[:a],
            arcs_start=self.arcs_start[:s],
            arcs_end=self.arcs_end[:s],
            state_order=self.order[:s],
            backoff_to=self.backoff_to[:s],
            backoff_weights=self.backoff_weights[:s],
            final_weights=self.final[:s],
        )


def resolve_final(arrays: AcceptorArrays) -> np.ndarray:
    """Final weights with back-offs resolved, as NeMo's `_resolve_final`: a state whose own
    final weight is at or below NEG_INF takes the first one above it along its back-off
    chain, plus the back-off weights summed on the way (float32, in chain order)."""
    final = arrays.final_weights.astype(np.float32)
    out = final.copy()
    current = np.arange(final.size)
    summed = np.zeros_like(final)
    for _ in range(final.size):
        if not ((out <= NEG_INF).any() and (current != START_STATE).any()):
            break
        summed = summed + arrays.backoff_weights[current]
        current = arrays.backoff_to[current]
        reached = final[current]
        out = np.where((out > NEG_INF) | (reached <= NEG_INF), out, summed + reached)
    return out


def advance_tables(
    tables: dict[str, mx.array], states: mx.array, vocab_size: int, max_order: int
) -> tuple[mx.array, mx.array]:
    """Scores (B, V) float32 and next states (B, V) int32 for states (B,), from `tables`
    (`SuffixTreeAcceptor.tables`). A pure function of arrays: usable in compiled code."""
    batch = states.shape[0]
    labels = mx.arange(vocab_size, dtype=mx.int32)
    scores = mx.zeros((batch, vocab_size), dtype=mx.float32)
    targets = mx.full((batch, vocab_size), -1, dtype=mx.int32)
    summed = mx.zeros((batch,), dtype=mx.float32)
    pending = mx.ones((batch,), dtype=mx.bool_)
    current = states.astype(mx.int32)
    # The chain from a state of order k to the start state has k states: max_order steps
    # cover every state; a step after the start state was read changes nothing.
    for _ in range(max_order):
        start = tables["arcs_start"][current]
        arcs = start[:, None] + labels  # within the padded table (it has V spare arcs)
        own = (arcs < tables["arcs_end"][current][:, None]) & pending[:, None]
        # each arc lands in its label's column; arcs not of this state in a spare column V
        column = mx.where(own, tables["arc_labels"][arcs], vocab_size)
        step_scores = mx.put_along_axis(
            mx.zeros((batch, vocab_size + 1), dtype=mx.float32),
            column,
            tables["arc_weights"][arcs],
            axis=1,
        )
        step_targets = mx.put_along_axis(
            mx.full((batch, vocab_size + 1), -1, dtype=mx.int32),
            column,
            tables["arc_to"][arcs],
            axis=1,
        )
        found = targets != -1
        scores = mx.where(found, scores, summed[:, None] + step_scores[:, :vocab_size])
        targets = mx.where(found, targets, step_targets[:, :vocab_size])
        pending = pending & (current != START_STATE)
        summed = summed + mx.where(pending, tables["backoff_weights"][current], 0.0)
        current = mx.where(pending, tables["backoff_to"][current], current)
    return scores, targets


class SuffixTreeAcceptor:
    """The acceptor's arrays on the device and NeMo's query interface: `get_init_states`,
    `advance`, `get_final`. Built by `NGramLM.from_arpa` and `BoostingTree.from_phrases`."""

    def __init__(
        self, arrays: AcceptorArrays, *, vocab_size: int, max_order: int, bos_state: int
    ) -> None:
        arrays.check(vocab_size, max_order)
        self.arrays = arrays
        self.vocab_size = vocab_size
        self.max_order = max_order
        self.bos_state = bos_state
        self.num_states = int(arrays.arcs_start.size)
        self.num_arcs = int(arrays.arc_labels.size)
        # V spare (zero) arcs after the last, as NeMo's `num_arcs_extended`: a state's
        # arc range plus the vocabulary never reads past the table.
        spare = np.zeros(vocab_size, dtype=np.int32)
        self.final_weights = resolve_final(arrays)
        self.tables = {
            "arc_to": mx.array(np.concatenate([arrays.arc_to, spare])),
            "arc_labels": mx.array(np.concatenate([arrays.arc_labels, spare])),
            "arc_weights": mx.array(np.concatenate([arrays.arc_weights, spare.astype(np.float32)])),
            "arcs_start": mx.array(arrays.arcs_start),
            "arcs_end": mx.array(arrays.arcs_end),
            "backoff_to": mx.array(arrays.backoff_to),
            "backoff_weights": mx.array(arrays.backoff_weights),
            "final_weights": mx.array(self.final_weights),
        }
        mx.eval(self.tables)

    def get_init_states(self, batch_size: int, bos: bool = True) -> mx.array:
        """(B,) int32: the begin-of-sentence state, or the start state with `bos=False`."""
        return mx.full((batch_size,), self.bos_state if bos else START_STATE, dtype=mx.int32)

    def advance(self, states: mx.array, eos_id: int | None = None) -> tuple[mx.array, mx.array]:
        """Scores (B, V) and next states (B, V) for every label from states (B,). With
        `eos_id`, that label's column scores the end of the sentence instead and stays in
        the state (NeMo's `eos_id`, used by attention decoders)."""
        scores, targets = advance_tables(self.tables, states, self.vocab_size, self.max_order)
        if eos_id is None:
            return scores, targets
        column = mx.arange(self.vocab_size) == eos_id
        eos = self._eos_scores(scores, states)
        return (
            mx.where(column, eos[:, None], scores),
            mx.where(column, states.astype(mx.int32)[:, None], targets),
        )

    def _eos_scores(self, scores: mx.array, states: mx.array) -> mx.array:
        """The end-of-sentence score of each state: its final weight."""
        return self.get_final(states)

    def get_final(self, states: mx.array) -> mx.array:
        """(B,) final weights (back-offs resolved)."""
        return self.tables["final_weights"][states]
