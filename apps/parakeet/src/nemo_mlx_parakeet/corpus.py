"""Manifest jobs (`speech_corpus`) with a Parakeet model: the transcriber they drive. The
Python API of `parakeet --manifest` is `speech_corpus.transcribe_manifest(manifest, output,
partial(transcriber, model, **options))`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from speech_corpus import ModelTranscriber

from .loading import DEFAULT_MODEL, load


def transcriber(
    model: str | Path = DEFAULT_MODEL,
    *,
    dtype: str | None = None,
    head: str = "auto",
    cache_dir: str | Path | None = None,
    quantize: int | None = None,
    attention_budget: int | None = None,
    local_attention: tuple[int, int] | None = None,
    verbose: bool = False,
    **options: Any,
) -> ModelTranscriber:
    """Load `model` and bind `transcribe`'s `options` (batch_size, decoding, language, ...);
    a module function, so that Ray actors can build their own from a `partial` of it."""
    loaded = load(model, dtype=dtype, head=head, cache_dir=cache_dir, verbose=verbose,
                  quantize=quantize)  # fmt: skip
    loaded.language(options.get("language"))  # an unknown language fails here, in one line
    if attention_budget is not None:
        loaded.attention_budget = attention_budget
    if local_attention:
        loaded.encoder.change_attention_model("rel_pos_local_attn", local_attention)
    return ModelTranscriber(loaded, options)
