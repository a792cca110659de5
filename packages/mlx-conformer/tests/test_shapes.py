"""A batch's shape on a GPU: frames and item counts rounded to a few sizes; on the CPU as given."""

from __future__ import annotations

from mlx_conformer.shapes import bucketed_count, bucketed_frames


def test_frames_round_up_to_a_few_lengths():
    sizes = [bucketed_frames(n, True) for n in (1, 128, 129, 2048, 2049, 4097, 30000)]
    assert sizes == [128, 128, 256, 2048, 2304, 4608, 30720]
    assert [bucketed_frames(n, False) for n in (1, 129, 30000)] == [1, 129, 30000]


def test_counts_round_up_to_powers_of_two_within_the_most():
    assert [bucketed_count(n, 64, True) for n in (1, 2, 3, 5, 9, 16, 17)] == [
        1,
        2,
        4,
        8,
        16,
        16,
        32,
    ]
    assert bucketed_count(5, 6, True) == 6  # the caller's largest batch
    assert bucketed_count(5, 5, True) == 5
    assert bucketed_count(3, 64, False) == 3  # the CPU: as they are
