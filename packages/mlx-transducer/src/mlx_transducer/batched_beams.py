"""The hypotheses of a batched beam search, kept as NeMo's `BatchedBeamHyps` keeps them.

NeMo's `malsd_batch` search (`malsd.py`) keeps, per batch item, `beam` hypotheses in fixed
slots: each step every slot takes one extension (a token, a blank, or nothing for a
finished hypothesis) of some slot of the previous step, so a hypothesis is a chain of
back-pointers through the steps' columns. Identical hypotheses (same tokens by a rolling
hash, same last token and length, TDT: same next frame) are recombined: the best slot keeps
the log-sum of their scores, the others drop to -inf. Everything here is numpy on the host
(int64 hashes wrap as torch's do), in NeMo's order of operations.
"""

from __future__ import annotations

import numpy as np

from .beam import BeamHypothesis
from .hypothesis import Token

MULTIPLIER = np.int64(6364136223846793005)  # NeMo's `hash_text` constants
INCREMENT = np.int64(1)
INACTIVE_SCORE = np.float32(-np.inf)
NO_LABEL = -1  # a finished hypothesis carried on unchanged


def hash_text(previous: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """NeMo's rolling hash of a token sequence, one token added (int64, wrapping)."""
    with np.errstate(over="ignore"):
        return previous * MULTIPLIER + INCREMENT + labels.astype(np.int64)


class BatchedBeams:
    """`beam` hypothesis slots per batch item; slot 0 starts active with score 0."""

    def __init__(self, batch: int, beam: int, blank_id: int, tdt: bool) -> None:
        self.batch, self.beam, self.blank_id, self.tdt = batch, beam, blank_id, tdt
        self.scores = np.full((batch, beam), INACTIVE_SCORE, dtype=np.float32)
        self.scores[:, 0] = 0.0
        self.lengths_nb = np.zeros((batch, beam), dtype=np.int64)  # tokens so far
        self.last_label = np.full((batch, beam), NO_LABEL, dtype=np.int64)
        self.hashes = np.zeros((batch, beam), dtype=np.int64)
        self.next_frame = np.zeros((batch, beam), dtype=np.int64)
        # tokens on the current frame (NeMo's last_timestamp_lasts), for max_symbols
        self.tokens_on_frame = np.zeros((batch, beam), dtype=np.int64)
        # per step: labels, back-pointers, frames (RNNT: emission; TDT: end), durations and
        # the transducer's own log-probability of each label (a confidence, no fusion in it)
        self.columns: list[tuple[np.ndarray, ...]] = []

    def _take(self, values: np.ndarray, indices: np.ndarray) -> np.ndarray:
        return np.take_along_axis(values, indices, axis=1)

    def add(
        self,
        indices: np.ndarray,
        labels: np.ndarray,
        scores: np.ndarray,
        logprobs: np.ndarray,
        durations: np.ndarray | None = None,
    ) -> None:
        """Each slot extends slot `indices` of the last step by `labels` (NeMo's
        `add_results_`): a token, blank, or NO_LABEL for a finished hypothesis."""
        last = self._take(self.last_label, indices)
        extended = labels >= 0
        blank = labels == self.blank_id
        token = extended & ~blank
        frames = self._take(self.next_frame, indices)
        on_frame = self._take(self.tokens_on_frame, indices)
        if self.tdt:
            durations = np.where(extended, durations, 0)
            ends = frames + durations
            self.columns.append((labels, indices, ends, durations, logprobs))
            self.next_frame = np.where(extended, ends, frames)
            self.tokens_on_frame = np.where(extended & (durations > 0), 0, on_frame + token)
        else:
            moved = frames + blank
            self.columns.append((labels, indices, moved, np.zeros_like(labels), logprobs))
            self.next_frame = moved
            self.tokens_on_frame = np.where(blank, 0, on_frame + token)
        self.lengths_nb = self._take(self.lengths_nb, indices) + token
        self.scores = scores.astype(np.float32)
        hashes = self._take(self.hashes, indices)
        self.hashes = np.where(token, hash_text(hashes, labels), hashes)
        self.last_label = np.where(token, labels, last)

    def recombine(self) -> None:
        """Identical hypotheses merged (NeMo's `recombine_hyps_`): the first best slot of
        each group keeps the group's log-sum-exp, the others become inactive."""
        if self.beam <= 1:
            return
        equal = (
            (self.hashes[:, :, None] == self.hashes[:, None, :])
            & (self.last_label[:, :, None] == self.last_label[:, None, :])
            & (self.lengths_nb[:, :, None] == self.lengths_nb[:, None, :])
        )
        if self.tdt:
            equal &= self.next_frame[:, :, None] == self.next_frame[:, None, :]
        matrix = np.where(equal, self.scores[:, None, :], INACTIVE_SCORE)
        keep = np.arange(self.beam)[None, :] == matrix.argmax(-1)
        self.scores = np.where(keep, logsumexp(matrix), INACTIVE_SCORE).astype(np.float32)

    def nbest(self, length_penalty: float = 1.0) -> list[list[BeamHypothesis]]:
        """Per item, its active hypotheses, ranked by score / (tokens + 1) ** length_penalty
        (NeMo's `score_norm`: 1.0 with it, 0.0 without), best first."""
        columns = self.columns
        slots = np.broadcast_to(np.arange(self.beam), (self.batch, self.beam)).copy()
        labels = np.zeros((self.batch, self.beam, len(columns)), dtype=np.int64)
        frames = np.zeros_like(labels)
        durations = np.zeros_like(labels)
        logprobs = np.zeros(labels.shape, dtype=np.float32)
        for step in range(len(columns) - 1, -1, -1):
            label, pointer, frame, duration, logprob = columns[step]
            labels[..., step] = self._take(label, slots)
            frames[..., step] = self._take(frame, slots)
            durations[..., step] = self._take(duration, slots)
            logprobs[..., step] = self._take(logprob, slots)
            slots = self._take(pointer, slots)
        lengths = (self.lengths_nb + 1).astype(np.float32)
        normalized = (
            self.scores / lengths**length_penalty if length_penalty else self.scores
        ).astype(np.float32)
        results = []
        for item in range(self.batch):
            order = np.argsort(-normalized[item], kind="stable")
            nbest = []
            for slot in order:
                if self.scores[item, slot] <= INACTIVE_SCORE:
                    continue
                row = labels[item, slot]
                mask = (row >= 0) & (row != self.blank_id)
                ends, spans = frames[item, slot][mask], durations[item, slot][mask]
                starts = ends - spans if self.tdt else ends
                tokens = [
                    Token(id=int(i), frame=int(f), duration=int(d) if self.tdt else None,
                          logprob=float(p))
                    for i, f, d, p in zip(row[mask], starts, spans, logprobs[item, slot][mask],
                                          strict=True)
                ]  # fmt: skip
                nbest.append(
                    BeamHypothesis(
                        tokens, float(self.scores[item, slot]), float(normalized[item, slot])
                    )
                )
            results.append(nbest)
        return results


def logsumexp(matrix: np.ndarray) -> np.ndarray:
    """Log-sum-exp over the last axis in float32, as torch's: an all -inf row gives -inf."""
    top = matrix.max(-1)
    shift = np.where(np.isfinite(top), top, 0).astype(np.float32)
    with np.errstate(divide="ignore"):
        total = np.log(np.exp(matrix - shift[..., None]).sum(-1, dtype=np.float32))
    return (total + shift).astype(np.float32)
