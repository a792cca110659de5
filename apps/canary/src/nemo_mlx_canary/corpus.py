"""Manifest jobs (`speech_corpus`) with a Canary model: the transcriber they drive. The
Python API of `canary --manifest` is `speech_corpus.transcribe_manifest(manifest, output,
partial(transcriber, model, **options))`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from speech_corpus import ModelTranscriber

from .loading import DEFAULT_MODEL, load
from .prompt import PromptOptions


def transcriber(
    model: str | Path = DEFAULT_MODEL,
    *,
    dtype: str | None = None,
    cache_dir: str | Path | None = None,
    quantize: int | None = None,
    verbose: bool = False,
    **options: Any,
) -> ModelTranscriber:
    """Load `model` and bind `transcribe`'s `options` (source_lang, task, batch_size, ...);
    a module function, so that Ray actors can build their own from a `partial` of it.
    Languages, task and timestamps are checked here, before any audio is read."""
    loaded = load(model, dtype=dtype, cache_dir=cache_dir, verbose=verbose, quantize=quantize)
    prompt = {k: options[k] for k in ("source_lang", "target_lang", "task", "pnc", "timestamps")
              if k in options}  # fmt: skip
    loaded.prompt(PromptOptions(**prompt))
    return ModelTranscriber(loaded, options)
