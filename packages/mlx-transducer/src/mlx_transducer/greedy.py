"""Batched greedy RNNT / TDT decoding, token for token as NeMo's `greedy_batch` (label looping).

NeMo's label-looping decoder, per utterance: evaluate the joint at the current frame with the
prediction network's last output; while the label is blank, move on by its duration (at least
one frame) and evaluate again with the same predictor output; then emit the token with its
frame and duration (0 stays on the frame) and step the prediction network; after
`max_symbols` tokens on one frame a blank is forced. NeMo runs this with host-synchronised
loops. Every decision depends only on the utterance's own state, so here one compiled step
does, for all utterances at once, what one pass of NeMo's inner blank loop plus one emission
does: the joint is evaluated on the next `window` frames at once (the predictor output does
not change until a token is emitted), the chain of blank jumps through those frames is
resolved by pointer doubling, and the first frame of the chain that is not blank emits. A
step thus covers a token and the blanks before it, not one frame.

The host does not check every step: the first round runs as many steps as the longest
utterance needs at least (its frames over the farthest one step can move), later rounds
the number the progress so far predicts; each round ends with one synchronisation.
"""

from __future__ import annotations

import math
from functools import partial

import mlx.core as mx
import numpy as np

from .hypothesis import Hypothesis, Token
from .networks import JointNetwork, PredictionNetwork

MIN_ROUND = 4  # steps queued at least between two completion checks


def default_window(joint: JointNetwork, prednet: PredictionNetwork) -> int:
    """Frames evaluated per step. On the CPU the window's extra joint rows cost arithmetic:
    keep them near the prediction network's cost per step (8 for a 1024-token vocabulary,
    1 for an 8192-token one). On a GPU 1: on an H200 (MLX CUDA, bfloat16) a window of 8 did
    not make a step cheaper in time, and in bfloat16 the joint's rounding depends on how
    many rows it multiplies, so near-tied decisions could differ from NeMo's step by step."""
    if mx.default_device() == mx.gpu:
        return 1
    out_features, joint_hidden = joint.joint_net[-1].weight.shape[:2]
    lstm = sum(layer.Wx.size + layer.Wh.size for layer in prednet.prediction["dec_rnn"].lstm)
    rows = lstm // max(1, out_features * joint_hidden)
    return int(min(8, max(1, 2 ** int(math.log2(max(1, rows))))))


class GreedyDecoder:
    """Greedy decoding for one prediction network and joint; its compiled step is built once
    and reused (compiled graphs are cached per input shape)."""

    def __init__(
        self,
        prednet: PredictionNetwork,
        joint: JointNetwork,
        *,
        blank_id: int,
        durations: tuple[int, ...] = (),
        max_symbols: int | None = 10,
        window: int | None = None,
    ) -> None:
        self.prednet, self.joint = prednet, joint
        self.blank_id = blank_id
        self.tdt = bool(durations)
        self.max_symbols = max_symbols
        self.window = window or default_window(joint, prednet)
        # The farthest one step moves: through the window, then the last blank's jump.
        self.reach = self.window - 1 + max(1, *durations) if durations else self.window
        self.step = _make_step(prednet, joint, blank_id, tuple(durations), max_symbols, self.window)

    def initial_state(self, batch: int, dtype: mx.Dtype) -> dict:
        """The state before the first frame: NeMo primes the prediction network with blank
        (its embedding is the zero padding row)."""
        h, c = self.prednet.initial_state(batch, dtype)
        layers = [(h[i], c[i]) for i in range(h.shape[0])]
        out, layers = self.prednet.step(mx.full((batch,), self.blank_id, dtype=mx.int32), layers)
        return {
            "t": mx.zeros((batch,), dtype=mx.int32),
            "layers": layers,
            "g": self.joint.project_prednet(out),
            "last_frame": mx.full((batch,), -1, dtype=mx.int32),
            "repeats": mx.zeros((batch,), dtype=mx.int32),
        }

    def __call__(
        self, encoder_output: mx.array, lengths: mx.array | None = None
    ) -> list[Hypothesis]:
        """Greedy hypotheses for encoder outputs (B, T, D) with valid lengths (B,)."""
        batch, time, _ = encoder_output.shape
        if lengths is None:
            lengths = mx.full((batch,), time, dtype=mx.int32)
        enc_proj = self.joint.project_encoder(encoder_output)
        state = self.initial_state(batch, enc_proj.dtype)
        _, records = self.run(enc_proj, lengths.astype(mx.int32), state)
        return _collect(records, enc_proj, self.joint, self.blank_id, self.tdt)

    def run(self, enc_proj: mx.array, lengths: mx.array, state: dict) -> tuple[dict, list[tuple]]:
        """Steps until every utterance's frame is past its length; the final state and one
        record per step."""
        sizes = np.array(lengths, dtype=np.int64)
        start = np.array(state["t"], dtype=np.int64)
        left = sizes - start
        # Each step emits a token or moves on, at most max_symbols tokens per frame. Without
        # max_symbols there is no bound, as in NeMo: a joint that never predicts blank on
        # some frame never finishes.
        most = int(max(0, left.max(initial=0)))
        limit = None if self.max_symbols is None else most * (self.max_symbols + 1) + 1
        records: list[tuple] = []
        count = math.ceil(most / self.reach)
        self.rounds = 0  # host synchronisations of the last run (for benchmarks)
        while count > 0 and (limit is None or len(records) < limit):
            self.rounds += 1
            if limit is not None:
                count = min(count, limit - len(records))
            for _ in range(count):
                state, record = self.step(enc_proj, lengths, state)
                records.append(record)
            mx.eval(state, records[-count:])
            left = sizes - np.array(state["t"], dtype=np.int64)
            going = left > 0
            if not going.any():
                break
            moved = np.maximum(sizes - start - left, 1)[going]  # frames per step so far
            count = max(MIN_ROUND, math.ceil(float((left[going] * len(records) / moved).max())))
        return state, records


