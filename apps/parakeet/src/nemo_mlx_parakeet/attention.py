"""The long-audio attention policy: which encoder attention a batch runs with.

Long inputs run whole, as NeMo runs them: with full attention while NeMo's full attention
would hold at most `budget` bytes of scores, batch x heads x T'^2 x 4 (T' encoder frames of
the batch's longest input, float32 scores whatever the dtype, so that the choice, which
changes the output, is the same on every device). 10 GiB is where NVIDIA puts the end of
full attention for parakeet-tdt-0.6b-v2 / v3 (8 heads): ~24 minutes (24.4) on an 80 GB
GPU. Beyond it the batch runs with NeMo's long-audio recipe, `LONG_AUDIO_ATTENTION`.
Cache-aware checkpoints keep their attention, whose offline form (NeMo's, with its (T, T)
chunked mask) takes memory quadratic in the length: beyond the budget they go in chunks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from mlx_conformer import Conformer

FULL_ATTENTION_BUDGET = 10 * 2**30
SCORE_BYTES = 4
LONG_AUDIO_ATTENTION = ("rel_pos_local_attn", (256, 256))  # change_attention_model's arguments
CACHE_AWARE_CHUNK_SECONDS = 240.0

Attention = tuple[str, tuple[int, int]]


def own_attention(encoder: Conformer) -> Attention:
    """The attention the encoder is set to: its checkpoint's, or `--local-attention`'s."""
    config = encoder.config
    return config.self_attention_model, tuple(config.att_context)


def full_attention_bytes(encoder: Conformer, batch: int, frames: int) -> int:
    """NeMo's full-attention score memory for `batch` inputs of `frames` feature frames:
    batch x heads x T'^2 x 4 bytes (T' = frames / subsampling factor, rounded up).

    This encoder computes those scores in groups of rows and never holds them whole
    (mlx-conformer's attention), so for it the figure is a measure of length (its time
    grows as T'^2), not of its own memory."""
    encoded = -(-frames // encoder.subsampling_factor)
    return batch * encoder.config.n_heads * encoded**2 * SCORE_BYTES


def attention_for(encoder: Conformer, budget: int | None, batch: int, frames: int) -> Attention:
    """The attention (model, [left, right]) for `batch` inputs of at most `frames` valid
    feature frames: the encoder's own, unless it is full attention over the whole input
    (`rel_pos`, context [-1, -1], `regular` style) and its scores would exceed `budget`
    bytes; then `LONG_AUDIO_ATTENTION` (see `Parakeet.attention_for`)."""
    own = own_attention(encoder)
    if (
        budget is None
        or own != ("rel_pos", (-1, -1))
        or encoder.config.att_context_style != "regular"
        or full_attention_bytes(encoder, batch, frames) <= budget
    ):
        return own
    model, context = LONG_AUDIO_ATTENTION
    return model, tuple(context)


def chunk_beyond_budget(encoder: Conformer, budget: int | None, frames: int) -> bool:
    """A cache-aware checkpoint run offline (its own attention, NeMo's (T, T)-masked
    form, memory quadratic in the length) on an input beyond the budget: chunk it."""
    config = encoder.config
    return (
        config.att_context_style != "regular"
        and config.self_attention_model == "rel_pos"
        and budget is not None
        and full_attention_bytes(encoder, 1, frames) > budget
    )


def switch_notice(
    seconds: float, batch: int, gib: float, budget_gib: float, chosen: Attention
) -> str:
    """The --verbose line saying that a batch runs with the long-audio recipe, and why."""
    inputs = f"{seconds:.1f} s of audio"
    if batch > 1:
        inputs = f"{batch} inputs of up to {seconds:.1f} s"
    return (f"{inputs}: full attention would take {gib:.1f} GiB of scores (budget "
            f"{budget_gib:.3g} GiB), so NeMo's long-audio recipe runs: {chosen[0]} "
            f"{list(chosen[1])}")  # fmt: skip


@contextlib.contextmanager
def attention_set(encoder: Conformer, chosen: Attention) -> Iterator[None]:
    """The encoder runs with `chosen` attention inside, its own after."""
    own = own_attention(encoder)
    if chosen == own:
        yield
        return
    encoder.change_attention_model(*chosen)
    try:
        yield
    finally:
        encoder.change_attention_model(*own)
