"""Greedy RNNT / TDT decoding on the CPU as one native loop (`kernels/greedy_cpu.c`).

`greedy.py`'s compiled step costs, on the CPU, MLX's dispatch of a few dozen small
operations per step on top of its arithmetic: at batch 1 with parakeet-tdt-0.6b's
prediction network ~1.0-1.3 ms a step, of which the five one-row products (two LSTM layers,
the predictor projection, the joint's output layer) take ~0.5 ms through the BLAS's sgemv.
Here the whole label-looping loop is C: the products go straight to the system BLAS that
mlx-cpu-runtime loads (`cblas_sgemv` for one row, `cblas_sgemm` for several), the rest
(activations, argmaxes, LSTM cells, the `max_symbols` rule) is a plain loop (the LSTM
cell's sigmoid and tanh through a vectorisable exp: ~20% of a batch's decoding), and the
emitted tokens' log-probabilities come from the same pass. A batch moves as NeMo's label
looping moves it: the utterances still searching for a token share each joint product, and
those that found one share each prediction-network product. A batch is split into one
group of utterances per BLAS thread, each group's loop on its own core with the BLAS held
to one thread (utterances never interact; a batch of 16 demo-model clips 28 -> 17 ms on two
cores, where the products are a small part of a step).

The C source is compiled once per user (`mlx_cpu_runtime.native.build`). Used when MLX's
default device is the CPU and the weights are plain float32 (`GreedyDecoder._kernel_for`);
`MLX_TRANSDUCER_NATIVE=off` (or no C compiler, no BLAS with `cblas_sgemv`) keeps the
compiled step.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from importlib.resources import files

from mlx_cpu_runtime import native

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .networks import JointNetwork, PredictionNetwork

MAX_LAYERS = 16  # LSTM layers the C structure holds
CHUNK = 4096  # record rows per native call (the loop continues in further calls)
_ACTIVATIONS = {"relu": 0, "tanh": 1, "sigmoid": 2}
_F32 = ctypes.POINTER(ctypes.c_float)
_I32 = ctypes.POINTER(ctypes.c_int)


class _Model(ctypes.Structure):
    """`model_t` of greedy_cpu.c: the BLAS functions, the sizes and the weights."""

    _fields_ = [
        ("sgemm", ctypes.c_void_p),
        ("sgemv", ctypes.c_void_p),
        *[(name, ctypes.c_int) for name in ("P", "J", "L", "O", "blank", "tdt", "maxsym", "act", "ndur")],
        ("table", _F32),
        ("wx", _F32 * MAX_LAYERS),
        ("wh", _F32 * MAX_LAYERS),
        ("bias", _F32 * MAX_LAYERS),
        *[(name, _F32) for name in ("wp", "bp", "wo", "bo")],
        ("durations", _I32),
    ]  # fmt: skip


class _Run(ctypes.Structure):
    """`run_t` of greedy_cpu.c: one call's inputs, state (changed in place) and records."""

    _fields_ = [
        ("enc", _F32), ("lengths", _I32), ("B", ctypes.c_int), ("T", ctypes.c_int),
        ("g", _F32), ("h", _F32), ("c", _F32), ("t", _I32), ("last", _I32), ("rep", _I32),
        ("capacity", ctypes.c_int), ("rec", _I32), ("lp", _F32), ("threads", ctypes.c_int),
    ]  # fmt: skip


def switched_off() -> bool:
    """`MLX_TRANSDUCER_NATIVE=off` (or 0): keep the compiled MLX step on the CPU."""
    return os.environ.get("MLX_TRANSDUCER_NATIVE", "on").strip().lower() in ("off", "0")


@functools.cache
def _library() -> tuple[ctypes.CDLL, tuple[ctypes.c_void_p, ctypes.c_void_p]] | None:
    """The compiled loop and the BLAS's sgemm / sgemv, or None (no optimised BLAS, no C
    compiler)."""
    blas = native.blas_path()
    functions = native.blas_functions(blas) if blas else None
    if functions is None:
        return None
    library = native.load((files(__package__) / "kernels" / "greedy_cpu.c").read_bytes(),
                          "transducer-greedy", (*native.FLAGS, "-pthread"), pool=True,
                          vector_math=True)  # fmt: skip
    if library is None:
        return None
    library.transducer_greedy_run.argtypes = [ctypes.POINTER(_Model), ctypes.POINTER(_Run)]
    library.transducer_greedy_run.restype = ctypes.c_int
    return library, functions


def available() -> bool:
    """Whether the loop can run here: the default device is the CPU, not switched off, and
    the library and BLAS are there."""
    return mx.default_device() == mx.cpu and not switched_off() and _library() is not None


def _f32(array: mx.array) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(array, dtype=np.float32))


def _ptr(array: np.ndarray, kind=_F32):
    return array.ctypes.data_as(kind)


