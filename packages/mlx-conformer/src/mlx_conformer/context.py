"""Which keys each query of a Conformer's attention sees, and where NeMo's local attention
adds its positional scores: the patterns `attention.py` and the encoder's masks are built
from, as NeMo's `_create_masks` and `RelPositionMultiHeadAttentionLongformer` define them."""

from __future__ import annotations

import mlx.core as mx


def context_mask(style: str, context: tuple[int, int], size: int) -> mx.array | None:
    """(size, size) bool: which key each query may see in a (left, right) context (-1:
    unlimited), as NeMo's `_create_masks` before padding; None when it sees every key.

    `chunked_limited` splits time into chunks of right + 1 frames, each seeing itself and
    left // (right + 1) chunks before it; `regular` keeps keys i - left <= j <= i + right.
    """
    left, right = context
    i = mx.arange(size)[:, None]
    j = mx.arange(size)[None, :]
    if style == "chunked_limited" and right >= 0:
        chunk = right + 1
        left_chunks = left // chunk if left >= 0 else 10000
        diff = i // chunk - j // chunk
        return (diff <= left_chunks) & (diff >= 0)
    if left < 0 and right < 0:
        return None
    keep = mx.ones((size, size), dtype=mx.bool_)
    if left >= 0:
        keep = keep & (j - i >= -left)
    if right >= 0:
        keep = keep & (j - i <= right)
    return keep


def longformer_position_map(left: int, right: int) -> mx.array | None:
    """Where NeMo's local attention adds each positional score, as a (band, band) matrix.

    NeMo pads the window to w = max(left, right) on both sides and adds the positional
    scores of the left context to the first `left` window columns and those of the right
    context (and the query itself) to the last `right + 1`. For left == right that is
    the diagonal; otherwise some keys get another offset's positional score or none. We
    reproduce it: column c of our band (key j = i - left + c) receives
    bd @ map[:, c]. Returns None for the symmetric case.
    """
    if left == right:
        return None
    w = max(left, right)
    band = left + right + 1
    mapping = [[0.0] * band for _ in range(band)]
    for column in range(band):
        nemo_column = column + w - left
        if nemo_column < left:
            mapping[nemo_column][column] += 1.0
        if nemo_column >= 2 * w - right:
            mapping[left + nemo_column - (2 * w - right)][column] += 1.0
    return mx.array(mapping)
