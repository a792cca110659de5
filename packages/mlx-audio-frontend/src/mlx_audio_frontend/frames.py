"""Length bookkeeping in one place: samples -> feature frames -> subsampled encoder frames.

NeMo computes lengths with floor arithmetic at each stage; every layer of this project asks
this module instead of repeating the formulas, so that timestamps agree to the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def feature_frames(num_samples: int, hop_length: int, n_fft: int, exact_pad: bool = False) -> int:
    """Valid feature frames for `num_samples` samples, as NeMo's `FilterbankFeatures.get_seq_len`.

    With centred STFT padding this is `num_samples // hop_length`; the STFT yields one frame
    more, which NeMo masks and leaves out of normalisation.
    """
    pad = (n_fft - hop_length) // 2 if exact_pad else n_fft // 2
    if num_samples <= 0:
        return 0
    return max(0, (num_samples + 2 * pad - n_fft) // hop_length)


def stft_frames(num_samples: int, hop_length: int, n_fft: int, exact_pad: bool = False) -> int:
    """Frames the STFT produces (valid frames plus the masked tail), before any `pad_to`."""
    pad = (n_fft - hop_length) // 2 if exact_pad else n_fft // 2
    return 1 + (num_samples + 2 * pad - n_fft) // hop_length


@dataclass(frozen=True)
class ConvStage:
    """One length-reducing convolution of a subsampling stack (NeMo's `calc_length` terms)."""

    kernel_size: int = 3
    stride: int = 2
    total_padding: int = 2
    ceil_mode: bool = False


def conv_stack_length(length: int, stages: tuple[ConvStage, ...] | list[ConvStage]) -> int:
    """Output length of a stack of strided convolutions, with NeMo's float-then-round rule."""
    value = float(length)
    for stage in stages:
        value = (value + stage.total_padding - stage.kernel_size) / stage.stride + 1.0
        value = math.ceil(value) if stage.ceil_mode else math.floor(value)
    return int(value)


def subsampling_stages(
    factor: int, kernel_size: int = 3, stride: int = 2, causal: bool = False
) -> tuple[ConvStage, ...]:
    """The stages NeMo's `ConvSubsampling` (`striding` / `dw_striding`) uses for `factor`."""
    if factor < 1 or factor & (factor - 1):
        raise ValueError(f"subsampling factor must be a power of two, got {factor}")
    if causal:
        total_padding = (kernel_size - 1) + (stride - 1)
    else:
        total_padding = 2 * ((kernel_size - 1) // 2)
    stage = ConvStage(kernel_size=kernel_size, stride=stride, total_padding=total_padding)
    return (stage,) * int(math.log2(factor))
