"""Greedy and beam search as NeMo's `GreedySequenceGenerator` and `BeamSearchSequenceGenerator`.

Both stop a row at EOS and bound its length as NeMo does: a sequence (prompt included)
is at most min(max_sequence_length, encoder frames + `max_delta`) long. NeMo takes the
encoder frames of the padded batch; here each row uses its own, so a batched row gives
what NeMo gives for that item alone.

`max_delta` is NeMo's `max_generation_delta` (its generators' `max_delta_length`). Its
default here, -1 (no limit but `max_sequence_length`), is the default of NeMo's decoding
config (`AEDGreedyInferConfig`, `AEDBeamInferConfig`, and `MultiTaskDecoding` reading
`<strategy>.max_generation_delta`), as the Canary app reads it; NeMo's generator classes'
own constructor default (50) is never reached from a model's config.

Shallow fusion (`beam_search(..., fusion=[...])`: an n-gram LM and/or a phrase-boosting
tree of mlx-asr-fusion, with their alphas) is NeMo's `BeamSearchSequenceGeneratorWithFusionModels`
(`beam.ngram_lm_model` / `beam.boosting_tree` of `MultiTaskDecoding`): at every step each
model's alpha-weighted scores from each beam's state are added to the log-probabilities
before the top-k, EOS's column scoring the end of the sentence (`advance(..., eos_id)`), and
the states follow the chosen tokens. NeMo's greedy AED decoding takes no fusion models (it
refuses an LM: "use beam strategy with beam=1"); `greedy_search` refuses them likewise.

`length_penalty` is NeMo's GNMT alpha (`beam.length_penalty`, default 0.0: no penalty):
beams are ranked by score / ((5 + length) / 6) ** alpha, NeMo's
`BeamSearchSequenceGenerator.compute_len_penalty`
(nemo/collections/asr/modules/transformer/transformer_generators.py). It is not the
transducer beam's `length_penalty` (mlx-transducer: score / length ** p, NeMo's RNNT/TDT
`score_norm`, default 1.0); the two models' NeMo searches use those different formulas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mlx.core as mx
import numpy as np

from mlx_asr_fusion import FusionModel

from .decoder import TransformerDecoder

_NEG_INF = -10000.0  # NeMo's NEG_INF, used multiplicatively in its beam bookkeeping


@dataclass(frozen=True)
class GreedyResult:
    """Generated ids after the prompt (EOS not included), with each one's log-probability."""

    tokens: list[int]
    log_probs: list[float]
    finished: bool  # False: the length limit stopped it before EOS


@dataclass(frozen=True)
class BeamResult:
    """The best hypothesis, and every beam as (ids, score) with NeMo's scores.

    `score` is the sum of log-probabilities; the beams are ranked by it divided by the
    length penalty ((5 + length) / 6) ** alpha, length counting the prompt.
    """

    tokens: list[int]
    score: float
    beams: list[tuple[list[int], float]]


def generation_limits(
    decoder: TransformerDecoder,
    memory_lengths: mx.array,
    prompts: Sequence[Sequence[int]],
    max_delta: int,
) -> list[int]:
    """How many tokens each row may generate after its prompt (NeMo's max_generation_length)."""
    limits = []
    for encoder_frames, prompt in zip(np.array(memory_lengths).tolist(), prompts, strict=True):
        longest = decoder.config.max_sequence_length
        if max_delta >= 0:
            longest = min(longest, int(encoder_frames) + max_delta)
        limits.append(max(0, longest - len(prompt)))
    return limits


