"""A Sortformer diarizer from what a user names: a Hugging Face repo id, a `.nemo` file or a
model directory, converted once into the cache by nemo-mlx-convert (the `convert` extra).
One place for the `diarize` command and the apps' `--diarize`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .diarizer import Diarizer
from .loader import MODEL_CLASS
from .loader import load as load_directory

DEFAULT_MODEL = "nvidia/diar_sortformer_4spk-v1"
# what a live stream's speaker labels default to (`Diarizer.live` needs a streaming model)
STREAMING_MODEL = "nvidia/diar_streaming_sortformer_4spk-v2"

DiarizerChoice = Diarizer | str | Path | bool | None


def load_model(
    reference: str | Path = DEFAULT_MODEL,
    *,
    cache_dir: str | Path | None = None,
    on_convert: Callable[[str], None] | None = None,
) -> Diarizer:
    """The Sortformer `reference` names; nemo-mlx-convert's ConversionError (one line,
    naming it) for what is not one, a ValueError (one line, naming it) for a config it
    cannot run."""
    from nemo_mlx_convert import resolve_model_of  # the `convert` extra

    directory = resolve_model_of(reference, MODEL_CLASS, "Sortformer diarizer",
                                 cache_dir=cache_dir, on_convert=on_convert)  # fmt: skip
    try:
        return load_directory(directory.path)
    except ValueError as err:
        raise ValueError(f"{reference}: {err}") from None


def resolve(
    choice: DiarizerChoice,
    *,
    cache_dir: str | Path | None = None,
    on_convert: Callable[[str], None] | None = None,
) -> Diarizer | None:
    """What an app's `diarize=` option means: None or False no diarization, a loaded
    `Diarizer` itself, True `DEFAULT_MODEL`, anything else a reference to `load_model`."""
    if choice is None or choice is False:
        return None
    if isinstance(choice, Diarizer):
        return choice
    reference = DEFAULT_MODEL if choice is True else choice
    return load_model(reference, cache_dir=cache_dir, on_convert=on_convert)
