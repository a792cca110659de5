"""`CTCHead`: NeMo's `ConvASRDecoder` (a kernel-1 convolution + log-softmax) and its config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn

# Every key of NeMo's ConvASRDecoder section: read here, or with no effect on inference.
# Any other key is refused, as every `from_nemo` of this project refuses an unknown key.
_KEYS = {"_target_", "feat_in", "num_classes", "vocabulary", "add_blank", "temperature",
         "init_mode"}  # fmt: skip


@dataclass(frozen=True)
class CTCConfig:
    """`feat_in` encoder features in, `vocab_size` tokens plus blank (the last class) out.

    `vocab_size` is the tokenizer's vocabulary, without blank (NeMo's `ConvASRDecoder`
    `num_classes`, which also leaves blank out); `blank_id == vocab_size`."""

    feat_in: int
    vocab_size: int
    temperature: float = 1.0

    @property
    def blank_id(self) -> int:
        return self.vocab_size

    @classmethod
    def from_nemo(cls, decoder_cfg: Mapping[str, Any]) -> CTCConfig:
        """Build from a `ConvASRDecoder` config: `decoder` of a CTC model, `aux_ctc.decoder` of a hybrid."""
        unknown = sorted(set(decoder_cfg) - _KEYS)
        if unknown:
            raise ValueError(f"CTC decoder config key {unknown[0]!r} is not supported")
        target = str(decoder_cfg.get("_target_", "ConvASRDecoder")).rsplit(".", 1)[-1]
        if target != "ConvASRDecoder":
            raise ValueError(f"CTC decoder {target!r} is not supported; supported: ConvASRDecoder")
        if not decoder_cfg.get("add_blank", True):
            raise ValueError(
                "CTC decoders without a blank class (add_blank=false) are not supported"
            )
        vocabulary = decoder_cfg.get("vocabulary") or []
        size = decoder_cfg.get("num_classes", -1)
        size = len(vocabulary) if size in (-1, None) else int(size)
        return cls(
            feat_in=int(decoder_cfg["feat_in"]),
            vocab_size=size,
            temperature=float(decoder_cfg.get("temperature", 1.0)),
        )


class CTCHead(nn.Module):
    """Encoder frames (B, T, feat_in) -> log-probabilities (B, T, vocab + 1).

    The weight keeps NeMo's name `decoder_layers.0.weight`, channels-last (out, 1, in) as an
    MLX Conv1d stores it; applied as a matmul.
    """

    def __init__(self, config: CTCConfig) -> None:
        super().__init__()
        self.config = config
        self.decoder_layers = [nn.Conv1d(config.feat_in, config.vocab_size + 1, kernel_size=1)]

    @staticmethod
    def section(nemo_config: Mapping[str, Any], model_class: str) -> tuple[Mapping, str] | None:
        """Where a NeMo model keeps its CTC head: (config section, tensor-name prefix), or None.

        The model class decides, as NeMo's does: a hybrid RNNT-CTC model's head is its
        `aux_ctc.decoder` (tensors `ctc_decoder.*`), a CTC model's is its `decoder`
        (`decoder.*`); any other model has none, even with an `aux_ctc` section (some TDT
        checkpoints carry an unused one).
        """
        name = model_class.rsplit(".", 1)[-1]
        if name.startswith("EncDecHybridRNNTCTC"):
            return nemo_config["aux_ctc"]["decoder"], "ctc_decoder."
        if name.startswith("EncDecCTC"):
            return nemo_config["decoder"], "decoder."
        return None

    @classmethod
    def from_nemo(
        cls, nemo_config: Mapping[str, Any], weights: Mapping[str, mx.array], model_class: str
    ) -> CTCHead | None:
        """The CTC head of a NeMo model (None if it has none, see `section`): its config
        section and its tensors in the model's weights (MLX names and layouts, as
        nemo-mlx-convert writes them), loaded strictly."""
        found = cls.section(nemo_config, model_class)
        if found is None:
            return None
        config, prefix = found
        head = cls(CTCConfig.from_nemo(config))
        head.load_weights(
            [(k[len(prefix) :], v) for k, v in weights.items() if k.startswith(prefix)], strict=True
        )
        return head

    def __call__(self, encoder_output: mx.array) -> mx.array:
        conv = self.decoder_layers[0]
        weight = conv.weight.reshape(conv.weight.shape[0], -1)
        logits = mx.addmm(conv.bias, encoder_output, weight.T)
        if self.config.temperature != 1.0:
            logits = logits / self.config.temperature
        return nn.log_softmax(logits.astype(mx.float32), axis=-1)
