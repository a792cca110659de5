"""A padded batch's shape on a GPU: its frames and its item count rounded to a few sizes.

MLX's CUDA backend builds a cuDNN plan (attention, convolutions) and a cuFFT plan for each new
input shape (~0.1 s each, kept in bounded caches) and compiles kernels for new ones: a batch
of a shape met before runs at once, a new one pays inside its request. Inputs come in every
length, and a server's rounds in every size, so on a GPU a batch is padded to one of a few
shapes (the padding masked by the lengths, as in any padded batch; padding items are the
caller's to add and drop). On the CPU nothing is padded: padding costs arithmetic there.
`bucket` is True or False to choose, None for "whether MLX's default device is a GPU".
"""

from __future__ import annotations

import math

import mlx.core as mx

FRAME_BUCKET = 128  # feature frames: padded lengths are multiples of this, then coarser


def bucketing(bucket: bool | None) -> bool:
    """`bucket`, or for None whether MLX's default device is a GPU."""
    return mx.default_device() == mx.gpu if bucket is None else bucket


def bucketed_frames(frames: int, bucket: bool | None = None) -> int:
    """The frame count a batch is padded to: multiples of 128 frames up to 2048, then of 256
    up to 4096, and so on (at most 1/8 more frames from there on)."""
    if not bucketing(bucket) or frames <= 0:
        return frames
    step = FRAME_BUCKET << max(0, math.ceil(math.log2(frames / (16 * FRAME_BUCKET))))
    return -(-frames // step) * step


def bucketed_count(count: int, most: int, bucket: bool | None = None) -> int:
    """The item count a batch of `count` is padded to: the next power of two, or `most` (the
    largest batch the caller allows, at least `count`) when that is smaller."""
    if not bucketing(bucket) or count <= 1:
        return count
    return max(count, min(1 << (count - 1).bit_length(), most))
