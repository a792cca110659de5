"""Greedy RNNT / TDT decoding as a plain loop: one utterance, one frame, one decision at a time.

This is NeMo's `greedy_batch` (label looping, NeMo 3.0.0's
`transducer_decoding/tdt_label_looping.py` and `rnnt_label_looping.py`) written to be read,
not to be fast. `greedy.py` makes exactly the same decisions with a compiled step that
handles a whole batch and several frames at once; the tests hold it to this loop.

For each utterance, with `t` the current encoder frame:

1. The prediction network starts from blank (NeMo's start of sequence): its output `g`
   stands for "nothing emitted yet".
2. The joint combines frame `t` and `g` into logits: one per token, blank (the last token
   class), and for TDT one per allowed duration after them. The label is the argmax over
   tokens and blank; the duration (TDT) is the argmax over the duration logits, separately.
3. Blank: emit nothing and move on by the duration (RNNT: one frame). A blank of duration
   0 would stay on the frame for ever, so it moves on by one frame.
4. A token: emit it at frame `t`, feed it to the prediction network (a new `g`), and move on
   by its duration (RNNT: 0, stay on the frame; TDT: 0 stays too).
5. After `max_symbols` tokens on one frame without moving on, move on one frame (NeMo's
   guard against emitting for ever; `None` is no limit: a joint that never predicts
   blank on some frame then never finishes, here as in NeMo).
6. Stop when `t` reaches the utterance's length: a TDT duration may jump past the end.

With shallow fusion (NeMo's `fusion_models`, each with its alpha), step 3/4's choice
between blank and a token is still the joint's alone, and so is the duration; if a token
wins, it is the argmax over the tokens of the logits plus, model after model, alpha times
the model's scores from its current state; emitting it moves each model's state on.

Each token carries its frame, its duration (TDT; None for RNNT) and its log-probability
among the tokens and blank (a confidence; the duration logits are not part of it).
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx

from mlx_asr_fusion import FusionModel

from .hypothesis import Hypothesis, Token
from .networks import JointNetwork, PredictionNetwork


def greedy_reference(
    prednet: PredictionNetwork,
    joint: JointNetwork,
    encoder_output: mx.array,
    lengths: mx.array | None = None,
    *,
    blank_id: int,
    durations: tuple[int, ...] = (),
    max_symbols: int | None = 10,
    fusion: Sequence[FusionModel] = (),
) -> list[Hypothesis]:
    """Greedy hypotheses for encoder outputs (B, T, D) with valid lengths (B,), each
    utterance decoded on its own; the same results as `greedy_decode`, slowly."""
    batch, time, _ = encoder_output.shape
    sizes = [time] * batch if lengths is None else [int(n) for n in lengths.tolist()]
    return [
        decode_utterance(
            prednet,
            joint,
            encoder_output[item, :size],
            blank_id=blank_id,
            durations=durations,
            max_symbols=max_symbols,
            fusion=fusion,
        )
        for item, size in enumerate(sizes)
    ]


def decode_utterance(
    prednet: PredictionNetwork,
    joint: JointNetwork,
    frames: mx.array,
    *,
    blank_id: int,
    durations: tuple[int, ...] = (),
    max_symbols: int | None = 10,
    fusion: Sequence[FusionModel] = (),
) -> Hypothesis:
    """The greedy hypothesis of one utterance's encoder frames (T, D)."""
    tdt = bool(durations)
    f = joint.project_encoder(frames)  # each frame's joint input, computed once
    state = _initial_state(prednet, f.dtype)
    g, state = _predict(prednet, joint, blank_id, state)  # start of sequence: blank
    fusion_states = [fused.model.get_init_states(1) for fused in fusion]
    hypothesis = Hypothesis()
    t = 0  # the current frame
    tokens_here = 0  # tokens emitted at frame t so far
    while t < f.shape[0]:
        logits = joint(f[t], g).astype(mx.float32)
        scores = logits[: blank_id + 1]  # tokens and blank
        label = mx.argmax(scores).item()
        if tdt:
            duration = durations[mx.argmax(logits[blank_id + 1 :]).item()]
        else:
            duration = 1 if label == blank_id else 0
        if label == blank_id:
            t += max(duration, 1)
            tokens_here = 0
            continue
        if fusion:
            fused, moves = logits[:blank_id], []
            for model, state_of_model in zip(fusion, fusion_states, strict=True):
                bonus, next_states = model.model.advance(state_of_model)
                fused = fused + bonus[0].astype(logits.dtype) * model.alpha
                moves.append(next_states[0])
            label = mx.argmax(fused).item()
            fusion_states = [move[label : label + 1] for move in moves]
        logprob = (scores[label] - mx.logsumexp(scores)).item()
        hypothesis.tokens.append(Token(label, t, duration if tdt else None, logprob))
        g, state = _predict(prednet, joint, label, state)
        tokens_here += 1
        if duration > 0:
            t += duration
            tokens_here = 0
        elif max_symbols is not None and tokens_here >= max_symbols:
            t += 1  # enough tokens on this frame: NeMo forces a blank
            tokens_here = 0
    return hypothesis


def _initial_state(prednet: PredictionNetwork, dtype: mx.Dtype) -> list[tuple[mx.array, mx.array]]:
    """Zero (h, c) for each LSTM layer, for one utterance."""
    h, c = prednet.initial_state(1, dtype)
    return [(h[layer], c[layer]) for layer in range(h.shape[0])]


def _predict(
    prednet: PredictionNetwork,
    joint: JointNetwork,
    label: int,
    state: list[tuple[mx.array, mx.array]],
) -> tuple[mx.array, list[tuple[mx.array, mx.array]]]:
    """Feed one label to the prediction network: its output, projected for the joint (the
    joint's `g`), and the new LSTM state."""
    out, state = prednet.step(mx.array([label], dtype=mx.int32), state)
    return joint.project_prednet(out)[0], state