def greedy_decode(
    prednet: PredictionNetwork,
    joint: JointNetwork,
    encoder_output: mx.array,
    lengths: mx.array | None = None,
    *,
    blank_id: int,
    durations: tuple[int, ...] = (),
    max_symbols: int | None = 10,
    window: int | None = None,
) -> list[Hypothesis]:
    """Greedy hypotheses for a batch of encoder outputs (B, T, D) with valid lengths (B,).
    (`Transducer.greedy` keeps one `GreedyDecoder`, so its compiled step is reused.)"""
    decoder = GreedyDecoder(prednet, joint, blank_id=blank_id, durations=durations,
                            max_symbols=max_symbols, window=window)  # fmt: skip
    return decoder(encoder_output, lengths)


def _make_step(
    prednet: PredictionNetwork,
    joint: JointNetwork,
    blank_id: int,
    durations: tuple[int, ...],
    max_symbols: int | None,
    window: int,
):
    tdt = bool(durations)
    duration_table = mx.array(durations or (0,), dtype=mx.int32)
    # (0, 1, 2, ...) as every TDT checkpoint has: the duration is the index plus the first
    consecutive = (
        durations == tuple(range(durations[0], durations[0] + len(durations))) if tdt else False
    )
    size = window + (max(1, *durations) if tdt else 1)  # positions a blank chain can reach
    offsets = mx.arange(window, dtype=mx.int32)
    beyond = mx.arange(window, size, dtype=mx.int32)
    mx.eval(duration_table, offsets, beyond)  # constants, not graph nodes of every step
    doublings = math.ceil(math.log2(window)) if window > 1 else 0

    @partial(mx.compile, inputs=[prednet.state, joint.state])
    def step(enc_proj: mx.array, lengths: mx.array, state: dict) -> tuple[dict, tuple]:
        t, g = state["t"], state["g"]
        active = t < lengths
        position = t[:, None] + offsets  # (B, window)
        # Frames past the end are never used; clamped by the length, not by the shape: a
        # shape in the graph would be a constant of the compiled kernel, compiled anew
        # (~0.5 s on the CPU, more on CUDA) for every input length.
        rows = mx.minimum(position, mx.maximum(lengths - 1, 0)[:, None])
        logits = joint(mx.take_along_axis(enc_proj, rows[..., None], axis=1), g[:, None])
        label = mx.argmax(logits[..., : blank_id + 1], axis=-1).astype(mx.int32)
        blank = label == blank_id
        if tdt:
            index = mx.argmax(logits[..., blank_id + 1 :], axis=-1).astype(mx.int32)
            duration = index + durations[0] if consecutive else duration_table[index]
            duration = mx.where(blank & (duration == 0), 1, duration)
        else:
            duration = blank.astype(mx.int32)
        if window == 1:
            stop = mx.where(blank[:, 0], duration[:, 0], 0)
            label, duration = label[:, 0], duration[:, 0]
        else:
            # Where the blank chain from the window's first frame stops: a blank jumps by
            # its duration; a token, a frame past the utterance's end, or a position past
            # the window stays. Pointer doubling: after k rounds, next[i] is 2**k jumps on.
            jump = mx.where(blank & (position < lengths[:, None]), offsets + duration, offsets)
            nxt = mx.concatenate(
                [jump, mx.broadcast_to(beyond, (t.shape[0], size - window))], axis=1
            )
            for _ in range(doublings):
                nxt = mx.take_along_axis(nxt, nxt, axis=1)
            stop = nxt[:, 0]
            # label and duration at the stop, in one gather (durations are under 2**16)
            packed = label * 65536 + duration
            packed = mx.take_along_axis(packed, mx.minimum(stop, window - 1)[:, None], axis=1)[:, 0]
            label, duration = packed // 65536, packed % 65536
        frame = t + stop
        emit = active & (stop < window) & (frame < lengths)
        new_t = mx.where(active, mx.where(emit, frame + duration, frame), t)
        # Tokens emitted in a row at one frame (NeMo's last_nb_timestamp_lasts).
        repeats = mx.where(
            emit, mx.where(state["last_frame"] == frame, state["repeats"] + 1, 1), state["repeats"]
        )
        last_frame = mx.where(emit, frame, state["last_frame"])
        out, layers = prednet.step(label, state["layers"])
        keep = emit[:, None]
        new_state = {
            "layers": [
                (mx.where(keep, h, h0), mx.where(keep, c, c0))
                for (h, c), (h0, c0) in zip(layers, state["layers"], strict=True)
            ],
            "g": mx.where(keep, joint.project_prednet(out), g),
            "last_frame": last_frame,
            "repeats": repeats,
        }
        if max_symbols is not None:
            force = emit & (new_t < lengths) & (repeats >= max_symbols) & (last_frame == new_t)
            new_t = new_t + force.astype(mx.int32)
        new_state["t"] = new_t
        # g is the predictor output the decision used: confidences are computed from it
        # once after the loop, for the emitted tokens only.
        return new_state, (emit, label, frame, duration, g)

    return step


