"""A Sortformer model from what the user names, converted once and cached
(`mlx_diarization.load_model`), with the command's one-line error."""

from __future__ import annotations

from pathlib import Path

from mlx_diarization import DEFAULT_MODEL, Diarizer, load_model
from nemo_mlx_convert import ConversionError

__all__ = ["DEFAULT_MODEL", "DiarizeError", "load"]


class DiarizeError(ValueError):
    """A model that cannot diarize, or settings it cannot run; one line for the user."""


def load(model: str | Path = DEFAULT_MODEL, cache_dir: str | Path | None = None) -> Diarizer:
    """A Hugging Face repo id, `.nemo` file or model directory -> a `Diarizer`."""
    try:
        return load_model(model, cache_dir=cache_dir)
    except (ConversionError, ValueError) as err:
        raise DiarizeError(str(err)) from None
