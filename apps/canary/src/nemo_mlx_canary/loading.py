"""`load`: from a model reference to a ready `Canary`."""

from __future__ import annotations

from pathlib import Path

import mlx_cpu_runtime

import mlx.core as mx

import mlx_diarization
import mlx_frame_vad as frame_vad
from mlx_diarization import Diarizer, DiarizerChoice
from mlx_frame_vad import FrameVAD, VadChoice
from nemo_mlx_convert import ConversionError, resolve_model
from speech_transcript.precision import load_auxiliary, load_settings

from .errors import CanaryError
from .model import Canary

DEFAULT_MODEL = "nvidia/canary-1b-flash"


def load(
    model: str | Path = DEFAULT_MODEL,
    *,
    dtype: str | None = None,
    cache_dir: str | Path | None = None,
    verbose: bool = True,
    quantize: int | None = None,
) -> Canary:
    """Load a Canary model: a Hugging Face repo id, a `.nemo` file or a converted directory.

    The first use of a `.nemo` or repo id converts it into the cache; later uses load the
    cached directory. `dtype` defaults to float32 on the CPU and bfloat16 on a GPU.
    `quantize` (8 or 4) quantises the encoder's and decoder's linear layers (MLX affine,
    groups of 64) after loading: less memory, a small change in the output.
    """
    dtype, notify = load_settings("canary", dtype, quantize, gpu=mx.default_device() != mx.cpu,
                                  verbose=verbose, error=CanaryError, hint=mlx_cpu_runtime.hint)  # fmt: skip
    try:
        model_dir = resolve_model(model, cache_dir=cache_dir, on_convert=notify)
    except ConversionError as err:
        raise CanaryError(str(err)) from None
    return Canary(model_dir, name=str(model), dtype=getattr(mx, dtype), quantize=quantize)


def load_vad(
    choice: VadChoice, *, cache_dir: str | Path | None = None, verbose: bool = True
) -> FrameVAD | None:
    """`--vad` as a frame-VAD model (`mlx_frame_vad.resolve`: None, a model, True for the
    default, or a reference, converted into the cache on first use and said on stderr when
    `verbose`); CanaryError (one line) for what is not one."""
    return load_auxiliary("canary", "--vad", frame_vad.resolve, choice, cache_dir=cache_dir,
                          verbose=verbose, error=CanaryError,
                          failures=(ConversionError, ValueError))  # fmt: skip


def load_diarizer(
    choice: DiarizerChoice, *, cache_dir: str | Path | None = None, verbose: bool = True
) -> Diarizer | None:
    """`--diarize` as a Sortformer (`mlx_diarization.resolve`: None, a model, True for the
    default, or a reference, converted into the cache on first use and said on stderr when
    `verbose`); CanaryError (one line) for what is not one."""
    return load_auxiliary("canary", "--diarize", mlx_diarization.resolve, choice,
                          cache_dir=cache_dir, verbose=verbose, error=CanaryError,
                          failures=(ConversionError, ValueError))  # fmt: skip
