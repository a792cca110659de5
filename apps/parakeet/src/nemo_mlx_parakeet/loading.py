"""`load`: from a model reference to a ready `Parakeet`."""

from __future__ import annotations

from pathlib import Path

import mlx_cpu_runtime

import mlx.core as mx

from nemo_mlx_convert import ConversionError, resolve_model
from speech_transcript.precision import load_settings

from . import demo
from .errors import ParakeetError
from .model import Parakeet

DEFAULT_MODEL = "nvidia/parakeet-tdt-0.6b-v3"
DEMO_MODEL = "demo"  # the small model bundled with this package (parakeet.demo)


def load(
    model: str | Path = DEFAULT_MODEL,
    *,
    dtype: str | None = None,
    head: str = "auto",
    cache_dir: str | Path | None = None,
    verbose: bool = True,
    quantize: int | None = None,
) -> Parakeet:
    """Load a Parakeet model: a Hugging Face repo id, a `.nemo` file, a model directory
    (converted by nemo-mlx-convert or published by another MLX port), or `"demo"`: the
    small bundled model (English digits, numbers, times, common words; no network needed).

    The first use of a `.nemo` or repo id converts it into the cache; later uses load the
    cached directory. `dtype` defaults to float32 on the CPU and bfloat16 on a GPU.
    `quantize` (8 or 4) quantises the encoder's and decoder's linear layers (MLX affine,
    groups of 64) after loading: less memory, a small change in the output.
    """
    dtype, notify = load_settings("parakeet", dtype, quantize, gpu=mx.default_device() != mx.cpu,
                                  verbose=verbose, error=ParakeetError, hint=mlx_cpu_runtime.hint)  # fmt: skip
    source = demo.MODEL if str(model) == DEMO_MODEL else model
    try:
        model_dir = resolve_model(source, cache_dir=cache_dir, on_convert=notify)
    except ConversionError as err:
        hint = (
            "; without network, `--model demo` runs the bundled demo model"
            if "Hugging Face" in str(err)
            else ""
        )
        raise ParakeetError(f"{err}{hint}") from None
    return Parakeet(
        model_dir, name=str(model), dtype=getattr(mx, dtype), head=head, quantize=quantize
    )
