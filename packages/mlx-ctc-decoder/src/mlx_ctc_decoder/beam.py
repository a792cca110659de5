"""CTC beam search, as NeMo's `beam_batch` strategy (`BatchedBeamCTCComputer`) computes it.

Per frame, every kept path is extended by every class: its score plus the frame's
log-probability, plus `beam_beta` for a new non-blank label (a word-insertion bonus). The
`beam_size` best extensions survive, minus those more than `beam_threshold` below the best.
Paths whose collapsed transcripts are equal (same labels, same last frame label) are
recombined, keeping the best score (NeMo's CTC recombination takes the max, not the sum).
An optional `scorer(prefix, label) -> float` adds an external score (e.g. an n-gram LM or a
word list, weighted by the caller) whenever a path emits a new label.

The n-best list is sorted by score, as NeMo's batched CTC beam returns it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

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
) -> list[CTCBeamHypothesis]:
    """N-best hypotheses for one utterance's (T, V) log-probabilities, best first."""
    log_probs = np.asarray(log_probs, dtype=np.float32)
    frames, classes = log_probs.shape
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
        last = next_labels
        scores = _recombine(next_scores, transcripts, last)
    keep = [b for b in np.argsort(-scores, kind="stable") if np.isfinite(scores[b])]
    return [
        CTCBeamHypothesis(list(transcripts[b]), float(scores[b]), list(starts[b])) for b in keep
    ]


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
