"""NeMo's log-mel front end (`AudioToMelSpectrogramPreprocessor`) in MLX.

The pipeline, in NeMo's order: pre-emphasis, zeroing of samples past each item's length,
centred STFT with zero padding, magnitude raised to `mag_power`, mel filterbank, log with
NeMo's zero guard, normalisation over each item's valid frames only, masking of the frames
past the valid length, and `pad_to`. Output is channels-last: (batch, frames, features).

Long inputs are processed in blocks of frames so that the STFT's working memory is bounded
by the block, not by the file; only the (frames, features) result grows with the input.
On the CPU the whole pipeline is one native pass instead where it applies (`cpu_logmel`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import mlx_cpu_runtime

import mlx.core as mx
import numpy as np

from . import cpu_logmel
from .config import FixedNormalization, LogMelConfig
from .filterbank import centered_window, mel_filterbank

_STD_FLOOR = 1e-5  # NeMo adds this to every standard deviation (features.CONSTANT)
_CPU_BLOCK_ROWS = 1024  # frames x items per block on the CPU (16 clips of 2-20 s: 2x at batch 8)
_CPU_MIN_BLOCK = 64  # frames: shorter blocks cost more in passes than they save


class LogMel:
    """A callable front end for one `LogMelConfig`; holds the window and filterbank.

    >>> frontend = LogMel(LogMelConfig(n_mels=80, win_length=400))
    >>> feats, lengths = frontend(mx.zeros((2, 16000)), mx.array([16000, 8000]))
    """

    def __init__(self, config: LogMelConfig, block_frames: int = 4096) -> None:
        if block_frames < 1:
            raise ValueError("block_frames must be positive")
        self.config = config
        self.block_frames = block_frames
        self.window = mx.array(centered_window(config.window, config.win_length, config.n_fft))
        filterbank = mel_filterbank(
            config.sample_rate,
            config.n_fft,
            config.n_mels,
            fmin=config.lowfreq,
            fmax=config.highfreq,
            norm=config.mel_norm,
        )
        self.filterbank = mx.array(filterbank)
        # The mel projection: band by band on a reference BLAS, else one dense matmul. With
        # OpenBLAS (or Accelerate, or a GPU) the dense product is faster than ten small ones:
        # a 4096-frame block of 80 mels 14.6 -> 11.7 ms on 2 cores (2026-12-04), the same
        # numbers (zeros add nothing).
        dense = [(0, filterbank.shape[0], self.filterbank)]
        self._bands = _banded(filterbank) if mlx_cpu_runtime.status().reference_blas else dense
        self._pad = (
            (config.n_fft - config.hop_length) // 2 if config.exact_pad else config.n_fft // 2
        )
        self._native = cpu_logmel.Plan(
            config, np.array(self.window), filterbank, self._pad,
            _guard_value(config.log_zero_guard_value),
        )  # fmt: skip
        self._kernel = mx.compile(self._block_kernel)
        self._mask = mx.compile(self._mask_kernel)
        self._normalize_and_mask = mx.compile(self._normalize_and_mask_kernel)

    def _frames(self, num_samples: int | mx.array) -> int | mx.array:
        """NeMo's `get_seq_len` before clamping, for an int or an array of sample counts."""
        return (num_samples + 2 * self._pad - self.config.n_fft) // self.config.hop_length

    def frame_count(self, num_samples: int) -> int:
        """`valid_frames` of one input, on the host (no device round trip)."""
        return 0 if num_samples == 0 else max(0, self._frames(num_samples))

    def valid_frames(self, num_samples: mx.array) -> mx.array:
        """Valid frame count per item (NeMo's `get_seq_len`, with 0 samples giving 0 frames)."""
        frames = self._frames(num_samples)
        return mx.where(num_samples == 0, 0, mx.maximum(frames, 0)).astype(mx.int32)

    def __call__(
        self, audio: mx.array | np.ndarray, lengths: mx.array | np.ndarray | list[int] | None = None
    ) -> tuple[mx.array, mx.array]:
        """Features (B, T, F) float32 and valid frame counts (B,) int32.

        `audio` is (N,) or zero-padded (B, N) float samples at `config.sample_rate`;
        `lengths` gives each item's sample count (default: all N).
        """
        native = cpu_logmel.usable(self.config)
        if native:  # one native pass on every core, over numpy views: no MLX round trip
            if isinstance(audio, mx.array) and audio.dtype != mx.float32:
                audio = audio.astype(mx.float32)  # numpy has no bfloat16
            audio = np.asarray(audio, dtype=np.float32)
        else:
            audio = mx.array(audio, dtype=mx.float32)
        if audio.ndim == 1:
            audio = audio[None]
        if audio.ndim != 2:
            raise ValueError(
                f"audio must be (samples,) or (batch, samples), got shape {audio.shape}"
            )
        batch, num_samples = audio.shape
        if lengths is None:
            lengths = np.full((batch,), num_samples, dtype=np.int32)
        lengths = np.asarray(lengths, dtype=np.int32).reshape(-1)
        if lengths.shape[0] != batch:
            raise ValueError(f"got {lengths.shape[0]} lengths for a batch of {batch}")
        total = max(
            0, 1 + (num_samples + 2 * self._pad - self.config.n_fft) // self.config.hop_length
        )
        if native:
            valid = np.array([self.frame_count(int(n)) for n in lengths], dtype=np.int32)
            features = self._native(audio, lengths, valid, total)
            return self._pad_frames(features), mx.array(valid)
        lengths = mx.array(lengths)
        valid = self.valid_frames(lengths)

        # On the CPU two blocks at a time, the second on a stream of its own: MLX runs the
        # FFT and the elementwise work on one thread per stream. So there the blocks are
        # at most half the input (both threads busy) and of about CPU_BLOCK_ROWS frames
        # over the batch (the STFT's working set stays in cache).
        block = self.block_frames
        if mx.default_device() == mx.cpu:
            streams = [mx.default_stream(mx.cpu), mlx_cpu_runtime.second_cpu_stream()]
            fitting = max(_CPU_MIN_BLOCK, min(-(-total // 2), _CPU_BLOCK_ROWS // batch))
            block = min(block, fitting)
        else:
            streams = [mx.default_stream(mx.default_device())]
        spans = [(f, min(total, f + block)) for f in range(0, total, block)]
        spans = spans or [(0, 0)]
        several = len(spans) > 1
        blocks = []
        for i in range(0, len(spans), len(streams)):
            group = []
            for stream, (first, last) in zip(streams, spans[i : i + len(streams)], strict=False):
                with mx.stream(stream):
                    group.append(self._spliced(self._log_mel_block(audio, lengths, first, last)))
            if several:
                mx.eval(group)  # bound the STFT's working memory to a block per stream
            blocks += group

        mean, denominator = self._statistics(blocks, spans, valid)
        outputs = []
        for i, (first, _) in enumerate(spans):
            out = self._finish(blocks[i], mx.array(first), valid, mean, denominator)
            if several:
                mx.eval(out)
                blocks[i] = None  # release the raw block before the next one is finished
            outputs.append(out)
        logmel = mx.concatenate(outputs, axis=1) if several else outputs[0]
        return self._pad_frames(logmel), valid

    def _spliced(self, block: mx.array) -> mx.array:
        """NeMo's splice_frames: the unshifted features concatenated `frame_splicing` times."""
        if self.config.frame_splicing > 1:
            return mx.concatenate([block] * self.config.frame_splicing, axis=-1)
        return block

    def _log_mel_block(self, audio: mx.array, lengths: mx.array, first: int, last: int) -> mx.array:
        """Log-mel of STFT frames [first, last), before normalisation: (B, last - first, n_mels)."""
        cfg = self.config
        count = last - first
        if count <= 0:
            return mx.zeros((audio.shape[0], 0, cfg.n_mels), dtype=mx.float32)
        rows = count - 1 + math.ceil(cfg.n_fft / cfg.hop_length)
        start = first * cfg.hop_length
        # Padded position j holds original sample j - pad; take one sample more on the left
        # for pre-emphasis, and zeros wherever the block reaches past the audio.
        lo, hi = start - self._pad - 1, start + rows * cfg.hop_length - self._pad
        num_samples = audio.shape[1]
        piece = audio[:, max(lo, 0) : max(min(hi, num_samples), 0)]
        left, right = max(0, -lo), max(0, hi - num_samples)
        if left or right:
            piece = mx.pad(piece, [(0, 0), (left, right)])
        # NeMo masks by length before its centred padding but after exact_pad's padding.
        first_position = start if cfg.exact_pad else start - self._pad
        weights = [w for _, _, w in self._bands]
        return self._kernel(piece, lengths, mx.array(first_position), self.window, weights)

    def _block_kernel(
        self,
        piece: mx.array,
        lengths: mx.array,
        first_position: mx.array,
        window: mx.array,
        band_weights: list[mx.array],
    ) -> mx.array:
        """Pre-emphasis, masking, framing, STFT, power, mel and log of one block (compiled)."""
        cfg = self.config
        hop, n_fft = cfg.hop_length, cfg.n_fft
        if cfg.preemph is None:  # NeMo masks nothing when it skips pre-emphasis
            signal = piece[:, 1:]
        else:
            signal = piece[:, 1:] - cfg.preemph * piece[:, :-1]
            position = first_position + mx.arange(signal.shape[1])[None, :]
            signal = mx.where(position < lengths[:, None], signal, 0.0)
        num_rows = signal.shape[1] // hop
        rows_per_frame = math.ceil(n_fft / hop)
        count = num_rows - rows_per_frame + 1
        # Frame t spans rows t .. t + rows_per_frame - 1 of the hop-sized rows; slicing and
        # concatenating rows builds all frames without a gather.
        rows = signal.reshape(signal.shape[0], num_rows, hop)
        frames = mx.concatenate([rows[:, k : k + count] for k in range(rows_per_frame)], axis=-1)
        spectrum = mx.fft.rfft(frames[..., :n_fft] * window, axis=-1)
        real, imag = mx.real(spectrum), mx.imag(spectrum)
        magnitude = mx.sqrt(real * real + imag * imag)  # NeMo's order: magnitude, then power
        if cfg.mag_power == 2.0:
            power = magnitude * magnitude
        elif cfg.mag_power != 1.0:
            power = mx.power(magnitude, cfg.mag_power)
        else:
            power = magnitude
        mel = mx.concatenate(
            [
                power[..., lo:hi] @ w
                for (lo, hi, _), w in zip(self._bands, band_weights, strict=True)
            ],
            axis=-1,
        )
        if not cfg.log:
            return mel
        guard = _guard_value(cfg.log_zero_guard_value)
        if cfg.log_zero_guard_type == "add":
            return mx.log(mel + guard)
        return mx.log(mx.maximum(mel, guard))

    def _statistics(
        self, blocks: list[mx.array], spans: list[tuple[int, int]], valid: mx.array
    ) -> tuple[mx.array | None, mx.array | None]:
        """Mean and std + 1e-5 over each item's valid frames, as NeMo normalises.

        The data are shifted by their first frame before summing: accurate sums, and a
        feature that is constant (a silent input, a clamped bin) gets exactly its value as
        mean and zero deviation, where NeMo's rounding noise is scaled up by 1 / 1e-5.
        """
        mode = self.config.normalize
        if mode is None:
            return None, None
        if isinstance(mode, FixedNormalization):
            return mx.array(mode.mean), mx.array(mode.std)
        axes = (1,) if mode == "per_feature" else (1, 2)
        count = valid.astype(mx.float32)[:, None, None]
        if mode == "all_features":
            count = count * blocks[0].shape[2]
        shift = blocks[0][:, :1, :] if mode == "per_feature" else blocks[0][:, :1, :1]

        def total(values: Callable[[mx.array], mx.array]) -> mx.array:
            sums = [
                _blocked_sum(mx.where(_valid_mask(first, block, valid), values(block), 0.0))
                for block, (first, _) in zip(blocks, spans, strict=True)
            ]
            return sum(sums[1:], sums[0]).sum(axis=axes, keepdims=True)

        mean = shift + total(lambda block: block - shift) / count
        variance = total(lambda block: mx.square(block - mean)) / (count - 1.0)
        std = mx.sqrt(variance)
        if mode == "per_feature":
            std = mx.where(mx.isnan(std), 0.0, std)  # a single frame: NeMo sets std to 0
        return mean, std + _STD_FLOOR

    def _finish(
        self,
        block: mx.array,
        first: mx.array,
        valid: mx.array,
        mean: mx.array | None,
        denominator: mx.array | None,
    ) -> mx.array:
        """Normalise and mask one block: NeMo's `(x - mean) / (std + 1e-5)`, then `pad_value`."""
        if mean is None:
            return self._mask(block, first, valid)
        return self._normalize_and_mask(block, first, valid, mean, denominator)

    def _mask_kernel(self, block: mx.array, first: mx.array, valid: mx.array) -> mx.array:
        mask = (first + mx.arange(block.shape[1]))[None, :, None] < valid[:, None, None]
        return mx.where(mask, block, self.config.pad_value)

    def _normalize_and_mask_kernel(
        self,
        block: mx.array,
        first: mx.array,
        valid: mx.array,
        mean: mx.array,
        denominator: mx.array,
    ) -> mx.array:
        return self._mask_kernel((block - mean) / denominator, first, valid)

    def _pad_frames(self, x: mx.array) -> mx.array:
        """Pad the frame axis to a multiple of `pad_to` with `pad_value`, as NeMo does."""
        pad_to = self.config.pad_to
        if pad_to == 0 or x.shape[1] % pad_to == 0:
            return x
        extra = pad_to - x.shape[1] % pad_to
        return mx.pad(x, [(0, 0), (0, extra), (0, 0)], constant_values=self.config.pad_value)


def _banded(filterbank: np.ndarray, mels_per_band: int = 8) -> list[tuple[int, int, mx.array]]:
    """Split the (bins, mels) filterbank into bands of adjacent mels with their bin ranges.

    Each mel filter touches a few neighbouring bins only, so projecting each band of
    `mels_per_band` filters through the bins it touches does 7-20% of the dense matmul's
    work with the same terms: the dense form costs seconds per hour of audio on a
    reference BLAS. A band that touches no bin keeps a one-bin range of zero weights.
    """
    bands = []
    for first in range(0, filterbank.shape[1], mels_per_band):
        block = filterbank[:, first : first + mels_per_band]
        touched = np.flatnonzero(np.any(block != 0, axis=1))
        lo, hi = (int(touched[0]), int(touched[-1]) + 1) if touched.size else (0, 1)
        bands.append((lo, hi, mx.array(np.ascontiguousarray(block[lo:hi]))))
    return bands


def _valid_mask(first: int, block: mx.array, valid: mx.array) -> mx.array:
    """(B, frames, 1) mask of a block's frames that lie within each item's valid length."""
    return ((first + mx.arange(block.shape[1]))[None, :] < valid[:, None])[..., None]


def _blocked_sum(x: mx.array, block: int = 64) -> mx.array:
    """Sum over the frame axis of (B, T, F) in blocks, keeping that axis with size 1.

    A running float32 sum over thousands of frames drifts by ~1e-4 relative, enough to
    miss NeMo's statistics (torch accumulates these in higher precision). Summing blocks of
    `block` frames, then blocks of block sums, keeps the error at a few ulps.
    """
    while x.shape[1] > block:
        frames = x.shape[1]
        if frames % block:
            x = mx.pad(x, [(0, 0), (0, block - frames % block), (0, 0)])
        x = x.reshape(x.shape[0], -1, block, x.shape[2]).sum(axis=2)
    return x.sum(axis=1, keepdims=True)


def _guard_value(value: float | str) -> float:
    if value == "tiny":
        return float(np.finfo(np.float32).tiny)
    if value == "eps":
        return float(np.finfo(np.float32).eps)
    return float(value)


def log_mel(
    audio: mx.array | np.ndarray,
    config: LogMelConfig,
    lengths: mx.array | np.ndarray | list[int] | None = None,
) -> tuple[mx.array, mx.array]:
    """One-shot form of `LogMel(config)(audio, lengths)`."""
    return LogMel(config)(audio, lengths)