def greedy_search(
    decoder: TransformerDecoder,
    memory: mx.array,
    memory_lengths: mx.array,
    prompts: Sequence[Sequence[int]],
    *,
    eos_id: int,
    max_delta: int = -1,
    fusion: Sequence[FusionModel] = (),
) -> list[GreedyResult]:
    """Most likely token at each step (argmax of the logits), until EOS or the limit.
    NeMo's greedy AED search has no fusion: `fusion` is refused, as NeMo refuses it."""
    if fusion:
        raise ValueError("greedy decoding takes no fusion models (as in NeMo): use beam search")
    limits = np.array(generation_limits(decoder, memory_lengths, prompts, max_delta))
    batch = len(prompts)
    tokens: list[list[int]] = [[] for _ in range(batch)]
    scores: list[list[float]] = [[] for _ in range(batch)]
    done = limits <= 0
    finished = np.zeros(batch, dtype=bool)
    if done.all():
        return [GreedyResult([], [], False) for _ in range(batch)]
    logits, cache = decoder.start(memory, memory_lengths, prompts)
    pending = _pick(logits)
    longest = int(limits.max())
    for step in range(1, longest + 1):
        # Queue the next step before reading this one's ids, so that the device computes
        # while the host books (one step may run past the last EOS; its result is unused).
        current = pending
        if step < longest:
            pending = _pick(decoder.step(current[0], cache))
        ids, log_probs = np.array(current[0]), np.array(current[1])
        for row in np.flatnonzero(~done):
            if ids[row] == eos_id:
                finished[row] = done[row] = True
                continue
            tokens[row].append(int(ids[row]))
            scores[row].append(float(log_probs[row]))
        done |= step >= limits
        if done.all():
            break
    return [GreedyResult(t, s, bool(f)) for t, s, f in zip(tokens, scores, finished, strict=True)]


def _pick(logits: mx.array) -> tuple[mx.array, mx.array]:
    """The argmax token of each row and its log-probability, queued for evaluation."""
    best = mx.argmax(logits, axis=-1)
    log_prob = mx.take_along_axis(
        logits - mx.logsumexp(logits, axis=-1, keepdims=True), best[:, None], axis=-1
    )[:, 0]
    mx.async_eval(best, log_prob)
    return best, log_prob


def beam_search(
    decoder: TransformerDecoder,
    memory: mx.array,
    memory_lengths: mx.array,
    prompts: Sequence[Sequence[int]],
    *,
    eos_id: int,
    pad_id: int,
    beam_size: int = 4,
    length_penalty: float = 0.0,
    max_delta: int = -1,
    fusion: Sequence[FusionModel] = (),
) -> list[BeamResult]:
    """NeMo's beam search, step for step, including its bookkeeping.

    `length_penalty` is GNMT's alpha: beams rank by score / ((5 + length) / 6) ** alpha
    (NeMo's `compute_len_penalty`); 0.0, NeMo's default, ranks by score alone.

    A finished beam (last token EOS or PAD) keeps one continuation (PAD) at its score;
    candidates are ranked by score / penalty(parent length) and rescaled with the
    penalty of the beam slot they land in, as NeMo does.

    `fusion`: NeMo's fusion models (LM first, then the boosting tree), scored into every
    step's log-probabilities (module docstring).
    """
    batch, k = len(prompts), beam_size
    limits = np.array(generation_limits(decoder, memory_lengths, prompts, max_delta))
    logits, cache = decoder.start(memory, memory_lengths, prompts)
    log_probs = _log_softmax(logits)
    fused = _Fused(fusion, batch, log_probs.shape[-1], eos_id)
    log_probs = fused.add_scores(log_probs)
    first = _top_k(log_probs, k)  # (B, K)
    fused.follow(first)
    scores = np.take_along_axis(log_probs, first, axis=-1).reshape(-1, 1).astype(np.float32)
    width = [len(p) for p in prompts]
    prefixes = [[*list(prompts[b]), int(t)] for b in range(batch) for t in first[b]]
    rows = mx.array(np.repeat(np.arange(batch), k))
    cache.select(rows)
    prefix_len = np.array([[len(p) + 1] for p in prefixes], dtype=np.float32)
    pad_profile = np.zeros((batch * k, 1), dtype=np.int64)
    active = limits > 0
    step = 0
    while active.any():
        logits = decoder.step(mx.array([p[-1] for p in prefixes]), cache)
        log_probs = fused.add_scores(_log_softmax(logits))
        new_scores, parents, chosen, top, order = _best_continuations(
            log_probs, scores, prefix_len, pad_profile, k, pad_id, length_penalty
        )
        keep = np.repeat(active, k)  # rows of items still searching
        fused.follow(top, order, keep)
        parents = np.where(keep, parents, np.arange(batch * k))
        prefixes = [
            prefixes[parent] + [int(token)] if keep[row] else prefixes[row]
            for row, (parent, token) in enumerate(zip(parents, chosen, strict=True))
        ]
        scores = np.where(keep[:, None], new_scores, scores).astype(np.float32)
        if not np.array_equal(parents, np.arange(batch * k)):
            # Beams move within their item only: the encoder's keys and values stay put.
            cache.select(mx.array(parents), memory=False)
        ended = np.array([p[-1] in (eos_id, pad_id) for p in prefixes])
        counted = np.array(
            [sum(t not in (eos_id, pad_id) for t in p) for p in prefixes], dtype=np.float32
        )
        prefix_len = np.where(keep[:, None], 1 + counted[:, None], prefix_len)
        pad_profile = np.where(keep[:, None], ended[:, None].astype(np.int64), pad_profile)
        step += 1
        all_ended = ended.reshape(batch, k).all(axis=1)
        active &= ~all_ended & (step < limits)
    ranked = (scores / _length_penalty(prefix_len, length_penalty)).reshape(batch, k)
    results = []
    for b in range(batch):
        beams = []
        for j in range(k):
            ids = _strip(prefixes[b * k + j][width[b] :], eos_id, pad_id)
            beams.append((ids, float(scores[b * k + j, 0])))
        best = int(np.argmax(ranked[b]))
        results.append(BeamResult(beams[best][0], beams[best][1], beams))
    return results


