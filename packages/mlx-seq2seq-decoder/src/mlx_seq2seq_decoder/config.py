"""`DecoderConfig`: the geometry of NeMo's `TransformerDecoderNM` and its `TokenClassifier` head."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Every key NeMo's `transf_decoder` (its `config_dict`) and `head` sections may have: read
# here, or with no effect on inference. Any other key is refused by name, as every
# `from_nemo` of this project refuses an unknown key.
_DECODER_KEYS = {
    "vocab_size", "hidden_size", "inner_size", "num_layers", "num_attention_heads",
    "max_sequence_length", "pre_ln", "pre_ln_final_layer_norm", "hidden_act",
    "learn_positional_encodings",
    "num_token_types",  # token-type embeddings: NeMo's decoder never passes token types
    "embedding_dropout", "ffn_dropout", "attn_score_dropout", "attn_layer_dropout",
}  # fmt: skip
_OUTER_KEYS = {"_target_", "config_dict", "pre_ln_final_layer_norm", "encoder", "model_name",
               "pretrained", "library", "checkpoint_file"}  # fmt: skip
_HEAD_KEYS = {"_target_", "num_classes", "num_layers", "activation", "hidden_size",
              "log_softmax",  # ours gives log-probabilities, as NeMo's decoding takes them
              "dropout", "use_transformer_init"}  # fmt: skip


def _refuse_unknown(section: str, cfg: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"{section} config key {unknown[0]!r} is not supported")


@dataclass(frozen=True)
class DecoderConfig:
    """What a checkpoint's decoder is; `from_nemo` reads it from a NeMo model config.

    `memory_size` is the width of the encoder states the cross-attention reads; when it
    differs from `hidden_size` a linear `memory_proj` maps them (NeMo's
    `encoder_decoder_proj`).

    `num_classes` is the number of output classes, the rows of the token embedding and the
    outputs of the head (NeMo's `head.num_classes`): the tokenizer's `vocab_size` rounded up
    to a multiple of 8, as NeMo's `EncDecMultiTaskModel` builds the decoder, so it may count
    padding rows no token uses.
    """

    num_classes: int
    hidden_size: int = 1024
    inner_size: int = 4096
    num_layers: int = 4
    num_heads: int = 8
    max_sequence_length: int = 1024
    pre_ln: bool = True
    final_layer_norm: bool = True
    hidden_act: str = "relu"
    learn_positional_encodings: bool = False
    head_layers: int = 1
    head_activation: str = "relu"
    memory_size: int | None = None

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}"
            )
        for name, value in (
            ("hidden_act", self.hidden_act),
            ("head_activation", self.head_activation),
        ):
            if value not in ("relu", "gelu"):
                raise ValueError(f"{name} {value!r} is not supported (relu, gelu)")

    @classmethod
    def from_nemo(
        cls,
        cfg: Mapping[str, Any],
        memory_size: int | None = None,
        num_classes: int | None = None,
    ) -> DecoderConfig:
        """From a NeMo model config (the whole `cfg`, with `transf_decoder` and `head`).

        NeMo rounds the vocabulary up to a multiple of 8 when it builds the model; pass
        `num_classes` (the embedding's rows) when the config does not record it. A key that is
        neither read nor known to leave inference unchanged is refused with its name.
        """
        outer = cfg["transf_decoder"]
        decoder = dict(outer.get("config_dict", outer))
        if "config_dict" in outer:
            _refuse_unknown("transf_decoder", outer, _OUTER_KEYS)
        _refuse_unknown("transf_decoder.config_dict", decoder, _DECODER_KEYS)
        _refuse_unknown("head", cfg.get("head", {}) or {}, _HEAD_KEYS)
        # NeMo's `get_nemo_transformer(..., config_dict, pre_ln_final_layer_norm=True)` takes
        # this flag beside `config_dict`, never from inside it; a bare decoder config has it
        # in the one mapping there is.
        final_norm = outer.get("pre_ln_final_layer_norm", True)
        head = cfg.get("head", {}) or {}
        classes = num_classes or decoder.get("vocab_size") or head.get("num_classes")
        if not classes:
            raise ValueError("the decoder config names no vocab_size and the head no num_classes")
        hidden = int(decoder["hidden_size"])
        return cls(
            num_classes=int(classes),
            hidden_size=hidden,
            inner_size=int(decoder["inner_size"]),
            num_layers=int(decoder["num_layers"]),
            num_heads=int(decoder.get("num_attention_heads", 1)),
            max_sequence_length=int(decoder.get("max_sequence_length", 512)),
            pre_ln=bool(decoder.get("pre_ln", False)),
            final_layer_norm=bool(decoder.get("pre_ln", False)) and bool(final_norm),
            hidden_act=str(decoder.get("hidden_act", "relu")),
            learn_positional_encodings=bool(decoder.get("learn_positional_encodings", False)),
            head_layers=int(head.get("num_layers", 1)),
            head_activation=str(head.get("activation", "relu")),
            memory_size=memory_size if memory_size not in (None, hidden) else None,
        )
