"""Batched greedy RNNT / TDT decoding, token for token as NeMo's `greedy_batch` (label looping).

NeMo's label-looping decoder advances every utterance of a batch through nested loops
that synchronise with the host at each step. Every utterance's decisions depend only on
its own state, so the same decisions come out of a flat step applied to all utterances at
once: evaluate the joint at the utterance's frame; a blank advances the frame by its
duration (at least 1); a token is emitted, advances the frame by its duration (0 keeps the
frame), and moves the prediction network on; after `max_symbols` tokens on one frame a
blank is forced. The step is one compiled function over (B,) arrays, and the host checks
for completion only every `sync_every` steps.
"""

from __future__ import annotations

from functools import partial

import mlx.core as mx
import numpy as np

from .hypothesis import Hypothesis, Token
from .networks import JointNetwork, PredictionNetwork


def greedy_decode(
    prednet: PredictionNetwork,
    joint: JointNetwork,
    encoder_output: mx.array,
    lengths: mx.array | None = None,
    *,
    blank_id: int,
    durations: tuple[int, ...] = (),
    max_symbols: int | None = 10,
    sync_every: int = 8,
) -> list[Hypothesis]:
    """Greedy hypotheses for a batch of encoder outputs (B, T, D) with valid lengths (B,)."""
    batch, time, _ = encoder_output.shape
    if lengths is None:
        lengths = mx.full((batch,), time, dtype=mx.int32)
    lengths = lengths.astype(mx.int32)
    enc_proj = joint.project_encoder(encoder_output)
    dtype = enc_proj.dtype
    h, c = prednet.initial_state(batch, dtype)
    # NeMo primes the prediction network with blank (its embedding is the zero padding row).
    out, (h, c) = prednet(mx.full((batch,), blank_id, dtype=mx.int32), (h, c))
    state = {
        "t": mx.zeros((batch,), dtype=mx.int32),
        "h": h,
        "c": c,
        "g": joint.project_prednet(out),
        "last_frame": mx.full((batch,), -1, dtype=mx.int32),
        "repeats": mx.zeros((batch,), dtype=mx.int32),
    }
    step = _make_step(prednet, joint, blank_id, durations, max_symbols)
    records = []
    # Each step either emits a token or advances a frame (at most max_symbols tokens per
    # frame, then a forced blank), which bounds the number of steps.
    limit = time * ((max_symbols or time) + 1) + 1
    for count in range(1, limit + 1):
        state, record = step(enc_proj, lengths, state)
        records.append(record)
        if count % sync_every == 0:
            mx.eval(state, records[-sync_every:])
            if not bool(mx.any(state["t"] < lengths)):
                break
    return _collect(records, batch, bool(durations))


def _make_step(
    prednet: PredictionNetwork,
    joint: JointNetwork,
    blank_id: int,
    durations: tuple[int, ...],
    max_symbols: int | None,
):
    duration_table = mx.array(durations or (0,), dtype=mx.int32)
    tdt = bool(durations)

    @partial(mx.compile, inputs=[prednet.state, joint.state])
    def step(enc_proj: mx.array, lengths: mx.array, state: dict) -> tuple[dict, tuple]:
        t = state["t"]
        active = t < lengths
        frame = mx.minimum(t, mx.maximum(lengths - 1, 0))
        f = mx.take_along_axis(enc_proj, frame[:, None, None], axis=1)[:, 0]
        logits = joint(f, state["g"])
        token_logits = logits[:, : blank_id + 1]
        label = mx.argmax(token_logits, axis=-1).astype(mx.int32)
        best = mx.take_along_axis(token_logits, label[:, None], axis=-1)[:, 0]
        logprob = best - mx.logsumexp(token_logits.astype(mx.float32), axis=-1)
        blank = label == blank_id
        if tdt:
            duration = duration_table[mx.argmax(logits[:, blank_id + 1 :], axis=-1)]
            duration = mx.where(blank & (duration == 0), 1, duration)
        else:
            duration = blank.astype(mx.int32)
        emit = active & ~blank
        new_t = mx.where(active, t + duration, t)
        # Tokens emitted in a row at one frame (NeMo's last_nb_timestamp_lasts).
        repeats = mx.where(
            emit, mx.where(state["last_frame"] == t, state["repeats"] + 1, 1), state["repeats"]
        )
        last_frame = mx.where(emit, t, state["last_frame"])
        out, (h, c) = prednet(label, (state["h"], state["c"]))
        g = joint.project_prednet(out)
        keep = emit[:, None]
        new_state = {
            "h": mx.where(keep[None], h, state["h"]),
            "c": mx.where(keep[None], c, state["c"]),
            "g": mx.where(keep, g, state["g"]),
            "last_frame": last_frame,
            "repeats": repeats,
        }
        if max_symbols is not None:
            force = emit & (new_t < lengths) & (repeats >= max_symbols) & (last_frame == new_t)
            new_t = new_t + force.astype(mx.int32)
        new_state["t"] = new_t
        return new_state, (emit, label, t, duration, logprob)

    return step


def _collect(records: list[tuple], batch: int, tdt: bool) -> list[Hypothesis]:
    emit, label, frame, duration, logprob = (
        np.array(mx.stack(parts)) for parts in zip(*records, strict=True)
    )
    hypotheses = [Hypothesis() for _ in range(batch)]
    steps, items = np.nonzero(emit)
    for s, b in zip(steps.tolist(), items.tolist(), strict=True):
        hypotheses[b].tokens.append(
            Token(
                id=int(label[s, b]),
                frame=int(frame[s, b]),
                duration=int(duration[s, b]) if tdt else None,
                logprob=float(logprob[s, b]),
            )
        )
    return hypotheses
