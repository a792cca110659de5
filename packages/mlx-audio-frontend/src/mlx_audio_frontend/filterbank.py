"""Analysis windows and the mel filterbank, computed in numpy exactly as NeMo's buffers are.

NeMo stores `window` (torch's symmetric window) and `fb` (librosa's Slaney-style mel
filterbank, rounded to float32) as buffers. Computing them the same way here, in float64
with the same float32 rounding points, keeps features equal without reading them from a
checkpoint.
"""

from __future__ import annotations

import numpy as np

WINDOWS = ("hann", "hamming", "blackman", "bartlett")


def analysis_window(name: str, length: int) -> np.ndarray:
    """A symmetric window of `length` samples, float32, computed in float32 as torch's
    `*_window(periodic=False)` computes it (agrees to about one ulp)."""
    if length == 1:
        return np.ones(1, dtype=np.float32)
    n = np.arange(length, dtype=np.float32)
    phase = n * np.float32(2.0 * np.pi / (length - 1))
    f32 = np.float32
    if name == "hann":
        window = f32(0.5) - f32(0.5) * np.cos(phase)
    elif name == "hamming":
        window = f32(0.54) - f32(0.46) * np.cos(phase)
    elif name == "blackman":
        window = f32(0.42) - f32(0.5) * np.cos(phase) + f32(0.08) * np.cos(f32(2.0) * phase)
    elif name == "bartlett":
        window = f32(1.0) - np.abs(n * f32(2.0 / (length - 1)) - f32(1.0))
    else:
        raise ValueError(f"unsupported window {name!r}; supported: {', '.join(WINDOWS)}")
    return window.astype(np.float32)


def centered_window(name: str, win_length: int, n_fft: int) -> np.ndarray:
    """The window zero-padded to `n_fft`, centred as `torch.stft` does."""
    if win_length > n_fft:
        raise ValueError(f"window length {win_length} exceeds n_fft {n_fft}")
    left = (n_fft - win_length) // 2
    padded = np.zeros(n_fft, dtype=np.float32)
    padded[left : left + win_length] = analysis_window(name, win_length)
    return padded


_F_SP = 200.0 / 3.0  # Hz per mel below the break (Slaney's auditory toolbox scale)
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _F_SP
    log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log_part, linear)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = _F_SP * mel
    log_part = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log_part, linear)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Triangular mel filters, shape (n_fft // 2 + 1, n_mels), float32.

    Same construction as `librosa.filters.mel(htk=False)`, which NeMo calls: triangles
    between adjacent mel-spaced edges, each row rounded to float32, then scaled to unit area
    (`norm="slaney"`) with a float32 result.
    """
    if norm not in ("slaney", None):
        raise ValueError(f"unsupported mel_norm {norm!r}; supported: 'slaney', None")
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    weights = np.zeros((n_mels, fft_freqs.size), dtype=np.float32)
    for i in range(n_mels):
        rising = -ramps[i] / widths[i]
        falling = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        weights *= (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, None]
    return np.ascontiguousarray(weights.T)
