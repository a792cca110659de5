"""The greedy step's decisions (greedy.py): NeMo's rule at each frame of the window, and
where the chain of blank jumps from the window's first frame stops (pointer doubling)."""

from __future__ import annotations

import math

import mlx.core as mx


def decision_rule(blank_id: int, durations: tuple[int, ...]):
    """NeMo's decision at each frame, from logits (B, window, outputs): the label (argmax
    over tokens and blank), whether it is blank, and the duration (TDT: argmax over the
    duration logits, a blank's 0 made 1; RNNT: 1 for blank, 0 for a token)."""
    tdt = bool(durations)
    duration_table = mx.array(durations or (0,), dtype=mx.int32)
    mx.eval(duration_table)
    # (0, 1, 2, ...) as every TDT checkpoint has: the duration is the index plus the first
    consecutive = (
        durations == tuple(range(durations[0], durations[0] + len(durations))) if tdt else False
    )

    def decide(logits: mx.array) -> tuple[mx.array, mx.array, mx.array]:
        label = mx.argmax(logits[..., : blank_id + 1], axis=-1).astype(mx.int32)
        blank = label == blank_id
        if tdt:
            index = mx.argmax(logits[..., blank_id + 1 :], axis=-1).astype(mx.int32)
            duration = index + durations[0] if consecutive else duration_table[index]
            duration = mx.where(blank & (duration == 0), 1, duration)
        else:
            duration = blank.astype(mx.int32)
        return label, blank, duration

    return decide


def blank_chain(offsets: mx.array, longest: int):
    """Where the chain of blank jumps from the window's first frame stops, as an offset
    into the window (window or more: it jumped past the window's last frame), and the
    label and duration decided there. A blank jumps by its duration; a token, or a frame
    past the utterance's end (`inside` False), stays. `offsets` are the window's positions
    (0, 1, ...), `longest` the longest jump."""
    window = offsets.size
    size = window + longest  # positions a chain can reach
    beyond = mx.arange(window, size, dtype=mx.int32)  # past the window: they stay
    mx.eval(beyond)
    doublings = math.ceil(math.log2(window)) if window > 1 else 0

    def follow(label: mx.array, blank: mx.array, duration: mx.array, inside: mx.array):
        if window == 1:
            stop = mx.where(blank[:, 0], duration[:, 0], 0)
            return stop, label[:, 0], duration[:, 0]
        # Pointer doubling: nxt[i] is where position i's jump lands; after k rounds of
        # nxt[i] = nxt[nxt[i]], it is where 2**k jumps from i land.
        jump = mx.where(blank & inside, offsets + duration, offsets)
        nxt = mx.concatenate(
            [jump, mx.broadcast_to(beyond, (label.shape[0], size - window))], axis=1
        )
        for _ in range(doublings):
            nxt = mx.take_along_axis(nxt, nxt, axis=1)
        stop = nxt[:, 0]
        # label and duration at the stop, in one gather (durations are under 2**16)
        packed = label * 65536 + duration
        packed = mx.take_along_axis(packed, mx.minimum(stop, window - 1)[:, None], axis=1)[:, 0]
        return stop, packed // 65536, packed % 65536

    return follow
