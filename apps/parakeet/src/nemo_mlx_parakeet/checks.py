"""Transcription options checked before any audio is read: one clear error for a value out
of its range."""

from __future__ import annotations

from .errors import ParakeetError


def check_options(
    batch_size: int, decoding: str, beam_size: int, chunk_duration: float | None
) -> None:
    """ParakeetError for a transcription option out of its range (before any audio is read)."""
    if batch_size < 1:
        raise ParakeetError(f"batch_size must be at least 1, got {batch_size}")
    if decoding not in ("greedy", "beam"):
        raise ParakeetError(f"decoding must be 'greedy' or 'beam', got {decoding!r}")
    if decoding == "beam" and beam_size < 1:
        raise ParakeetError(f"beam_size must be at least 1, got {beam_size}")
    if chunk_duration is not None and chunk_duration <= 0:
        raise ParakeetError(f"chunk_duration must be positive, got {chunk_duration:g} s")
