"""Log-mel features of audio that arrives in pieces, equal to the offline features.

Frame t of NeMo's centred STFT reads samples [t * hop - pad, t * hop - pad + n_fft) of the
pre-emphasised signal (pad = n_fft // 2), and pre-emphasis reads one sample before. So a
frame is final as soon as the samples up to its window's end have arrived: `add` returns
those frames, computed by the offline `LogMel` kernel on just the samples they cover (with
the previous sample for pre-emphasis). `finish` knows the length: it computes the frames
whose windows reach past the end (the zero padding, and NeMo's masking of the signal past
its length) and the masked last STFT frame, so that the concatenation equals `LogMel` on
the whole signal.

Normalisation: with `normalize: None` (NeMo's "NA", what NeMo's streaming models use) or
fixed per-bin statistics, every frame is final as above. `per_feature` / `all_features`
normalise over the whole utterance offline, which no stream knows in advance; for those
configs the frames are returned un-normalised (`normalized` is False) and the caller
normalises the span it encodes with `normalize_frames`.
"""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np

from . import cpu_logmel
from .config import FixedNormalization, LogMelConfig
from .logmel import _STD_FLOOR, LogMel

_NO_LIMIT = 2**31 - 1


class StreamingLogMel:
    """`add(samples)` -> new (frames, F) features; `finish()` -> the rest."""

    def __init__(self, config: LogMelConfig) -> None:
        self.config = config
        self._logmel = LogMel(config)
        mode = config.normalize
        self.normalized = mode is None or isinstance(mode, FixedNormalization)
        self._stats = self._logmel._statistics([], [], mx.zeros((1,))) if self.normalized else None
        self._pad = self._logmel._pad
        self._samples = np.zeros(0, dtype=np.float32)
        self._base = 0  # global index of self._samples[0]
        self._received = 0
        self._next = 0  # next frame to emit
        self._finished = False

    def add(self, samples: np.ndarray | mx.array) -> mx.array:
        """Append samples (float, the config's rate); return the frames that became final."""
        if self._finished:
            raise RuntimeError("the stream is finished")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._samples = np.concatenate([self._samples, samples])
        self._received += samples.size
        cfg = self.config
        reach = self._received + self._pad - cfg.n_fft
        ready = reach // cfg.hop_length + 1 if reach >= 0 else 0
        return self._frames(self._next, ready, _NO_LIMIT)

    def finish(self) -> mx.array:
        """The remaining frames, up to all that `LogMel` gives for the whole signal."""
        if self._finished:
            raise RuntimeError("the stream is finished")
        self._finished = True
        cfg = self.config
        total = max(0, 1 + (self._received + 2 * self._pad - cfg.n_fft) // cfg.hop_length)
        return self._frames(self._next, total, self._received)

    def _frames(self, first: int, last: int, length: int) -> mx.array:
        cfg = self.config
        width = cfg.n_mels * cfg.frame_splicing
        if last <= first:
            return mx.zeros((0, width))
        start = first * cfg.hop_length
        rows = last - first - 1 + math.ceil(cfg.n_fft / cfg.hop_length)
        lo = start - self._pad - 1
        hi = start + rows * cfg.hop_length - self._pad
        piece = np.zeros(hi - lo, dtype=np.float32)
        # samples [lo, hi) in global indices; what has not arrived (or lies before 0) is zero
        a, b = max(lo, self._base), min(hi, self._base + self._samples.size)
        if b > a:
            piece[a - lo : b - lo] = self._samples[a - self._base : b - self._base]
        if cpu_logmel.usable(cfg):  # the offline native pass, over just these frames
            valid = length if length == _NO_LIMIT else self._logmel.frame_count(length)
            out = self._logmel._native(
                piece[None], np.array([length]), np.array([valid]), last - first,
                first_frame=first, origin=lo, normalize=False,
            )[0]  # fmt: skip
            return self._advance(last, out)
        first_position = start if cfg.exact_pad else start - self._pad
        weights = [w for _, _, w in self._logmel._bands]
        block = self._logmel._kernel(
            mx.array(piece)[None],
            mx.array([length], dtype=mx.int32),
            mx.array(first_position),
            self._logmel.window,
            weights,
        )
        if cfg.frame_splicing > 1:
            block = mx.concatenate([block] * cfg.frame_splicing, axis=-1)
        valid = mx.array([length if length < _NO_LIMIT else _NO_LIMIT], dtype=mx.int32)
        if length < _NO_LIMIT:
            valid = self._logmel.valid_frames(valid)
        mean, denominator = self._stats if self._stats is not None else (None, None)
        out = self._logmel._finish(block, mx.array(first), valid, mean, denominator)[0]
        return self._advance(last, out)

    def _advance(self, last: int, out: mx.array) -> mx.array:
        """`out` evaluated, the frames before `last` emitted, samples no frame reads dropped."""
        cfg = self.config
        mx.eval(out)
        self._next = last
        # keep only what later frames can still read
        keep_from = self._next * cfg.hop_length - self._pad - 1
        if keep_from > self._base:
            drop = min(keep_from - self._base, self._samples.size)
            self._samples = self._samples[drop:]
            self._base += drop
        return out


def normalize_frames(frames: mx.array, mode: str) -> mx.array:
    """NeMo's `per_feature` / `all_features` normalisation of a (T, F) span of frames.

    Mean and unbiased standard deviation over the span (per bin, or over everything),
    plus NeMo's 1e-5: the offline statistics, over this span instead of the utterance.
    """
    frames = frames.astype(mx.float32)
    axes = (0,) if mode == "per_feature" else (0, 1)
    count = frames.shape[0] if mode == "per_feature" else frames.size
    mean = mx.mean(frames, axis=axes, keepdims=True)
    if count < 2:
        std = mx.zeros_like(mean)
    else:
        std = mx.sqrt(mx.sum(mx.square(frames - mean), axis=axes, keepdims=True) / (count - 1))
    return (frames - mean) / (std + _STD_FLOOR)
