"""Joining the hypotheses of overlapping chunks without duplicated or dropped tokens.

Two chunks both transcribe their overlap. Their tokens there are aligned by the longest
common subsequence of token ids, counting a pair only when the two emission frames are
within `tolerance` frames of each other. The join happens at the middle aligned pair: the
earlier chunk's tokens up to it, the later chunk's from it on. Each side thus contributes
the part of the overlap where it had the most context. With nothing to align (silence,
or disagreement), the join is at the middle of the overlap in time.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from .decoding import Hypothesis


def merge_chunks(chunks: Sequence[tuple[int, int, Hypothesis]], factor: int) -> Hypothesis:
    """One input's hypothesis from its chunks' in order, each given as (offset in encoder
    frames, length in feature frames, hypothesis with frames relative to the chunk); a
    chunk overlaps the next from the next's offset to its own end (`factor`: feature
    frames per encoder frame)."""
    offset, _, hypothesis = chunks[0]
    merged = hypothesis.shifted(offset)
    for (before, frames, _), (offset, _, hypothesis) in itertools.pairwise(chunks):
        overlap = (offset, before + frames // factor)
        merged = merge_hypotheses(merged, hypothesis.shifted(offset), overlap)
    return merged


def merge_hypotheses(
    first: Hypothesis, second: Hypothesis, overlap: tuple[int, int], tolerance: int = 2
) -> Hypothesis:
    """Join two hypotheses (absolute frames) whose audio overlaps in frames [start, end)."""
    start, end = overlap
    a = [i for i, f in enumerate(first.frames) if f >= start]
    b = [i for i, f in enumerate(second.frames) if f < end]
    pairs = _aligned(first, second, a, b, tolerance)
    if pairs:
        i, j = pairs[len(pairs) // 2]
        keep_first, keep_second = range(i), range(j, len(second.ids))
    else:
        middle = (start + end) / 2
        keep_first = [i for i, f in enumerate(first.frames) if f < middle]
        keep_second = [j for j, f in enumerate(second.frames) if f >= middle]

    def take(h: Hypothesis, indices: Sequence[int], field: str) -> list:
        values = getattr(h, field)
        return [values[k] for k in indices]

    return Hypothesis(
        ids=take(first, keep_first, "ids") + take(second, keep_second, "ids"),
        frames=take(first, keep_first, "frames") + take(second, keep_second, "frames"),
        durations=None
        if first.durations is None
        else take(first, keep_first, "durations") + take(second, keep_second, "durations"),
        confidences=take(first, keep_first, "confidences")
        + take(second, keep_second, "confidences"),
    )


def _aligned(
    first: Hypothesis, second: Hypothesis, a: list[int], b: list[int], tolerance: int
) -> list[tuple[int, int]]:
    """Longest common subsequence of (id, nearby frame) between token index lists a and b."""
    n, m = len(a), len(b)
    if not n or not m:
        return []
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for x in range(n - 1, -1, -1):
        for y in range(m - 1, -1, -1):
            i, j = a[x], b[y]
            if (
                first.ids[i] == second.ids[j]
                and abs(first.frames[i] - second.frames[j]) <= tolerance
            ):
                table[x][y] = table[x + 1][y + 1] + 1
            else:
                table[x][y] = max(table[x + 1][y], table[x][y + 1])
    pairs, x, y = [], 0, 0
    while x < n and y < m:
        i, j = a[x], b[y]
        if (
            first.ids[i] == second.ids[j]
            and abs(first.frames[i] - second.frames[j]) <= tolerance
            and table[x][y] == table[x + 1][y + 1] + 1
        ):
            pairs.append((i, j))
            x, y = x + 1, y + 1
        elif table[x + 1][y] >= table[x][y + 1]:
            x += 1
        else:
            y += 1
    return pairs
