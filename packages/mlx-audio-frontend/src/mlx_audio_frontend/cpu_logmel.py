"""The log-mel front end on the CPU as one native pass (`kernels/logmel_cpu.c`).

MLX's CPU backend runs the STFT and each elementwise pass around it (magnitude, mel, log,
the statistics, the normalisation) on one thread per stream, every pass over the whole
spectrum in memory: on 2 cores ~3 us per frame, 20-30% of a small model's batched round
on the server. The native pass keeps a few frames at a time in cache from the samples to
the normalised features, on every core, and skips the frames past each item's valid
length (a padded batch costs its items' own lengths). The same maths as `LogMel`'s MLX
path to float32 rounding (its own FFT; sums in double).

Used by `LogMel` on the CPU for float32 input when n_fft is a power of two and
frame_splicing is 1 (the configurations of NVIDIA's checkpoints); `MLX_AUDIO_FRONTEND_NATIVE=off`
or no C compiler keep the MLX path.
"""

from __future__ import annotations

import ctypes
import functools
import os
from importlib.resources import files

from mlx_cpu_runtime import native

import mlx.core as mx
import numpy as np

from .config import FixedNormalization, LogMelConfig

F32 = ctypes.POINTER(ctypes.c_float)
I32 = ctypes.POINTER(ctypes.c_int32)
_NORMALIZE = {None: 0, "per_feature": 1, "all_features": 2}
_FIXED = 3


class _LogMel(ctypes.Structure):
    """`logmel_t` of kernels/logmel_cpu.c."""

    _fields_ = [
        ("B", ctypes.c_int), ("N", ctypes.c_long), ("audio", F32), ("lengths", I32),
        ("valid", I32), ("T", ctypes.c_int), ("first_frame", ctypes.c_long),
        ("origin", ctypes.c_long),
        *[(name, ctypes.c_int) for name in ("n_fft", "hop", "pad", "exact_pad", "preemph_on")],
        ("preemph", ctypes.c_float), ("window", F32),
        ("n_bins", ctypes.c_int), ("n_mels", ctypes.c_int), ("filterbank", F32),
        ("mel_lo", I32), ("mel_hi", I32), ("mag_power", ctypes.c_float),
        ("log_on", ctypes.c_int), ("guard_clamp", ctypes.c_int), ("guard", ctypes.c_float),
        ("normalize", ctypes.c_int), ("fixed_mean", F32), ("fixed_std", F32),
        ("pad_value", ctypes.c_float), ("out", F32), ("threads", ctypes.c_int),
        ("twiddle", F32), ("reversed", I32),
    ]  # fmt: skip


