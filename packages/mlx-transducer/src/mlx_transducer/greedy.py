"""Batched greedy RNNT / TDT decoding, token for token as NeMo's `greedy_batch` (label looping).

`greedy_reference.py` holds the algorithm as a plain loop over one utterance's frames: read
it first. This module makes exactly its decisions (the tests hold it to the plain loop on
random joints) for a whole batch at once, with few host synchronisations:

- One compiled step per emitted token. In the plain loop a blank only moves the frame on:
  the prediction network's output `g` stays the same until a token is emitted. So a step
  evaluates the joint with that `g` on the next `window` frames at once, finds where the
  chain of blank jumps from the current frame stops, and there emits the token (or only
  moves there: a frame past the window or the utterance's end), steps the prediction
  network and applies the `max_symbols` rule. Every utterance of the batch goes through
  the same step; one that did not emit, or is finished, keeps its state (masks instead of
  branches, so that nothing has to go back to the host).
- Pointer doubling finds where the blank chain stops without a loop over the window.
  Position i of the window points where its decision leads: i + duration for a blank
  inside the utterance, i itself for a token or a frame past the end; positions past the
  window point to themselves. Replacing every pointer by the one it points to doubles the
  jumps it covers, so after log2(window) such rounds position 0's pointer is the stop.
- Packed labels: the label and duration at the stop are fetched in one gather, packed as
  label * 65536 + duration into one int32 and split again (durations are under 2**16;
  labels must be under 2**15: vocabularies up to 32767 tokens).
- Round counts: checking whether every utterance has finished is a host synchronisation
  (it stalls MLX's queue), so the host queues steps in rounds and checks after each. The
  first round has as many steps as the longest utterance needs at least (its frames over
  `reach`, the farthest one step can move); later ones as many as the progress so far
  predicts (frames left times steps per frame so far, at least `MIN_ROUND`). Steps queued
  after an utterance finished leave it as it was, so a generous count only costs time.
- On MLX's CUDA backend the whole loop runs instead as one kernel launch
  (`cuda_greedy.py`: the same decisions, no host round trip per step); on the CPU, with
  plain float32 weights, as one native C loop over the BLAS (`cpu_greedy.py`). Fusion,
  quantized weights, Metal and CUDA batches over the kernel's limit take the compiled step
  (the portable path); so does `kernel = False`.
- The prediction network's first layer reads its input part from a per-label table
  (`input_table`, made once per set of weights) instead of a product per step.
- Confidences are computed once after the loop, in one joint evaluation over the emitted
  tokens' frames and predictor outputs, which each step records (`collect_hypotheses`).
- Shallow fusion (`fusion`: an n-gram LM, a boosting tree; mlx-asr-fusion's models), as
  NeMo's label looping applies it: blank or not, and the duration, are decided on the
  joint's output alone; where a token wins, the token is the argmax of the token logits
  plus each model's alpha-weighted scores from its current state, and the models' states
  follow the emitted tokens. A step advances the models once (their states change only
  when a token is emitted, as in NeMo, whose inner blank loop reuses the scores), and
  reads a model's next state for the emitted token alone (`fusion_next`).
  NeMo adds the scores to log-softmaxed logits on the CPU and to raw logits on CUDA; the
  log-softmax shifts every token by the same amount, so the argmax is the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from mlx_asr_fusion import (
    FusionModel,
    add_fusion_scores,
    fusion_next,
    fusion_scores,
    fusion_shapes,
    fusion_tables,
)

from . import cpu_greedy, cuda_greedy
from .decisions import blank_chain, decision_rule
from .hypothesis import Hypothesis
from .networks import JointNetwork, PredictionNetwork
from .records import StepRecords, collect_hypotheses

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
        self._settings = (prednet, joint, blank_id, tuple(durations), max_symbols, self.window)
        # compiled steps per (fusion shapes, window): the window-1 step is made on demand
        self._steps = {((), self.window): _make_step(*self._settings)}
        self._fused: tuple[tuple[mx.array, ...], object] | None = None  # the native loop's
        self._table: tuple[tuple[mx.array, ...], mx.array] | None = None
        self.kernel = True  # the native loop where it applies (False: the compiled step)

    def initial_state(
        self, batch: int, dtype: mx.Dtype, fusion: Sequence[FusionModel] = ()
    ) -> dict:
        """The state before the first frame: NeMo primes the prediction network with blank
        (its embedding is the zero padding row); fusion models start at `<s>`."""
        h, c = self.prednet.initial_state(batch, dtype)
        layers = [(h[i], c[i]) for i in range(h.shape[0])]
        out, layers = self.prednet.step(mx.full((batch,), self.blank_id, dtype=mx.int32), layers)
        state = {
            "t": mx.zeros((batch,), dtype=mx.int32),
            "layers": layers,
            "g": self.joint.project_prednet(out),
            "last_frame": mx.full((batch,), -1, dtype=mx.int32),
            "repeats": mx.zeros((batch,), dtype=mx.int32),
        }
        if fusion:
            state["fusion"] = [fused.model.get_init_states(batch) for fused in fusion]
        return state

    def __call__(
        self,
        encoder_output: mx.array,
        lengths: mx.array | None = None,
        fusion: Sequence[FusionModel] = (),
    ) -> list[Hypothesis]:
        """Greedy hypotheses for encoder outputs (B, T, D) with valid lengths (B,), with
        shallow fusion of `fusion`'s models if given."""
        batch, time, _ = encoder_output.shape
        if lengths is None:
            lengths = mx.full((batch,), time, dtype=mx.int32)
        enc_proj = self.joint.project_encoder(encoder_output)
        state = self.initial_state(batch, enc_proj.dtype, fusion)
        _, records = self.run(enc_proj, lengths.astype(mx.int32), state, fusion)
        return collect_hypotheses(records, enc_proj, self.joint, self.blank_id, self.tdt)

    def _kernel_for(self, batch: int, fusion: Sequence[FusionModel], dtype: mx.Dtype):
        """The native loop where it applies (module docstring): `cpu_greedy`'s on the CPU,
        the one-launch kernel on MLX's CUDA backend; else None (the compiled step)."""
        if fusion or not self.kernel:
            return None
        if cpu_greedy.NativeGreedy.supports(self.prednet, self.joint, dtype):
            kind = cpu_greedy.NativeGreedy
        elif self.window == 1 and cuda_greedy.FusedGreedy.supports(self.prednet, self.joint, batch):
            kind = cuda_greedy.FusedGreedy
        else:
            return None
        weights = _arrays(self.prednet) + _arrays(self.joint)  # the loop's copies follow them
        kept = self._fused
        if kept is None or not _same(kept[0], weights) or type(kept[1]) is not kind:
            # the CPU loop copies the input table too (made from the same weights)
            table = (self.input_table(),) if kind is cpu_greedy.NativeGreedy else ()
            fused = kind(
                self.prednet, self.joint, *table, blank_id=self.blank_id,
                durations=self._settings[3], max_symbols=self.max_symbols,
            )  # fmt: skip
            self._fused = (weights, fused)
        return self._fused[1]

    def _step_for(self, shapes: tuple[tuple[int, int], ...], window: int):
        if (shapes, window) not in self._steps:
            settings = (*self._settings[:5], window)
            self._steps[shapes, window] = _make_step(*settings, fusion=shapes)
        return self._steps[shapes, window]

    def run(
        self, enc_proj: mx.array, lengths: mx.array, state: dict, fusion: Sequence[FusionModel] = ()
    ) -> tuple[dict, StepRecords]:
        """Steps until every utterance's frame is past its length; the final state and what
        each step decided. `state` carries the fusion models' states if `fusion` is given."""
        sizes = np.array(lengths, dtype=np.int64)
        start = np.array(state["t"], dtype=np.int64)
        left = sizes - start
        # Each step emits a token or moves on, at most max_symbols tokens per frame. Without
        # max_symbols there is no bound, as in NeMo: a joint that never predicts blank on
        # some frame never finishes.
        most = int(max(0, left.max(initial=0)))
        limit = None if self.max_symbols is None else most * (self.max_symbols + 1) + 1
        fused = self._kernel_for(enc_proj.shape[0], fusion, enc_proj.dtype)
        if fused is not None and most > 0:
            return self._run_fused(fused, enc_proj, lengths, state, sizes, most, limit)
        tables = fusion_tables(fusion, self.blank_id, self._logits_dtype(enc_proj, state, fusion))
        shapes = fusion_shapes(fusion)
        window = self.window
        records: list[tuple] = []
        count = math.ceil(most / self.reach)
        self.rounds = 0  # host synchronisations of the last run (for benchmarks)
        self.windows: list[int] = []  # the window of each round of the last run
        input_table = self.input_table()
        while count > 0 and (limit is None or len(records) < limit):
            self.rounds += 1
            if limit is not None:
                count = min(count, limit - len(records))
            step = self._step_for(shapes, window)
            self.windows.append(window)
            before = left
            for _ in range(count):
                state, record = step(enc_proj, lengths, state, tables, input_table)
                records.append(record)
            mx.eval(state, records[-count:])
            left = sizes - np.array(state["t"], dtype=np.int64)
            going = left > 0
            if not going.any():
                break
            # Dense emission (every utterance moved fewer frames than it took steps) gains
            # nothing from the window's extra joint rows: the next round has window 1 (the
            # decisions are the same at every window).
            dense = bool(((before - left)[going] < count).all())
            window = 1 if dense else self.window
            moved = np.maximum(sizes - start - left, 1)[going]  # frames per step so far
            count = max(MIN_ROUND, math.ceil(float((left[going] * len(records) / moved).max())))
        return state, StepRecords.from_steps(records)

    def input_table(self) -> mx.array:
        """`PredictionNetwork.input_table`, made once per set of weights (`set_dtype` or
        `load_weights` replace them)."""
        weights = _arrays(self.prednet)
        if self._table is None or not _same(self._table[0], weights):
            self._table = (weights, self.prednet.input_table())
            mx.eval(self._table[1])
        return self._table[1]

    def _logits_dtype(self, enc_proj: mx.array, state: dict, fusion) -> mx.Dtype:
        """The joint's output dtype (of a graph built, never run), if there is fusion."""
        return self.joint(enc_proj[:1, :1], state["g"][:1, None]).dtype if fusion else mx.float32

    def _run_fused(self, fused, enc_proj, lengths, state, sizes, most, limit):
        """`run` as one call of the native loop, the CUDA kernel's or the CPU's (more only
        without a `max_symbols` bound, when a call's step budget runs out before every
        utterance has finished)."""
        parts = []
        self.rounds, self.windows = 0, [1]
        while True:
            self.rounds += 1
            budget = limit if limit is not None else 4 * most + 64
            state, rec, logprob = fused.run(enc_proj, lengths, state, budget)
            parts.append((np.array(rec), np.array(logprob)))
            done = bool((np.array(state["t"], dtype=np.int64) >= sizes).all())
            if limit is not None or done:
                break
        rec = np.concatenate([r for r, _ in parts])
        records = StepRecords(
            rec[..., 0].astype(bool), rec[..., 1], rec[..., 2], rec[..., 3],
            logprob=np.concatenate([lp for _, lp in parts]),
        )  # fmt: skip
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
    fusion: Sequence[FusionModel] = (),
) -> list[Hypothesis]:
    """Greedy hypotheses for a batch of encoder outputs (B, T, D) with valid lengths (B,).
    (`Transducer.greedy` keeps one `GreedyDecoder`, so its compiled step is reused.)"""
    decoder = GreedyDecoder(prednet, joint, blank_id=blank_id, durations=durations,
                            max_symbols=max_symbols, window=window)  # fmt: skip
    return decoder(encoder_output, lengths, fusion)


