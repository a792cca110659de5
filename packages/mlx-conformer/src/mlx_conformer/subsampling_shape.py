"""The geometry of the stride-2 3x3 subsampling convolutions: their padding and the lengths
they leave. Shared by the MLX path (`subsampling`) and the native CPU pass (`cpu_subsampling`)."""

from __future__ import annotations

KERNEL, STRIDE = 3, 2


def stage_padding(causal: bool) -> tuple[int, int]:
    """(before, after) padding of each 3x3 convolution, on time and frequency alike."""
    return (2, 1) if causal else (1, 1)


def output_length(length, stages: int, causal: bool = False):
    """Frames (or frequency bins) after `stages` stride-2 convolutions (NeMo's calc_length);
    `length` an int or an array."""
    before, after = stage_padding(causal)
    for _ in range(stages):
        length = (length + before + after - KERNEL) // STRIDE + 1
    return length