def switched_off() -> bool:
    """`MLX_AUDIO_FRONTEND_NATIVE=off` (or 0): keep MLX's path on the CPU."""
    return os.environ.get("MLX_AUDIO_FRONTEND_NATIVE", "on").strip().lower() in ("off", "0")


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernel, or None (no C compiler, or mlx-cpu-runtime cannot build it)."""
    source = (files(__package__) / "kernels" / "logmel_cpu.c").read_bytes()
    flags = ("-O3", *native.FLAGS[1:], "-fno-math-errno", "-fno-trapping-math", "-pthread")
    return native.load(source, "logmel-cpu", flags, pool=True)


def usable(config: LogMelConfig) -> bool:
    """Whether the native pass applies to `config` here: the CPU, n_fft a power of two,
    no frame splicing, switched on, built."""
    n_fft = config.n_fft
    return (
        mx.default_device() == mx.cpu
        and n_fft >= 4
        and n_fft & (n_fft - 1) == 0
        and config.frame_splicing == 1
        and not switched_off()
        and library() is not None
    )


class Plan:
    """What the kernel needs of one config, made once per `LogMel`: the window, the
    filterbank with each filter's bin range, the FFT's tables, the guard and the
    normalisation."""

    def __init__(self, config: LogMelConfig, window: np.ndarray, filterbank: np.ndarray,
                 pad: int, guard: float) -> None:  # fmt: skip
        self.config, self.pad, self.guard = config, pad, guard
        self.window = np.ascontiguousarray(window, dtype=np.float32)
        self.filterbank = np.ascontiguousarray(filterbank, dtype=np.float32)
        touched = self.filterbank != 0
        any_bin = touched.any(axis=0)
        self.mel_lo = np.where(any_bin, touched.argmax(axis=0), 0).astype(np.int32)
        last = self.filterbank.shape[0] - touched[::-1].argmax(axis=0)
        self.mel_hi = np.where(any_bin, last, 0).astype(np.int32)
        self.twiddle, self.reversed = _fft_tables(config.n_fft)
        mode = config.normalize
        if isinstance(mode, FixedNormalization):
            self.normalize = _FIXED
            self.fixed = [np.ascontiguousarray(v, dtype=np.float32) for v in (mode.mean, mode.std)]
        else:
            self.normalize, self.fixed = _NORMALIZE[mode], None

    def __call__(
        self, audio: np.ndarray, lengths: np.ndarray, valid: np.ndarray, frames: int, *,
        first_frame: int = 0, origin: int = 0, normalize: bool = True,
    ) -> mx.array:  # fmt: skip
        """(B, frames, n_mels) normalised features of zero-padded `audio` (B, N) float32
        with `lengths` samples and `valid` frames per item; frames past them `pad_value`.

        A stream's later frames: frames [first_frame, first_frame + frames) of a signal of
        which `audio` holds samples [origin, origin + N) (zeros elsewhere); `normalize`
        False leaves per_feature / all_features statistics to the caller."""
        cfg = self.config
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        lengths = np.ascontiguousarray(lengths, dtype=np.int32)
        valid = np.ascontiguousarray(valid, dtype=np.int32)
        batch, samples = audio.shape
        out = np.empty((batch, frames, cfg.n_mels), dtype=np.float32)
        task = _LogMel(
            batch, samples, audio.ctypes.data_as(F32), lengths.ctypes.data_as(I32),
            valid.ctypes.data_as(I32), frames, first_frame, origin, cfg.n_fft, cfg.hop_length,
            self.pad,
            int(cfg.exact_pad), int(cfg.preemph is not None), cfg.preemph or 0.0,
            self.window.ctypes.data_as(F32), cfg.n_bins, cfg.n_mels,
            self.filterbank.ctypes.data_as(F32), self.mel_lo.ctypes.data_as(I32),
            self.mel_hi.ctypes.data_as(I32), cfg.mag_power, int(cfg.log),
            int(cfg.log_zero_guard_type == "clamp"), self.guard,
            self.normalize if normalize or self.normalize == _FIXED else 0,
        )  # fmt: skip
        if self.fixed is not None:
            task.fixed_mean, task.fixed_std = (v.ctypes.data_as(F32) for v in self.fixed)
        task.pad_value, task.out = cfg.pad_value, out.ctypes.data_as(F32)
        task.threads = native.cores()
        task.twiddle, task.reversed = (
            self.twiddle.ctypes.data_as(F32),
            self.reversed.ctypes.data_as(I32),
        )
        if library().logmel_cpu(ctypes.byref(task)):
            raise MemoryError("log-mel: no memory for a worker's frames")
        return mx.array(out)


def _fft_tables(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's FFT tables for a power-of-two `n_fft`: the twiddles (re, im) of
    e^(-2 pi i k / (n_fft / 2)) for k < n_fft / 2, then of e^(-2 pi i k / n_fft) for
    k <= n_fft / 2 (the split into the real transform's bins), computed in double; and the
    bit-reversed order of n_fft / 2 indices."""
    half = n_fft // 2
    angles = np.concatenate([np.arange(half) / half, np.arange(half + 1) / n_fft]) * -2 * np.pi
    twiddle = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32).ravel()
    bits = max(0, half.bit_length() - 1)
    reversed_ = np.array([int(f"{k:0{bits}b}"[::-1], 2) if bits else 0 for k in range(half)])
    return np.ascontiguousarray(twiddle), reversed_.astype(np.int32)