def _log_softmax(logits: mx.array) -> np.ndarray:
    """Log-probabilities on the host, where the beam bookkeeping happens."""
    return np.array(logits - mx.logsumexp(logits, axis=-1, keepdims=True))


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """`np.argsort(-values, axis=-1, kind="stable")[:, :k]` without sorting whole rows.

    Each step ranks every beam's whole vocabulary; a stable sort of (rows, V) took ~2.3 ms
    a step at 8 rows of 5248 (Canary's), as long as the GPU's decoder step itself. Here the
    k-th largest value comes from a partition, the rows' k best are those above it and
    the lowest-indexed of those equal to it (the stable sort's order for ties), and only
    those k are sorted."""
    rows, width = values.shape
    if k >= width:
        return np.argsort(-values, axis=-1, kind="stable")[:, :k]
    kth = -np.partition(-values, k - 1, axis=-1)[:, k - 1 : k]
    above = values > kth
    tied = values == kth
    chosen = above | (tied & (np.cumsum(tied, axis=-1) <= k - above.sum(-1, keepdims=True)))
    found = np.nonzero(chosen)
    if len(found[1]) != rows * k:  # NaN among the values: the sort's own order
        return np.argsort(-values, axis=-1, kind="stable")[:, :k]
    index = found[1].reshape(rows, k)  # ascending within each row
    order = np.argsort(-np.take_along_axis(values, index, axis=-1), axis=-1, kind="stable")
    return np.take_along_axis(index, order, axis=-1)


def _length_penalty(prefix_len: np.ndarray, alpha: float) -> np.ndarray:
    """NeMo's length penalty ((5 + length) / 6) ** alpha, in float32 as NeMo computes it."""
    return (((5 + prefix_len) / 6) ** alpha).astype(np.float32)