class NativeGreedy:
    """The loop's view of one prediction network and joint: their weights as float32
    numpy arrays (made once per set of weights), and `run`, which continues a
    `GreedyDecoder` state as `cuda_greedy.FusedGreedy.run` does."""

    def __init__(
        self,
        prednet: PredictionNetwork,
        joint: JointNetwork,
        input_table: mx.array,
        *,
        blank_id: int,
        durations: tuple[int, ...],
        max_symbols: int | None,
    ) -> None:
        library, (sgemm, sgemv) = _library()
        self._run = library.transducer_greedy_run
        layers = prednet.prediction["dec_rnn"].lstm
        out = joint.joint_net[-1]
        self._keep = {  # the arrays the structure points into
            "table": _f32(input_table),
            "wx": [_f32(layer.Wx) for layer in layers],
            "wh": [_f32(layer.Wh) for layer in layers],
            "bias": [_f32(layer.bias) for layer in layers],
            "wp": _f32(joint.pred.weight), "bp": _f32(joint.pred.bias),
            "wo": _f32(out.weight), "bo": _f32(out.bias),
            "durations": np.array(durations or (0,), dtype=np.int32),
        }  # fmt: skip
        keep = self._keep
        self.hidden, self.joint_hidden = prednet.hidden, joint.pred.weight.shape[0]
        self.model = _Model(
            sgemm, sgemv, self.hidden, self.joint_hidden, len(layers), out.weight.shape[0],
            blank_id, bool(durations), -1 if max_symbols is None else max_symbols,
            _ACTIVATIONS[joint.activation], len(keep["durations"]), _ptr(keep["table"]),
            (_F32 * MAX_LAYERS)(*[_ptr(w) for w in keep["wx"]]),
            (_F32 * MAX_LAYERS)(*[_ptr(w) for w in keep["wh"]]),
            (_F32 * MAX_LAYERS)(*[_ptr(w) for w in keep["bias"]]),
            *[_ptr(keep[name]) for name in ("wp", "bp", "wo", "bo")],
            _ptr(keep["durations"], _I32),
        )  # fmt: skip

    @staticmethod
    def supports(prednet: PredictionNetwork, joint: JointNetwork, dtype: mx.Dtype) -> bool:
        """Plain (not quantized) float32 weights and frames, a known activation, biases."""
        layers = prednet.prediction["dec_rnn"].lstm
        linear = all(type(m) is nn.Linear for m in (joint.pred, joint.enc, joint.joint_net[-1]))
        arrays = [joint.pred.weight, joint.joint_net[-1].weight, prednet.prediction["embed"].weight]
        return (
            available()
            and dtype == mx.float32
            and linear
            and type(prednet.prediction["embed"]) is nn.Embedding
            and all(a.dtype == mx.float32 for a in arrays)
            and all(layer.Wx.dtype == mx.float32 for layer in layers)
            and 0 < len(layers) <= MAX_LAYERS
            and joint.activation in _ACTIVATIONS
            and "bias" in joint.pred
            and "bias" in joint.joint_net[-1]
        )

    def run(
        self,
        enc_proj: mx.array,
        lengths: mx.array,
        state: dict,
        limit: int,
        threads: int | None = None,
    ):
        """At most `limit` steps from `state`; the new state and the records: emit, label,
        frame, duration (steps, B, 4) as int32 and the emitted tokens' log-probabilities.

        A batch runs in `threads` groups at once (default: the BLAS's thread count, the BLAS
        held to one thread meanwhile; one group where the BLAS's threads cannot be set)."""
        batch, time = enc_proj.shape[:2]
        enc = _f32(enc_proj)
        # the C loop reads frame t of each utterance while t < its length: never past T
        sizes = np.ascontiguousarray(np.minimum(np.asarray(lengths, dtype=np.int32), time))
        h = np.stack([np.asarray(h, dtype=np.float32) for h, _ in state["layers"]])
        c = np.stack([np.asarray(c, dtype=np.float32) for _, c in state["layers"]])
        g = np.array(state["g"], dtype=np.float32)
        ints = [np.array(state[k], dtype=np.int32) for k in ("t", "last_frame", "repeats")]
        recs = [np.zeros((0, batch, 4), dtype=np.int32)]
        lps, steps = [np.zeros((0, batch), dtype=np.float32)], 0
        held = native.blas_threads(1) if batch > 1 else contextlib.nullcontext(1)
        with held as blas_threads:
            groups = threads if threads is not None else blas_threads or 1
            while steps < limit:
                capacity = min(CHUNK, limit - steps)
                rec = np.empty((capacity, batch, 4), dtype=np.int32)
                lp = np.empty((capacity, batch), dtype=np.float32)
                call = _Run(
                    _ptr(enc), _ptr(sizes, _I32), batch, time, _ptr(g), _ptr(h), _ptr(c),
                    *[_ptr(v, _I32) for v in ints], capacity, _ptr(rec, _I32), _ptr(lp), groups,
                )  # fmt: skip
                done = self._run(ctypes.byref(self.model), ctypes.byref(call))
                if done < 0:
                    raise MemoryError("the native greedy loop could not allocate its buffers")
                recs.append(rec[:done])
                lps.append(lp[:done])
                steps += done
                if done < capacity:  # every utterance finished
                    break
        new_state = {
            "t": mx.array(ints[0]),
            "last_frame": mx.array(ints[1]),
            "repeats": mx.array(ints[2]),
            "layers": [(mx.array(h[i]), mx.array(c[i])) for i in range(h.shape[0])],
            "g": mx.array(g),
        }
        return new_state, np.concatenate(recs), np.concatenate(lps)
