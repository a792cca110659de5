"""CTC-based word spotting, as NeMo's `run_word_spotter` (context_biasing/
ctc_based_word_spotter.py): tokens are passed through the context graph frame by frame
(token passing, in the log semiring, with per-token bonus `context_score`), pruned by
beam, by state and by the blank and non-blank thresholds; words reached are kept if no
better overlapping word was spotted and if they beat the greedy CTC words they overlap.

Every comparison and sum is NeMo's, in its order and in float64 over the float32
log-probs, so that the same log-probs spot the same words with the same scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .spotting_graph import SpottingGraph

BEGIN_OF_WORD = "▁"


@dataclass(frozen=True)
class SpotterConfig:
    """The spotter's settings. Defaults: those of NeMo's recipe script
    (`eval_greedy_decoding_with_context_biasing.py`: beam threshold 5, context score 3,
    CTC alignment token weight 0.6) and of `run_word_spotter` for the rest."""

    beam_threshold: float = 5.0
    context_score: float = 3.0
    ctc_ali_token_weight: float = 0.6
    keyword_threshold: float = -5.0
    blank_threshold: float = 0.8  # a probability
    non_blank_threshold: float = 0.001  # a probability
    overlap_threshold: float = 10.0  # percent: overlapping spotted words, the better kept


@dataclass(frozen=True)
class SpottedWord:
    """A word of the graph spotted over frames [start_frame, end_frame] with its score."""

    word: str
    score: float
    start_frame: int
    end_frame: int


@dataclass(frozen=True)
class _Token:
    state: int
    score: float
    start_frame: int


def spot_words(
    log_probs: np.ndarray,
    graph: SpottingGraph,
    pieces: Sequence[str],
    config: SpotterConfig = SpotterConfig(),
) -> list[SpottedWord]:
    """The words of `graph` spotted in one utterance's (T, V) CTC log-probs (float32, blank
    included); `pieces[id]` is each token's piece (for the greedy words they must beat)."""
    log_probs = np.asarray(log_probs, dtype=np.float32)
    spotted: list[SpottedWord] = []
    active: list[_Token] = []
    for frame in range(log_probs.shape[0]):
        active.append(_Token(0, 0.0, frame))
        found, following = _step(log_probs[frame].tolist(), frame, active, graph, config)
        spotted += found
        active = _state_pruning(_beam_pruning(following, config.beam_threshold))
    best = _best_of_overlapping(spotted, config.overlap_threshold)
    words = ctc_words(log_probs, pieces, graph.blank_id, config.ctc_ali_token_weight)
    return _beating_greedy_words(best, words)


def _step(
    row: list[float], frame: int, active: list[_Token], graph: SpottingGraph,
    config: SpotterConfig,
) -> tuple[list[SpottedWord], list[_Token]]:  # fmt: skip
    """One frame: every arc out of every live token, with NeMo's running beam pruning."""
    blank, states = graph.blank_id, graph.states
    blank_limit = np.log(config.blank_threshold)
    non_blank_limit = np.log(config.non_blank_threshold)
    found: list[SpottedWord] = []
    following: list[_Token] = []
    best: float | None = None
    for token in active:
        at_root = token.state == 0
        if at_root and row[blank] > blank_limit:
            continue
        for label, target in states[token.state].next.items():
            if at_root and row[label] < non_blank_limit:
                continue
            if label != blank:
                score = token.score + row[label] + config.context_score
            else:
                score = token.score + row[label]
            is_best = False  # NeMo's `current_score is best_score`: set by this arc
            if not best:
                best, is_best = score, True
            elif score < best - config.beam_threshold:
                continue
            elif score > best:
                best, is_best = score, True
            state = states[target]
            if state.is_end and score > config.keyword_threshold:
                found.append(SpottedWord(state.word, score, token.start_frame, frame))
                if len(state.next) == 1:  # the end of a branch: nothing more to read
                    if is_best:
                        best = None
                    continue
            following.append(_Token(target, score, token.start_frame))
    return found, following


