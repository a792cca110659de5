"""Greedy RNNT / TDT decoding in one CUDA kernel launch: the whole label-looping loop runs
on the device, so no step waits for the host.

`greedy.py`'s compiled step costs a few dozen kernel launches, each queued from the host: on
an H200 that host work, not the arithmetic, bounds batch-1 decoding (~100 us a step against
a few us of matrix work). Here one persistent kernel runs every step of every utterance of
the batch (up to `MAX_BATCH`): its blocks (one per multiprocessor, so all are resident at
once) share each step's matrix-vector products and meet at grid-wide barriers: after the
joint (every block then reduces the same partial argmaxes, so each knows every decision
without another barrier), and, on steps where some utterance emitted, after each LSTM layer
and after the prediction projection. A step where every utterance saw blank costs one
barrier.

The decisions are `greedy.py`'s with a window of one frame (the window it uses on a GPU),
checked against it token for token in float32. Arithmetic: weights and encoder frames in the
model's dtype, everything else (sums, LSTM states, the predictor output) in float32; the
log-probability of each emitted token comes from the same pass (an online log-sum-exp over
the token logits), so no joint is evaluated after the loop.

Used for `mx.gpu` on MLX's CUDA backend; Metal and the CPU keep the compiled MLX step (a
Metal version of this kernel would slot in the same way).
"""

from __future__ import annotations

import ctypes
import functools
from importlib.resources import files

import mlx.core as mx

from .networks import JointNetwork, PredictionNetwork

MAX_BATCH = 64  # utterances per launch (per-utterance state lives in shared memory)
SHARED_BUDGET = 180_000  # bytes of dynamic shared memory a block may ask (`_shared_floats`)
# At least this much, so that MLX always raises the kernel's limit: it does so only for sizes
# over the default 48 KiB, which the dynamic size plus the ~14 KiB of static arrays can pass
# while the dynamic size alone does not (the launch then fails).
SHARED_FLOOR = 64 * 1024
THREADS = 256
_ACTIVATIONS = {"relu": 0, "tanh": 1, "sigmoid": 2}


_INPUTS = ["enc", "lengths", "emb", "wx", "wh", "bias", "wp", "bp", "wo", "bo", "durations",
           "g0", "h0", "c0", "t0", "last0", "rep0", "limit"]  # fmt: skip
_OUTPUTS = ["rec", "lp", "g", "h", "hn", "c", "tstate", "nsteps", "part", "sync"]


def available() -> bool:
    """Whether the kernel can run here: the default device is a GPU of MLX's CUDA backend."""
    return mx.default_device() == mx.gpu and mx.cuda.is_available()


