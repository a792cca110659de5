"""Greedy RNNT / TDT decoding of encoder frames that arrive chunk by chunk.

The decisions are those of `greedy_decode` over all frames at once: the same compiled
step, with the prediction-network state, the last emitted label's projection, the
tokens-on-this-frame counter and (TDT) a duration that jumps past the chunk's end all
carried to the next chunk. NeMo's streaming (`partial_hypotheses`) carries the same state.
Frames in the tokens are global: counted from the start of the stream.
"""

from __future__ import annotations

import mlx.core as mx

from .greedy import _collect, _make_step
from .hypothesis import Token
from .model import Transducer


class GreedyStream:
    """`feed(frames)` decodes a chunk (T, D) of encoder output and returns its new tokens."""

    def __init__(self, transducer: Transducer) -> None:
        cfg = transducer.config
        self._joint = transducer.joint
        self._step = _make_step(
            transducer.decoder, transducer.joint, cfg.blank_id, cfg.durations, cfg.max_symbols
        )
        self._max_symbols = cfg.max_symbols
        dtype = transducer.joint.enc.weight.dtype
        h, c = transducer.decoder.initial_state(1, dtype)
        blank = mx.full((1,), cfg.blank_id, dtype=mx.int32)
        out, (h, c) = transducer.decoder(blank, (h, c))
        self._state = {
            "t": mx.zeros((1,), dtype=mx.int32),
            "h": h,
            "c": c,
            "g": transducer.joint.project_prednet(out),
            "last_frame": mx.full((1,), -1, dtype=mx.int32),
            "repeats": mx.zeros((1,), dtype=mx.int32),
        }
        self._tdt = bool(cfg.durations)
        self.sync_every = 4
        self.frames_seen = 0
        self.tokens: list[Token] = []

    def feed(self, frames: mx.array) -> list[Token]:
        """Decode encoder frames (T, D) that follow those fed before; returns new tokens."""
        time = frames.shape[0]
        if time == 0:
            return []
        enc_proj = self._joint.project_encoder(frames[None])
        lengths = mx.array([time], dtype=mx.int32)
        state = self._state
        records = []
        limit = time * ((self._max_symbols or time) + 1) + 1
        # every frame takes at least one step, and steps past the chunk's end are no-ops:
        # the host first checks after `time` steps, then every `sync_every`
        batch = time
        while len(records) < limit:
            for _ in range(batch):
                state, record = self._step(enc_proj, lengths, state)
                records.append(record)
            mx.eval(state, records[-batch:])
            if int(state["t"][0]) >= time:
                break
            batch = self.sync_every
        offset = self.frames_seen
        new = []
        if records:
            (hyp,) = _collect(records, 1, self._tdt)
            new = [Token(t.id, t.frame + offset, t.duration, t.logprob) for t in hyp.tokens]
        # frame indices relative to the next chunk
        state = dict(state)
        state["t"] = state["t"] - time
        state["last_frame"] = state["last_frame"] - time
        self._state = state
        self.frames_seen += time
        self.tokens.extend(new)
        return new