def _best_continuations(
    log_probs: np.ndarray,
    scores: np.ndarray,
    prefix_len: np.ndarray,
    pad_profile: np.ndarray,
    k: int,
    pad_id: int,
    length_penalty: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of NeMo's bookkeeping: each item's best K of its beams' K x K continuations.

    Each beam offers its top K tokens; a finished beam (`pad_profile` 1) offers PAD once at
    its own score, its other K - 1 slots pushed down by NEG_INF. Candidates are ranked by
    score / penalty(parent length) and rescaled by the penalty of the slot they land in.
    Returns the new scores (BK, 1), each new beam's parent row (BK,) and its token (BK,),
    and for the fusion states each beam's top K tokens (BK, K) before PAD replaces those of
    finished beams, with each item's chosen K of its K x K candidates (B, K).
    """
    batch = scores.shape[0] // k
    pad_mask = np.repeat(pad_profile, k, axis=1)  # (BK, K)
    offered = _top_k(log_probs, k)
    top_scores = np.take_along_axis(log_probs, offered, axis=-1).astype(np.float32)
    top = pad_id * pad_mask + offered * (1 - pad_mask)
    pad_mask = pad_mask.astype(np.float32)
    pad_mask[:, 1:] *= _NEG_INF
    candidates = scores + top_scores * (1 - pad_mask)
    penalty = _length_penalty(prefix_len, length_penalty)
    ranked = (candidates / penalty).reshape(batch, k * k)
    order = np.argsort(-ranked, axis=-1, kind="stable")[:, :k]  # (B, K)
    new_scores = np.take_along_axis(ranked, order, axis=-1).reshape(-1, 1) * penalty
    parents = (np.arange(batch)[:, None] * k + order // k).reshape(-1)
    chosen = np.take_along_axis(top.reshape(batch, k * k), order, axis=-1).reshape(-1)
    return new_scores, parents, chosen, offered, order


class _Fused:
    """The fusion models' states per beam row, as NeMo's fused beam search keeps them."""

    def __init__(self, models: Sequence[FusionModel], batch: int, vocab: int, eos_id: int):
        for fused in models:
            if fused.model.vocab_size != vocab:
                raise ValueError(
                    f"a fusion model over {fused.model.vocab_size} tokens cannot fuse with a "
                    f"decoder of {vocab} output classes"
                )
        self.models, self.eos_id = list(models), eos_id
        self.states = [fused.model.get_init_states(batch, bos=True) for fused in models]
        self.candidates: list[np.ndarray] = []

    def add_scores(self, log_probs: np.ndarray) -> np.ndarray:
        """Log-probabilities (rows, V) plus each model's alpha-weighted scores, in order."""
        self.candidates = []
        for fused, state in zip(self.models, self.states, strict=True):
            scores, candidates = fused.model.advance(mx.array(state), eos_id=self.eos_id)
            log_probs = log_probs + np.float32(fused.alpha) * np.array(scores)
            self.candidates.append(np.array(candidates))
        return log_probs

    def follow(self, top: np.ndarray, order: np.ndarray | None = None, keep=None) -> None:
        """The states of the rows' top tokens (rows, K), then, past the first step, the
        chosen K per item of its K x K (`order`); rows not in `keep` stay."""
        for index, candidates in enumerate(self.candidates):
            moved = np.take_along_axis(candidates, top, axis=-1)
            if order is not None:
                batch = order.shape[0]
                moved = np.take_along_axis(moved.reshape(batch, -1), order, axis=-1)
            moved = moved.reshape(-1)
            self.states[index] = (
                moved if keep is None else np.where(keep, moved, self.states[index])
            )


def _strip(ids: list[int], eos_id: int, pad_id: int) -> list[int]:
    """NeMo's `format_hypotheses`: drop trailing EOS and PAD only.

    An EOS chosen at the first step does not finish its beam (NeMo starts every beam
    unfinished), so it can stay inside a hypothesis, as it does in NeMo's.
    """
    end = len(ids)
    while end and ids[end - 1] in (eos_id, pad_id):
        end -= 1
    return ids[:end]