@functools.cache
def _multiprocessors() -> int:
    """The GPU's multiprocessor count (one resident block each), from the CUDA driver."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
        device, count = ctypes.c_int(), ctypes.c_int()
        if driver.cuInit(0) or driver.cuDeviceGet(ctypes.byref(device), 0):
            return 16
        if driver.cuDeviceGetAttribute(ctypes.byref(count), 16, device):  # MULTIPROCESSOR_COUNT
            return 16
        return max(1, count.value)
    except OSError:
        return 16


BLOCKS: int | None = None  # blocks per launch; None: one per multiprocessor (benchmarks vary it)


def _shared_floats(batch: int, joint_hidden: int, hidden: int) -> int:
    """Floats of dynamic shared memory a block takes: the joint's hidden layer for the batch
    (rounded up to 8 utterances, so that few sizes get compiled), or, when more, the staged
    LSTM inputs and states of as many emitting utterances as the budget holds."""
    rounded = -(-batch // 8) * 8
    staged = min(rounded, SHARED_BUDGET // (4 * 2 * hidden)) * 2 * hidden
    return max(rounded * joint_hidden, staged, SHARED_FLOOR // 4)


@functools.cache
def _kernel(shared_memory: int):
    # One name per size: MLX keys its compiled module by name and source, and raises a
    # kernel's shared-memory limit only when it first loads it.
    kernels = files(__package__) / "kernels"
    return mx.fast.cuda_kernel(
        name=f"transducer_greedy_{shared_memory}",
        input_names=_INPUTS,
        output_names=_OUTPUTS,
        source=(kernels / "greedy_body.cu").read_text(),
        header=(kernels / "greedy.cuh").read_text(),
        shared_memory=shared_memory,
    )


class FusedGreedy:
    """The kernel's view of one prediction network and joint: their weights gathered once
    (the LSTM layers stacked), and `run`, which continues a `GreedyDecoder` state."""

    def __init__(
        self,
        prednet: PredictionNetwork,
        joint: JointNetwork,
        *,
        blank_id: int,
        durations: tuple[int, ...],
        max_symbols: int | None,
    ) -> None:
        layers = prednet.prediction["dec_rnn"].lstm
        self.weights = [
            prednet.prediction["embed"].weight,
            mx.stack([layer.Wx for layer in layers]),
            mx.stack([layer.Wh for layer in layers]),
            mx.stack([layer.bias for layer in layers]),
            joint.pred.weight,
            joint.pred.bias,
            joint.joint_net[-1].weight,
            joint.joint_net[-1].bias,
            mx.array(durations or (0,), dtype=mx.int32),
        ]
        mx.eval(self.weights)
        self._cast: dict[mx.Dtype, list[mx.array]] = {}
        self.hidden = prednet.hidden
        self.joint_hidden = joint.pred.weight.shape[0]
        self.outputs = joint.joint_net[-1].weight.shape[0]
        self.template = [
            ("P", prednet.hidden),
            ("J", self.joint_hidden),
            ("L", len(layers)),
            ("O", self.outputs),
            ("BLANK", blank_id),
            ("TDT", bool(durations)),
            ("MAXSYM", -1 if max_symbols is None else max_symbols),
            ("ACT", _ACTIVATIONS[joint.activation]),
        ]

    @staticmethod
    def supports(prednet: PredictionNetwork, joint: JointNetwork, batch: int) -> bool:
        """Plain (not quantized) weights of one dtype, equal LSTM widths, a batch that fits."""
        import mlx.nn as nn

        layers = prednet.prediction["dec_rnn"].lstm
        linear = all(type(m) is nn.Linear for m in (joint.pred, joint.enc, joint.joint_net[-1]))
        shared = _shared_floats(batch, joint.pred.weight.shape[0], prednet.hidden) * 4
        return (
            available()
            and 0 < batch <= MAX_BATCH
            and 8 * prednet.hidden <= SHARED_BUDGET
            and shared <= SHARED_BUDGET
            and linear
            and type(prednet.prediction["embed"]) is nn.Embedding
            and all(layer.Wx.shape[1] == prednet.hidden for layer in layers)
            and joint.activation in _ACTIVATIONS
            and "bias" in joint.pred
            and "bias" in joint.joint_net[-1]
        )

    def _weights(self, dtype: mx.Dtype) -> list[mx.array]:
        """The weights in the encoder output's dtype, cast once per dtype rather than on
        every launch (integer tables stay as they are)."""
        if dtype not in self._cast:
            self._cast[dtype] = [w if w.dtype in (dtype, mx.int32) else w.astype(dtype)
                                 for w in self.weights]  # fmt: skip
            mx.eval(self._cast[dtype])
        return self._cast[dtype]

    def run(self, enc_proj: mx.array, lengths: mx.array, state: dict, limit: int):
        """At most `limit` steps from `state`; the new state and the records: emit, label,
        frame, duration (steps, B) as int32 and the emitted tokens' log-probabilities."""
        batch, dtype = enc_proj.shape[0], enc_proj.dtype
        h0 = mx.stack([h for h, _ in state["layers"]])
        c0 = mx.stack([c for _, c in state["layers"]])
        layers, hidden = h0.shape[0], self.hidden
        blocks = BLOCKS or _multiprocessors()
        weights = self._weights(dtype)
        inputs = [
            enc_proj, lengths.astype(mx.int32), *weights,
            state["g"].astype(dtype), h0.astype(dtype), c0.astype(dtype),
            state["t"].astype(mx.int32), state["last_frame"].astype(mx.int32),
            state["repeats"].astype(mx.int32), mx.array([limit], dtype=mx.int32),
        ]  # fmt: skip
        steps = max(1, limit)
        width, units = self.joint_hidden, (layers, batch, hidden)
        results = [  # (shape, dtype) of each output, in _OUTPUTS' order
            ((steps, batch, 4), mx.int32), ((steps, batch), mx.float32),
            ((batch, width), mx.float32), (units, mx.float32), (units, mx.float32),
            (units, mx.float32), ((batch, 3), mx.int32), ((1,), mx.int32),
            ((2, blocks, batch, 5), mx.float32), ((64,), mx.uint32),
        ]  # fmt: skip
        floats = _shared_floats(batch, width, hidden)
        outputs = _kernel(floats * 4)(
            inputs=inputs,
            template=[("T", dtype), ("SHF", floats), *self.template],
            grid=(blocks * THREADS, 1, 1),
            threadgroup=(THREADS, 1, 1),
            output_shapes=[shape for shape, _ in results],
            output_dtypes=[dtype_ for _, dtype_ in results],
            init_value=0,
        )
        rec, lp, g, h, _, c, tstate, nsteps = outputs[:8]
        mx.eval(rec, lp, g, h, c, tstate, nsteps)
        count = int(nsteps.item())
        new_state = {
            "t": tstate[:, 0],
            "last_frame": tstate[:, 1],
            "repeats": tstate[:, 2],
            "layers": [(h[i].astype(dtype), c[i].astype(dtype)) for i in range(layers)],
            "g": g.astype(dtype),
        }
        return new_state, rec[:count], lp[:count]
