"""Greedy RNNT / TDT decoding of encoder frames that arrive chunk by chunk.

The decisions are those of `greedy_decode` over all frames at once: the same decoder and
compiled step, with the prediction-network state, the last emitted label's projection, the
tokens-on-this-frame counter and (TDT) a duration that jumps past the chunk's end all
carried to the next chunk. NeMo's streaming (`partial_hypotheses`) carries the same state.
Frames in the tokens are global: counted from the start of the stream.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import mlx.core as mx

from mlx_asr_fusion import FusionModel

from .hypothesis import Token
from .model import Transducer
from .records import collect_hypotheses


class GreedyStream:
    """`feed(frames)` decodes a chunk (T, D) of encoder output and returns its new tokens;
    with `fusion`, the fusion models' states are carried from chunk to chunk too."""

    def __init__(self, transducer: Transducer, fusion: Sequence[FusionModel] = ()) -> None:
        self._joint = transducer.joint
        self._decoder = transducer.greedy_decoder()
        self._fusion = tuple(fusion)
        dtype = transducer.joint.enc.weight.dtype
        self._state = self._decoder.initial_state(1, dtype, self._fusion)
        self.frames_seen = 0
        self.tokens: list[Token] = []

    def copy(self) -> GreedyStream:
        """A stream in this one's state that decodes on independently: for a tentative
        look at what frames would add, without committing them. (`feed` replaces the state
        it carries rather than changing it, so the arrays can be shared.)"""
        other = copy.copy(self)
        other.tokens = list(self.tokens)
        return other

    def feed(self, frames: mx.array) -> list[Token]:
        """Decode encoder frames (T, D) that follow those fed before; returns new tokens."""
        time = frames.shape[0]
        if time == 0:
            return []
        enc_proj = self._joint.project_encoder(frames[None])
        lengths = mx.array([time], dtype=mx.int32)
        state, records = self._decoder.run(enc_proj, lengths, self._state, self._fusion)
        offset = self.frames_seen
        new = []
        if len(records):
            (hyp,) = collect_hypotheses(
                records, enc_proj, self._joint, self._decoder.blank_id, self._decoder.tdt
            )
            new = [Token(t.id, t.frame + offset, t.duration, t.logprob) for t in hyp.tokens]
        # frame indices relative to the next chunk
        state = dict(state)
        state["t"] = state["t"] - time
        state["last_frame"] = state["last_frame"] - time
        self._state = state
        self.frames_seen += time
        self.tokens.extend(new)
        return new