def _make_step(
    prednet: PredictionNetwork,
    joint: JointNetwork,
    blank_id: int,
    durations: tuple[int, ...],
    max_symbols: int | None,
    window: int,
    fusion: tuple[tuple[int, int], ...] = (),
):
    """The compiled step (module docstring): one token, and the blanks before it, for every
    utterance of the batch; `fusion`: the fusion models' (vocabulary, max order)."""
    offsets = mx.arange(window, dtype=mx.int32)  # positions in the window
    mx.eval(offsets)  # a constant, not a graph node of every step
    decide = decision_rule(blank_id, durations)
    follow = blank_chain(offsets, max(1, *durations) if durations else 1)

    @partial(mx.compile, inputs=[prednet.state, joint.state])
    def step(
        enc_proj: mx.array, lengths: mx.array, state: dict, tables: list, input_table: mx.array
    ) -> tuple[dict, tuple]:
        t, g = state["t"], state["g"]
        active = t < lengths
        position = t[:, None] + offsets  # (B, window)
        # Frames past the end are never used; clamped by the length, not by the shape: a
        # shape in the graph would be a constant of the compiled kernel, compiled anew
        # (~0.5 s on the CPU, more on CUDA) for every input length.
        rows = mx.minimum(position, mx.maximum(lengths - 1, 0)[:, None])
        logits = joint(mx.take_along_axis(enc_proj, rows[..., None], axis=1), g[:, None])
        label, blank, duration = decide(logits)
        if fusion:  # the token among tokens, with the fusion models' scores
            scores, candidates = fusion_scores(tables, state["fusion"], fusion, logits.dtype)
            fused = add_fusion_scores(logits[..., :blank_id], scores)
            label = mx.where(blank, blank_id, mx.argmax(fused, axis=-1).astype(mx.int32))
        stop, label, duration = follow(label, blank, duration, position < lengths[:, None])
        frame = t + stop
        emit = active & (stop < window) & (frame < lengths)
        new_t = mx.where(active, mx.where(emit, frame + duration, frame), t)
        new_state = _emit(prednet, joint, state, emit, label, frame, input_table)
        if fusion:  # each model follows the emitted token
            new_state["fusion"] = fusion_next(tables, state["fusion"], candidates, label, emit)
        if max_symbols is not None:  # NeMo's forced blank after max_symbols on one frame
            force = emit & (new_t < lengths) & (new_state["repeats"] >= max_symbols)
            force = force & (new_state["last_frame"] == new_t)
            new_t = new_t + force.astype(mx.int32)
        new_state["t"] = new_t
        # g is the predictor output the decision used: confidences are computed from it
        # once after the loop, for the emitted tokens only.
        return new_state, (emit, label, frame, duration, g)

    return step


