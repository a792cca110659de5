"""`LanguagePrompt`: the language-ID conditioning of NeMo's prompt models after the encoder.

NeMo's `EncDecRNNTBPEModelWithPrompt` and `EncDecHybridRNNTCTCBPEModelWithPrompt` (Nemotron
3.5 ASR) concatenate a one-hot of the target language's prompt index to every encoder frame
and project back with `prompt_kernel` = Linear(D + P, 2D) -> ReLU -> Linear(2D, D), offline
(`forward`) and in cache-aware streaming (`_apply_prompt_to_encoded`) alike. The prompt
indices come from the config's `model_defaults.prompt_dictionary` (locale -> index; several
aliases share one), `auto` letting the model find the language itself (NeMo's default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn

DEFAULT_LANGUAGE = "auto"  # NeMo's `target_lang` default


@dataclass(frozen=True)
class PromptConfig:
    """The prompt projection's geometry and the model's languages, in NeMo's terms."""

    d_model: int  # `model_defaults.enc_hidden`
    num_prompts: int  # the one-hot's width (`model_defaults.num_prompts`, NeMo's default 128)
    languages: tuple[tuple[str, int], ...]  # `prompt_dictionary` in its order

    def __post_init__(self) -> None:
        for name, index in self.languages:
            if not 0 <= index < self.num_prompts:
                raise ValueError(
                    f"prompt_dictionary[{name!r}] = {index} is outside the {self.num_prompts} prompts"
                )

    @property
    def hidden(self) -> int:
        """The projection's inner width: NeMo's 2 x enc_hidden."""
        return 2 * self.d_model

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.languages]

    def index(self, language: str) -> int:
        """`language`'s prompt index (KeyError for a language the model does not take)."""
        return dict(self.languages)[language]

    @classmethod
    def from_nemo(cls, nemo_config: Mapping[str, Any]) -> PromptConfig:
        """From a whole NeMo model config (`model_defaults`, and `num_prompts` where NeMo's
        constructor copied it to the top)."""
        defaults = nemo_config.get("model_defaults") or {}
        dictionary = defaults.get("prompt_dictionary")
        if not dictionary:
            raise ValueError("a prompt model's config has no model_defaults.prompt_dictionary")
        num_prompts = defaults.get("num_prompts", nemo_config.get("num_prompts", 128))
        d_model = defaults.get("enc_hidden", (nemo_config.get("encoder") or {}).get("d_model"))
        languages = tuple((str(k), int(v)) for k, v in dictionary.items())
        return cls(int(d_model), int(num_prompts), languages)


class LanguagePrompt(nn.Module):
    """Encoder output (B, T, D) and a prompt index per item -> conditioned output (B, T, D).

    Parameter names follow NeMo's `prompt_kernel` Sequential: `layers.0` and `layers.2` (its
    ReLU sits at 1); `PREFIX` is where a converted model keeps them."""

    PREFIX = "prompt_kernel."

    def __init__(self, config: PromptConfig) -> None:
        super().__init__()
        self.config = config
        d, p = config.d_model, config.num_prompts
        self.layers = [nn.Linear(d + p, config.hidden), nn.ReLU(), nn.Linear(config.hidden, d)]

    def __call__(self, encoded: mx.array, prompt: int | mx.array) -> mx.array:
        """`encoded` conditioned on `prompt` (one index for the batch, or one per item)."""
        batch, time, _ = encoded.shape
        index = mx.broadcast_to(mx.array(prompt, dtype=mx.int32).reshape(-1), (batch,))
        onehot = (mx.arange(self.config.num_prompts)[None, :] == index[:, None]).astype(
            encoded.dtype
        )
        onehot = mx.broadcast_to(onehot[:, None, :], (batch, time, self.config.num_prompts))
        x = mx.concatenate([encoded, onehot], axis=-1)
        for layer in self.layers:
            x = layer(x)
        return x.astype(encoded.dtype)

    @classmethod
    def from_nemo(
        cls, nemo_config: Mapping[str, Any], weights: Mapping[str, mx.array]
    ) -> LanguagePrompt | None:
        """The model's prompt projection, or None when its weights hold none: NeMo builds
        `prompt_kernel` for a prompt model whose config sets
        `model_defaults.initialize_prompt_feature`, and a checkpoint holds it then; its
        `prompt_kernel.*` tensors are what tells such a checkpoint, whatever its class name."""
        prefix = cls.PREFIX
        own = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        if not own:
            return None
        prompt = cls(PromptConfig.from_nemo(nemo_config))
        prompt.load_weights([(f"layers.{k}", v) for k, v in own.items()], strict=True)
        return prompt