def _beam_pruning(tokens: list[_Token], threshold: float) -> list[_Token]:
    if not tokens:
        return []
    best = tokens[int(np.argmax([t.score for t in tokens]))].score
    return [t for t in tokens if t.score > best - threshold]


def _state_pruning(tokens: list[_Token]) -> list[_Token]:
    """The best token of each state (the first of equals), in their order."""
    best: dict[int, int] = {}
    for position, token in enumerate(tokens):
        held = best.get(token.state)
        if held is None or token.score > tokens[held].score:
            best[token.state] = position
    keep = set(best.values())
    return [t for position, t in enumerate(tokens) if position in keep]


def _overlap_percent(a: tuple[int, int], b: tuple[int, int]) -> float:
    """How much of frames b = [start, end] lie in a, in percent, as NeMo computes it."""
    common = max(0, min(a[1], b[1]) - max(a[0], b[0]) + 1)
    return 100 / (b[1] - b[0] + 1) * common


def _best_of_overlapping(spotted: list[SpottedWord], threshold: float) -> list[SpottedWord]:
    """NeMo's `find_best_hyps`: of words overlapping by `threshold` percent, the better."""
    kept: dict[tuple[int, int], SpottedWord] = {}
    for word in spotted:
        span = (word.start_frame, word.end_frame)
        insert = True
        for other in kept:
            if _overlap_percent(span, other) >= threshold:
                if word.score > kept[other].score:
                    kept.pop(other)
                    insert = True
                    break
                insert = False
        if insert:
            kept[span] = word
    return list(kept.values())


def ctc_words(
    log_probs: np.ndarray, pieces: Sequence[str], blank_id: int, token_weight: float
) -> list[tuple[str, int, int, float]]:
    """NeMo's `get_ctc_word_alignment`: the greedy CTC words (word, first frame, last frame,
    score), a token's score the sum of its frames' log-probs plus `token_weight`."""
    best = np.argmax(log_probs, axis=1).tolist()
    tokens: list[tuple[str, int, float]] = []
    previous = None
    for frame, label in enumerate(best):
        if label != blank_id:
            score = 0.0
            if label == previous:
                score += tokens.pop()[2]
            score += float(log_probs[frame, label])
            tokens.append((pieces[label], frame, score))
        previous = label
    words: list[tuple[str, int, int, float]] = []
    word, first, last, total = "", 0, 0, 0.0
    for piece, frame, score in tokens:
        if word and piece.startswith(BEGIN_OF_WORD):
            words.append((word, first, last, total))
            word, first, last, total = piece[1:], frame, frame, score + token_weight
        elif word:
            word, last, total = word + piece, frame, total + (score + token_weight)
        else:  # NeMo keeps the first word's "▁" here (its scores are what matter)
            word, first, last, total = piece, frame, frame, score + token_weight
    if word:
        words.append((word, first, last, total))
    return words


def _beating_greedy_words(
    spotted: list[SpottedWord], words: list[tuple[str, int, int, float]]
) -> list[SpottedWord]:
    """NeMo's `filter_wb_hyps`: a spotted word stays if its score is at least that of the
    greedy words it overlaps (the first whole, the others by their overlapping part)."""
    if not words:
        return spotted
    kept: list[SpottedWord] = []
    start = 0
    for hyp in spotted:
        total, overlaps = 0.0, False
        span = (hyp.start_frame, hyp.end_frame)
        for position in range(start, len(words)):
            _, first, last, score = words[position]
            part = _overlap_percent(span, (first, last))
            if part:
                total = total + part / 100 * score if overlaps else score
                overlaps = True
            elif overlaps and hyp.score >= total:
                kept.append(hyp)
                start, overlaps = position, False
                break
        if overlaps and hyp.score >= total:
            kept.append(hyp)
    return kept
