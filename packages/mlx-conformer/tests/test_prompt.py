"""`LanguagePrompt`: built from what a checkpoint holds; NeMo parity is in the root tests
(tests/test_streaming_cache_aware.py, nemotron-3.5-asr-streaming-0.6b's fixture)."""

from __future__ import annotations

import mlx.core as mx
import pytest

from mlx_conformer import LanguagePrompt, PromptConfig

CONFIG = {"model_defaults": {"enc_hidden": 8, "num_prompts": 4,
                             "prompt_dictionary": {"en-US": 0, "en": 0, "de-DE": 2, "auto": 3}}}  # fmt: skip


def test_a_checkpoint_without_prompt_tensors_has_no_prompt():
    assert (
        LanguagePrompt.from_nemo(CONFIG, {"encoder.layers.0.norm_out.weight": mx.ones(8)}) is None
    )


def test_the_projection_loads_nemo_names_and_keeps_the_shape():
    weights = {"prompt_kernel.0.weight": mx.zeros((16, 12)), "prompt_kernel.0.bias": mx.ones(16),
               "prompt_kernel.2.weight": mx.ones((8, 16)), "prompt_kernel.2.bias": mx.zeros(8)}  # fmt: skip
    prompt = LanguagePrompt.from_nemo(CONFIG, weights)
    assert prompt.config.names == ["en-US", "en", "de-DE", "auto"]
    out = prompt(mx.zeros((2, 5, 8)), mx.array([0, 3]))
    assert out.shape == (2, 5, 8)
    assert mx.allclose(out, mx.full((2, 5, 8), 16.0)).item()  # relu(1) summed over 16 inputs


def test_languages_are_the_dictionarys_and_indices_in_range():
    config = PromptConfig.from_nemo(CONFIG)
    assert (config.index("en"), config.index("auto"), config.hidden) == (0, 3, 16)
    with pytest.raises(KeyError):
        config.index("fr-FR")
    with pytest.raises(ValueError, match="outside the 4 prompts"):
        PromptConfig.from_nemo({"model_defaults": {"enc_hidden": 8, "num_prompts": 4,
                                                   "prompt_dictionary": {"auto": 101}}})  # fmt: skip
    with pytest.raises(ValueError, match=r"no model_defaults\.prompt_dictionary"):
        PromptConfig.from_nemo({"model_defaults": {"enc_hidden": 8}})
