"""NeMo's token-level n-gram LM (`NGramGPULanguageModel`) as a batched acceptor on MLX.

The ARPA model becomes NeMo's suffix tree, state for state and arc for arc:

- state 0 is the start (empty history), state 1 the begin-of-sentence history `<s>`; then
  one state per unigram in label order, then one per n-gram of each order below the
  highest, each order sorted by its words (the specials, negative, first);
- the start state has one arc per label at the label's index: the unigram's, or for a
  label the LM does not have an `<unk>` arc back to the start state, weighted with the
  `<unk>` unigram's weight (-inf without one) less log(number of such labels) when
  `normalize_unk` (and there are more than one);
- an n-gram of the highest order is an arc from its history's state to its suffix's
  state; lower orders have their own state, whose back-off leads to the suffix's state;
- `</s>` n-grams are final weights of their history's state (others resolved through
  back-offs, as `acceptor.resolve_final` says).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .acceptor import NEG_INF, START_STATE, AcceptorArrays, AcceptorBuilder, SuffixTreeAcceptor
from .arpa import BOS_ID, DEFAULT_TOKEN_OFFSET, EOS_ID, UNK_ID, NGram, read_arpa

BOS_STATE = 1


class NGramLM(SuffixTreeAcceptor):
    """A token n-gram LM: `advance` gives each label's log-probability (natural log) after
    each state's history, and the state the history becomes."""

    @classmethod
    def from_arpa(
        cls,
        path: str | Path,
        vocab_size: int,
        *,
        normalize_unk: bool = True,
        token_offset: int = DEFAULT_TOKEN_OFFSET,
    ) -> NGramLM:
        """The LM of an ARPA file whose words are `chr(token_id + token_offset)`;
        `vocab_size` is the number of tokens (a transducer's blank id)."""
        by_order = read_arpa(path, token_offset)
        arrays, max_order = build_suffix_tree(by_order, vocab_size, normalize_unk=normalize_unk)
        return cls(arrays, vocab_size=vocab_size, max_order=max_order, bos_state=BOS_STATE)

    @classmethod
    def from_file(cls, path: str | Path, vocab_size: int, **options: bool | int) -> NGramLM:
        """As NeMo's `from_file`, for ARPA files (`from_arpa`'s options); NeMo's own `.nemo`
        LM checkpoints are torch pickles, not read here."""
        if Path(path).suffix == ".nemo":
            raise ValueError(f"{path}: .nemo n-gram LMs are not supported; give the ARPA file")
        return cls.from_arpa(path, vocab_size, **options)  # type: ignore[arg-type]


def build_suffix_tree(
    by_order: dict[int, list[NGram]], vocab_size: int, *, normalize_unk: bool = True
) -> tuple[AcceptorArrays, int]:
    """NeMo's suffix tree of an ARPA model's n-grams (module docstring); its max order."""
    max_order = max(by_order)
    if max_order < 2 or sorted(by_order) != list(range(1, max_order + 1)):
        raise ValueError("the LM needs n-grams of every order from 1 to at least 2")
    middle = sum(len(by_order[order]) for order in range(2, max_order))
    total = sum(len(ngrams) for ngrams in by_order.values())
    tree = AcceptorBuilder(2 + vocab_size + middle, total + 2 * vocab_size + 1, final=NEG_INF)
    _add_unigrams(tree, by_order[1], vocab_size, normalize_unk)
    histories: dict[tuple[int, ...], int] = {}
    for order in range(2, max_order):
        histories = _add_middle_order(tree, by_order[order], histories, vocab_size)
    _add_highest_order(tree, by_order[max_order], histories, vocab_size)
    return tree.arrays(), max_order


def _check_label(label: int, vocab_size: int, ngram: NGram) -> None:
    if not 0 <= label < vocab_size:
        raise ValueError(f"n-gram {ngram.symbols}: token {label} is not in [0, {vocab_size})")


