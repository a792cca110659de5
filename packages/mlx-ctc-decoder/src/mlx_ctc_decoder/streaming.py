"""Greedy CTC decoding of log-probabilities that arrive chunk by chunk.

Equal to `greedy_decode` over the concatenated frames: the per-frame argmax is kept, and a
run of one label that crosses a chunk boundary stays one token (its end frame grows). With
`fusion`, NeMo's fused greedy choice (`fused.py`), the models' states and the last label
carried from chunk to chunk.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
import numpy as np

from mlx_asr_fusion import FusionModel

from .fused import FusedState, fused_labels
from .greedy import CTCToken


class GreedyCTCStream:
    """`feed(log_probs)` takes (T, C) frames and returns the tokens that start in them."""

    def __init__(self, blank_id: int, fusion: Sequence[FusionModel] = ()) -> None:
        self.blank_id = blank_id
        self.fusion = tuple(fusion)
        self.alignment: list[int] = []
        self.tokens: list[CTCToken] = []
        self._scores: list[float] = []  # log-probs of the current run of the last token
        self._fused: FusedState | None = None  # the fusion models' states, the last label

    def copy(self) -> GreedyCTCStream:
        """A stream in this one's state that decodes on independently: for a tentative
        look at what frames would add, without committing them."""
        other = GreedyCTCStream(self.blank_id, self.fusion)
        other.alignment, other.tokens = list(self.alignment), list(self.tokens)
        other._scores = list(self._scores)
        other._fused = self._fused  # immutable arrays: feeding replaces, never mutates
        return other

    def feed(self, log_probs: mx.array) -> list[CTCToken]:
        if log_probs.shape[0] == 0:
            return []
        if self.fusion:
            chosen, values, self._fused = fused_labels(
                log_probs[None], self.fusion, self.blank_id, self._fused
            )
            labels, scores = chosen[0].tolist(), values[0].tolist()
        else:
            best = mx.argmax(log_probs, axis=-1)
            score = mx.take_along_axis(log_probs, best[:, None], axis=-1)[:, 0]
            labels = np.array(best).tolist()
            scores = np.array(score.astype(mx.float32)).tolist()
        new: list[CTCToken] = []
        for label, value in zip(labels, scores, strict=True):
            frame = len(self.alignment)
            previous = self.alignment[-1] if self.alignment else None
            self.alignment.append(label)
            if label == self.blank_id:
                continue
            if label == previous and self.tokens:
                last = self.tokens[-1]
                self._scores.append(value)
                mean = float(np.mean(self._scores))
                self.tokens[-1] = CTCToken(last.id, last.start_frame, frame, mean)
                if new and new[-1].start_frame == last.start_frame:
                    new[-1] = self.tokens[-1]
                continue
            self._scores = [value]
            token = CTCToken(label, frame, frame, value)
            self.tokens.append(token)
            new.append(token)
        return new