def _collect(
    records: list[tuple], enc_proj: mx.array, joint: JointNetwork, blank_id: int, tdt: bool
) -> list[Hypothesis]:
    """Tokens from the step records, with their log-probabilities (one joint evaluation
    over all emitted tokens, from the frames and predictor outputs their steps used)."""
    batch, time = enc_proj.shape[:2]
    hypotheses = [Hypothesis() for _ in range(batch)]
    if not records:
        return hypotheses
    emit, label, frame, duration = (
        np.array(mx.stack(parts)) for parts in list(zip(*records, strict=True))[:4]
    )
    steps, items = np.nonzero(emit)
    if steps.size == 0:
        return hypotheses
    labels, frames = label[steps, items], frame[steps, items]
    g = mx.stack([record[4] for record in records]).reshape(-1, enc_proj.shape[-1])
    g_rows = mx.array(steps * batch + items)
    f_rows = mx.array(items * time + frames)
    f = enc_proj.reshape(-1, enc_proj.shape[-1])
    logprob = np.zeros(steps.size, dtype=np.float32)
    for lo in range(0, steps.size, _ROWS):
        hi = min(steps.size, lo + _ROWS)
        logits = joint(f[f_rows[lo:hi]], g[g_rows[lo:hi]])[:, : blank_id + 1].astype(mx.float32)
        best = mx.take_along_axis(logits, mx.array(labels[lo:hi])[:, None], axis=-1)[:, 0]
        logprob[lo:hi] = np.array(best - mx.logsumexp(logits, axis=-1))
    for k, (s, b) in enumerate(zip(steps.tolist(), items.tolist(), strict=True)):
        hypotheses[b].tokens.append(
            Token(
                id=int(labels[k]),
                frame=int(frames[k]),
                duration=int(duration[s, b]) if tdt else None,
                logprob=float(logprob[k]),
            )
        )
    return hypotheses


_ROWS = 4096  # emitted tokens per joint evaluation for their confidences
