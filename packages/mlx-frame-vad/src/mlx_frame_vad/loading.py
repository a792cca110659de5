"""A frame-VAD model from what a user names: a Hugging Face repo id, a `.nemo` file or a model
directory, converted once into the cache by nemo-mlx-convert (the `convert` extra)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .model import MODEL_CLASS, FrameVAD

DEFAULT_MODEL = "nvidia/Frame_VAD_Multilingual_MarbleNet_v2.0"

VadChoice = FrameVAD | str | Path | bool | None


def load(
    reference: str | Path = DEFAULT_MODEL,
    *,
    cache_dir: str | Path | None = None,
    on_convert: Callable[[str], None] | None = None,
) -> FrameVAD:
    """The frame-VAD model `reference` names; nemo-mlx-convert's ConversionError (one line,
    naming it) for what is not one, a ValueError (one line) for a config it cannot run."""
    from nemo_mlx_convert import resolve_model_of  # the `convert` extra

    directory = resolve_model_of(reference, MODEL_CLASS, "frame VAD", cache_dir=cache_dir,
                                 on_convert=on_convert)  # fmt: skip
    return FrameVAD.from_model_directory(directory)


def resolve(
    choice: VadChoice,
    *,
    cache_dir: str | Path | None = None,
    on_convert: Callable[[str], None] | None = None,
) -> FrameVAD | None:
    """What an app's `vad=` option means: None or False no VAD, a loaded model itself, True
    `DEFAULT_MODEL`, anything else a reference to `load`."""
    if choice is None or choice is False:
        return None
    if isinstance(choice, FrameVAD):
        return choice
    reference = DEFAULT_MODEL if choice is True else choice
    return load(reference, cache_dir=cache_dir, on_convert=on_convert)
