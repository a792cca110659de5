"""A Sortformer model from what the user names, converted once and cached."""

from __future__ import annotations

from pathlib import Path

from mlx_diarization import MODEL_CLASS, Diarizer
from mlx_diarization import load as load_directory
from nemo_mlx_convert import ConversionError, resolve_model

DEFAULT_MODEL = "nvidia/diar_sortformer_4spk-v1"


class DiarizeError(ValueError):
    """A model that cannot diarize, or settings it cannot run; one line for the user."""


def load(model: str | Path = DEFAULT_MODEL, cache_dir: str | Path | None = None) -> Diarizer:
    """A Hugging Face repo id, `.nemo` file or model directory -> a `Diarizer`."""
    try:
        directory = resolve_model(model, cache_dir=cache_dir)
    except ConversionError as err:
        raise DiarizeError(str(err)) from None
    if directory.model_class != MODEL_CLASS:
        name = directory.model_class.rsplit(".", 1)[-1] or "unknown"
        raise DiarizeError(
            f"{model}: a {name} model, not a Sortformer diarizer (SortformerEncLabelModel)"
        )
    try:
        return load_directory(directory.path)
    except ValueError as err:
        raise DiarizeError(f"{model}: {err}") from None