def _emit(
    prednet: PredictionNetwork,
    joint: JointNetwork,
    state: dict,
    emit: mx.array,
    label: mx.array,
    frame: mx.array,
    input_table: mx.array,
) -> dict:
    """The state after emitting `label` at `frame` where `emit` is set: the prediction
    network stepped, and the count of tokens emitted in a row at one frame (NeMo's
    `last_nb_timestamp_lasts`); elsewhere the state is kept."""
    repeats = mx.where(
        emit, mx.where(state["last_frame"] == frame, state["repeats"] + 1, 1), state["repeats"]
    )
    last_frame = mx.where(emit, frame, state["last_frame"])
    out, layers = prednet.step(label, state["layers"], input_table)
    keep = emit[:, None]
    return {
        "layers": [
            (mx.where(keep, h, h0), mx.where(keep, c, c0))
            for (h, c), (h0, c0) in zip(layers, state["layers"], strict=True)
        ],
        "g": mx.where(keep, joint.project_prednet(out), state["g"]),
        "last_frame": last_frame,
        "repeats": repeats,
    }


def _arrays(module: nn.Module) -> tuple[mx.array, ...]:
    """A module's parameter arrays: what is derived from them is made anew when they change."""
    return tuple(v for _, v in tree_flatten(module.parameters()))


def _same(kept: tuple[mx.array, ...], now: tuple[mx.array, ...]) -> bool:
    """The same arrays (held, so their ids stay unique while kept)."""
    return len(kept) == len(now) and all(a is b for a, b in zip(kept, now, strict=True))
