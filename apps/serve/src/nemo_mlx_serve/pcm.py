"""Audio that arrives in pieces: PCM bytes to float samples, and resampling piece by piece.

A stream's pieces must resample to exactly the samples one `resample` of the whole signal
gives, or the text would depend on how the client cut its audio. soxr's stream resampler,
fed piece by piece, gives soxr's whole-signal output sample for sample; `finish` then pads
to `mlx_audio_frontend.resample`'s length, ceil(n * target / source)."""

from __future__ import annotations

import math

import numpy as np
import soxr


class PCMError(ValueError):
    """Bytes that are not PCM of the stated format; `str(err)` is one line for a client."""


def pcm_to_float(data: bytes, width: int, channels: int) -> np.ndarray:
    """Mono float32 samples in [-1, 1) from little-endian signed PCM (unsigned for width 1)."""
    if width not in (1, 2, 4):
        raise PCMError(f"sample width {width} bytes is not supported (1, 2 or 4)")
    if channels < 1:
        raise PCMError(f"channels must be at least 1, got {channels}")
    frame = width * channels
    if len(data) % frame:
        raise PCMError(f"{len(data)} bytes is not a whole number of {frame}-byte frames")
    if width == 1:
        samples = (np.frombuffer(data, np.uint8).astype(np.float32) - 128.0) / 128.0
    else:
        kind = np.dtype("<i2") if width == 2 else np.dtype("<i4")
        samples = np.frombuffer(data, kind).astype(np.float32) / float(2 ** (8 * width - 1))
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return samples


class StreamResampler:
    """Resamples a signal given in pieces to what `resample` gives for the whole of it."""

    def __init__(self, source_rate: int, target_rate: int) -> None:
        if source_rate <= 0 or target_rate <= 0:
            raise PCMError(f"sample rates must be positive, got {source_rate} and {target_rate}")
        self.source_rate = source_rate
        self.target_rate = target_rate
        self.received = 0  # samples in, at `source_rate`
        self._given = 0  # samples out so far
        self._soxr = (
            None
            if source_rate == target_rate
            else soxr.ResampleStream(source_rate, target_rate, 1, dtype="float32", quality="HQ")
        )

    @property
    def seconds(self) -> float:
        return self.received / self.source_rate

    def add(self, samples: np.ndarray) -> np.ndarray:
        """The output samples this piece completes (fewer than its share: the filter lags)."""
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        self.received += samples.size
        if self._soxr is None:
            out = samples
        else:
            out = self._soxr.resample_chunk(samples, last=False)
        self._given += out.size
        return out

    def finish(self) -> np.ndarray:
        """The rest, padded or cut so that the whole has `resample`'s length."""
        if self._soxr is None:
            return np.zeros(0, np.float32)
        out = self._soxr.resample_chunk(np.zeros(0, np.float32), last=True)
        size = math.ceil(self.received * float(self.target_rate) / self.source_rate)
        want = max(size - self._given, 0)
        out = np.pad(out, (0, max(want - out.size, 0)))[:want]
        self._given += out.size
        return np.ascontiguousarray(out, dtype=np.float32)