def _add_unigrams(
    tree: AcceptorBuilder, unigrams: list[NGram], vocab_size: int, normalize: bool
) -> None:
    unk_weight = np.float64(-np.inf)
    bos = None
    tree.add_state(order=1, backoff_to=START_STATE, backoff_weight=0.0)  # start
    tree.add_state(order=2, backoff_to=START_STATE, backoff_weight=0.0)  # <s>
    tree.arcs_start[START_STATE], tree.arcs_end[START_STATE] = 0, vocab_size
    labelled = np.zeros(vocab_size, dtype=bool)
    for ngram in sorted(unigrams, key=lambda g: g.symbols):
        (label,) = ngram.symbols
        if label == UNK_ID:
            unk_weight = np.float64(np.float32(ngram.weight))  # as stored, then normalised
        elif label == BOS_ID:
            bos = ngram
        elif label == EOS_ID:
            tree.final[START_STATE] = ngram.weight
        else:
            _check_label(label, vocab_size, ngram)
            state = tree.add_state(order=2, backoff_to=START_STATE, backoff_weight=ngram.backoff)
            tree.set_arc(label, START_STATE, state, label, ngram.weight)
            labelled[label] = True
    if bos is None:
        raise ValueError("the LM has no <s> unigram")
    tree.backoff_weights[BOS_STATE] = bos.backoff
    unknown = np.flatnonzero(~labelled)
    if normalize and unknown.size > 1:
        unk_weight = unk_weight - np.log(unknown.size)
    for label in unknown:
        tree.set_arc(label, START_STATE, START_STATE, label, unk_weight)
    tree.num_arcs = vocab_size


def _state_of(
    tree: AcceptorBuilder, history: tuple[int, ...], histories: dict, ngram: NGram, vocab_size: int
) -> int:
    """The state reached by a history: the previous order's state, `<s>`'s, or a token's."""
    if len(history) > 1:
        if history not in histories:
            raise ValueError(f"n-gram {ngram.symbols}: its history {history} is not in the LM")
        return histories[history]
    (label,) = history
    if label == BOS_ID:
        return BOS_STATE
    _check_label(label, vocab_size, ngram)
    if tree.arc_to[label] == START_STATE:  # the token has no unigram
        raise ValueError(f"n-gram {ngram.symbols}: its history {history} is not in the LM")
    return int(tree.arc_to[label])


def _history_and_suffix(
    tree: AcceptorBuilder, ngram: NGram, histories: dict, vocab_size: int
) -> tuple[int, int] | None:
    """The states of an n-gram's history and of its suffix; None for a `</s>` n-gram,
    which is the history's final weight (set here)."""
    source = _state_of(tree, ngram.symbols[:-1], histories, ngram, vocab_size)
    if ngram.symbols[-1] == EOS_ID:
        tree.final[source] = ngram.weight
        return None
    _check_label(ngram.symbols[-1], vocab_size, ngram)
    return source, _state_of(tree, ngram.symbols[1:], histories, ngram, vocab_size)


def _add_middle_order(
    tree: AcceptorBuilder, ngrams: list[NGram], histories: dict, vocab_size: int
) -> dict[tuple[int, ...], int]:
    """An order below the highest: one state and one arc per n-gram, in word order."""
    states: dict[tuple[int, ...], int] = {}
    for ngram in sorted(ngrams, key=lambda g: g.symbols):
        ends = _history_and_suffix(tree, ngram, histories, vocab_size)
        if ends is None:
            continue
        source, backoff = ends
        state = tree.add_state(int(tree.order[source]) + 1, backoff, ngram.backoff)
        tree.extend_range(source, tree.add_arc(source, state, ngram.symbols[-1], ngram.weight))
        states[ngram.symbols] = state
    return states


def _add_highest_order(
    tree: AcceptorBuilder, ngrams: list[NGram], histories: dict, vocab_size: int
) -> None:
    """The highest order: arcs from the history's state to the suffix's, then sorted by
    (source, label)."""
    first = tree.num_arcs
    for ngram in ngrams:
        ends = _history_and_suffix(tree, ngram, histories, vocab_size)
        if ends is not None:
            tree.add_arc(*ends, ngram.symbols[-1], ngram.weight)
    last = tree.num_arcs
    order = first + np.lexsort((tree.arc_labels[first:last], tree.arc_from[first:last]))
    for name in ("arc_from", "arc_to", "arc_labels", "arc_weights"):
        column = getattr(tree, name)
        column[first:last] = column[order]
    for arc in range(first, last):
        tree.extend_range(int(tree.arc_from[arc]), arc)
