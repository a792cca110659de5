"""`Hypothesis`, what a decoding head gives for one utterance before it becomes text, and
the heads' decoding of a batch of encoder output into hypotheses (offline: `decode`;
the streaming heads build theirs with `from_tokens`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import mlx.core as mx
import numpy as np

from mlx_asr_fusion import FusionModel
from mlx_ctc_decoder import CTCHead
from mlx_ctc_decoder import beam_search as ctc_beam
from mlx_ctc_decoder import greedy_decode as ctc_greedy
from mlx_transducer import Transducer

if TYPE_CHECKING:
    from .spotting import WordSpotter

Head = Literal["tdt", "rnnt", "ctc"]


@dataclass(frozen=True)
class Hypothesis:
    """Decoder output for one utterance, before text: ids, frames, durations, confidences."""

    ids: list[int]
    frames: list[int]
    durations: list[int] | None
    confidences: list[float]

    def limited(self, limit: int | None) -> Hypothesis:
        """TDT durations cut so that no token's span passes frame `limit` (None: as it is)."""
        if limit is None or self.durations is None:
            return self
        durations = [
            max(0, min(d, limit - f)) for f, d in zip(self.frames, self.durations, strict=True)
        ]
        return Hypothesis(self.ids, self.frames, durations, self.confidences)

    def shifted(self, offset: int) -> Hypothesis:
        """The same tokens `frames` encoder frames later (a chunk's tokens in its input)."""
        return Hypothesis(self.ids, [f + offset for f in self.frames], self.durations,
                          self.confidences)  # fmt: skip


def from_tokens(tokens: Sequence, kind: Head) -> Hypothesis:
    """A greedy or beam decoder's tokens as a hypothesis: CTC tokens start at `start_frame`,
    transducer tokens at `frame` (TDT ones with a `duration`); confidence exp(logprob)."""
    if kind == "ctc":
        frames = [t.start_frame for t in tokens]
    else:
        frames = [t.frame for t in tokens]
    return Hypothesis(
        ids=[t.id for t in tokens],
        frames=frames,
        durations=[t.duration for t in tokens] if kind == "tdt" else None,
        confidences=[math.exp(t.logprob) for t in tokens],
    )


def decode(
    kind: Head,
    head: CTCHead | Transducer,
    encoded: mx.array,
    encoded_len: mx.array,
    decoding: str,
    beam_size: int,
    length_penalty: float = 1.0,
    fusion: Sequence[FusionModel] = (),
    spotter: WordSpotter | None = None,
) -> list[Hypothesis]:
    """Hypotheses of a batch of encoder output with `head` (the CTC head for kind "ctc",
    else the transducer); frames are relative to each row's start. `fusion`: NeMo's shallow
    fusion of an n-gram LM and a boosting tree (greedy; beam: NeMo's `malsd_batch` for a
    transducer, `beam_batch` for CTC); `spotter` (greedy only): NeMo's CTC word spotter's
    words merged into the greedy result."""
    if kind == "ctc":
        log_probs = head(encoded)
        blank_id = head.config.blank_id
        if decoding == "beam":
            probs, sizes = np.array(log_probs), np.array(encoded_len).tolist()
            best = [ctc_beam(probs[b, : sizes[b]], blank_id=blank_id, beam_size=beam_size,
                             fusion=fusion)[0] for b in range(len(sizes))]  # fmt: skip
            return [Hypothesis(h.ids, h.frames, None, [None] * len(h.ids)) for h in best]
        found = ctc_greedy(log_probs, encoded_len, blank_id=blank_id, fusion=fusion)
        hypotheses = [from_tokens(h.tokens, kind) for h in found]
        if spotter is None:
            return hypotheses
        ends = [[t.end_frame for t in h.tokens] for h in found]  # where NeMo's merge puts them
        return spotter(log_probs, encoded, encoded_len, hypotheses, ends, transducer=False)
    if decoding == "beam":
        # NeMo's transducer beam with fusion models is `malsd_batch`; without, `beam`
        strategy = "malsd_batch" if fusion else "default"
        nbests = head.beam(encoded, encoded_len, beam_size=beam_size, length_penalty=length_penalty,
                           strategy=strategy, fusion=fusion)  # fmt: skip
        return [from_tokens(n[0].tokens if n else [], kind) for n in nbests]
    hypotheses = [from_tokens(h.tokens, kind) for h in head.greedy(encoded, encoded_len, fusion)]
    if spotter is None:
        return hypotheses
    frames = [h.frames for h in hypotheses]
    return spotter(None, encoded, encoded_len, hypotheses, frames, transducer=True)
