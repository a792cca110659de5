"""CTC beam search, as NeMo's `beam_batch` strategy (`BatchedBeamCTCComputer`) computes it.

Per frame, every kept path is extended by every class: its score plus the frame's
log-probability, plus `beam_beta` for a new non-blank label (a word-insertion bonus). The
`beam_size` best extensions survive, minus those more than `beam_threshold` below the best.
Paths whose collapsed transcripts are equal (same labels, same last frame label) are
recombined, keeping the best score (NeMo's CTC recombination takes the max, not the sum).
An optional `scorer(prefix, label) -> float` adds an external score (e.g. an n-gram LM or a
word list, weighted by the caller) whenever a path emits a new label.

`fusion` (mlx-asr-fusion's models with their alphas, LM first: NeMo's `beam.ngram_lm_model`
/ `beam.boosting_tree`) is NeMo's fused CTC beam: each model's alpha-weighted scores are
added to every non-blank label that does not repeat the path's last label, each path's
model states follow its new labels, and at the end an LM's final weights (not a boosting
tree's, as NeMo) are added before the n-best is sorted.

The n-best list is sorted by score, as NeMo's batched CTC beam returns it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mlx.core as mx
import numpy as np

from mlx_asr_fusion import BoostingTree, FusionModel
from mlx_asr_fusion.fusion import dense_answers

Scorer = Callable[[tuple[int, ...], int], float]
_INACTIVE = -np.inf


@dataclass(frozen=True)
class CTCBeamHypothesis:
    ids: list[int]
    score: float
    frames: list[int]  # the frame at which each token's run starts


def beam_search(
    log_probs: np.ndarray,
    *,
    blank_id: int,
    beam_size: int = 4,
    beam_beta: float = 0.0,
    beam_threshold: float = 20.0,
    scorer: Scorer | None = None,
    fusion: Sequence[FusionModel] = (),
) -> list[CTCBeamHypothesis]:
    """N-best hypotheses for one utterance's (T, V) log-probabilities, best first."""
    log_probs = np.asarray(log_probs, dtype=np.float32)
    frames, classes = log_probs.shape
    fused = [_Fused(f, beam_size, classes, blank_id) for f in fusion]
    labels_range = np.arange(classes)
    scores = np.full(beam_size, _INACTIVE, dtype=np.float32)
    scores[0] = 0.0
    last = np.full(beam_size, -1)
    transcripts: list[tuple[int, ...]] = [()] * beam_size
    starts: list[tuple[int, ...]] = [()] * beam_size
    for t in range(frames):
        candidates = scores[:, None] + log_probs[t][None, :]
        new_label = (last[:, None] != labels_range[None, :]) & (labels_range[None, :] != blank_id)
        candidates = np.where(new_label, candidates + np.float32(beam_beta), candidates).astype(
            np.float32
        )
        if scorer is not None:
            for beam in np.flatnonzero(np.isfinite(scores)):
                for label in np.flatnonzero(new_label[beam]):
                    candidates[beam, label] += np.float32(scorer(transcripts[beam], int(label)))
        for model in fused:  # NeMo: model after model, nothing for a repeat or the blank
            candidates[:, :-1] += model.weighted(last)
        flat = candidates.reshape(-1)
        order = np.argsort(-flat, kind="stable")[:beam_size]
        next_scores = flat[order].copy()
        next_scores[next_scores <= next_scores.max() - np.float32(beam_threshold)] = _INACTIVE
        parents, next_labels = order // classes, order % classes
        extended = (next_labels != blank_id) & (next_labels != last[parents])
        transcripts = [transcripts[p] + (int(label),) if e else transcripts[p]
                       for p, label, e in zip(parents, next_labels, extended, strict=True)]  # fmt: skip
        starts = [
            starts[p] + (t,) if e else starts[p] for p, e in zip(parents, extended, strict=True)
        ]
        for model in fused:
            model.follow(parents, next_labels, last)
        last = next_labels
        scores = _recombine(next_scores, transcripts, last)
    for model in fused:
        scores = model.finish(scores)
    keep = [b for b in np.argsort(-scores, kind="stable") if np.isfinite(scores[b])]
    return [
        CTCBeamHypothesis(list(transcripts[b]), float(scores[b]), list(starts[b])) for b in keep
    ]


class _Fused:
    """One fusion model in the search: each path's state, its weighted scores (float32, as
    NeMo's alpha times its scores) and its states' moves, read from the model's answers for
    every state (`dense_answers`) or asked per frame."""

    def __init__(self, fused: FusionModel, beam_size: int, classes: int, blank_id: int) -> None:
        if blank_id != classes - 1:
            raise ValueError("fusion needs the blank as the last class (as NeMo's CTC models)")
        if fused.model.vocab_size != classes - 1:
            raise ValueError(f"a fusion model over {fused.model.vocab_size} tokens cannot fuse "
                             f"with {classes - 1} CTC labels")  # fmt: skip
        if not isinstance(fused.alpha, (int, float)):
            raise ValueError("CTC beam search takes one alpha per model, not one per item")
        self.model, self.alpha = fused.model, np.float32(fused.alpha)
        dense = dense_answers(fused.model)
        self.dense = {k: np.array(v) for k, v in dense.items()}
        self.states = np.array(fused.model.get_init_states(beam_size, bos=True))
        self.next: np.ndarray | None = None

    def weighted(self, last: np.ndarray) -> np.ndarray:
        """(beam, V) weighted scores of each path's state, 0 where a label repeats."""
        if self.dense:
            scores, self.next = (
                self.dense["dense_scores"][self.states],
                self.dense["dense_next"][self.states],
            )
        else:
            answer = self.model.advance(mx.array(self.states))
            scores, self.next = np.array(answer[0]), np.array(answer[1])
        repeated = last[:, None] == np.arange(scores.shape[1])[None, :]
        return self.alpha * np.where(repeated, np.float32(0), scores)

    def follow(self, parents: np.ndarray, labels: np.ndarray, last: np.ndarray) -> None:
        """The new paths' states: the parent's, moved on by a new non-blank label."""
        previous = self.states[parents]
        vocab_size = self.model.vocab_size  # the blank's label (a dense `next` has one more)
        keep = (labels == vocab_size) | (labels == last[parents])
        moved = self.next[parents, np.minimum(labels, vocab_size - 1)]
        self.states = np.where(keep, previous, moved)

    def finish(self, scores: np.ndarray) -> np.ndarray:
        """An LM's final weights added at the end (a boosting tree's not, as NeMo)."""
        if isinstance(self.model, BoostingTree):
            return scores
        final = np.array(self.model.get_final(mx.array(self.states)))
        return (scores + final * self.alpha).astype(np.float32)


def _recombine(
    scores: np.ndarray, transcripts: Sequence[tuple[int, ...]], last: np.ndarray
) -> np.ndarray:
    """Paths with the same transcript and last label: the best survives, the others go."""
    out = np.full_like(scores, _INACTIVE)
    groups: dict[tuple, list[int]] = {}
    for beam, (transcript, label) in enumerate(zip(transcripts, last.tolist(), strict=True)):
        groups.setdefault((transcript, label), []).append(beam)
    for members in groups.values():
        best = max(members, key=lambda b: (scores[b], -b))  # the first of equal maxima, as argmax
        out[best] = scores[best]
    return out
