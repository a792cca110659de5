"""`Conformer`: NeMo's `ConformerEncoder` (FastConformer) for inference."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from .causal import CausalConvSubsampling
from .config import ConformerConfig
from .layers import ConformerLayer
from .positional import RelativePositions, local_positions
from .subsampling import ConvSubsampling


class Conformer(nn.Module):
    """Features (B, T, feat_in) with lengths -> hidden states (B, T', d_model) with lengths.

    Parameter names are NeMo's (`pre_encode.conv.0.weight`, `layers.3.self_attn.linear_q.weight`,
    ...), with convolution weights channels-last; nemo-mlx-convert writes them so.
    """

    def __init__(self, config: ConformerConfig) -> None:
        super().__init__()
        self.config = config
        subsampling = CausalConvSubsampling if config.causal_downsampling else ConvSubsampling
        self.pre_encode = subsampling(config)
        self.layers = [ConformerLayer(config) for _ in range(config.n_layers)]
        if config.feat_out > 0:
            self.out_proj = nn.Linear(config.d_model, config.feat_out)
        self._xscale = math.sqrt(config.d_model) if config.xscaling else None
        self._positions = RelativePositions(config.d_model)
        self._local_positions = None
        self.change_attention_model()
        self.eval()

    def change_attention_model(
        self, self_attention_model: str | None = None, att_context_size: Sequence[int] | None = None
    ) -> None:
        """Switch between full (`rel_pos`) and local (`rel_pos_local_attn`) attention.

        NeMo's `change_attention_model`: the weights stay, the attention pattern changes.
        Local attention with e.g. [128, 128] keeps memory linear in the audio length,
        which is how NVIDIA suggests running long files through full-attention models.
        """
        model = self_attention_model or self.config.self_attention_model
        context = tuple(att_context_size) if att_context_size else self.config.att_context
        if len(context) != 2:
            raise ValueError(f"att_context_size must be [left, right], got {list(context)}")
        self.config = replace(
            self.config,
            self_attention_model=model,
            att_context_sizes=(context, *self.config.att_context_sizes[1:]),
        )
        local = model == "rel_pos_local_attn"
        self._local_positions = local_positions(*context, self.config.d_model) if local else None
        for layer in self.layers:
            layer.self_attn.set_context(context, local)

    PREFIX = "encoder."  # the encoder's tensors in a converted model's weights

    @classmethod
    def from_nemo(
        cls, nemo_config: Mapping[str, Any], weights: Mapping[str, mx.array]
    ) -> Conformer:
        """The encoder of a NeMo model: its config's `encoder` section, and the `encoder.*`
        tensors of the whole model's weights (MLX names and layouts, as nemo-mlx-convert
        writes them), loaded strictly."""
        encoder = cls(ConformerConfig.from_nemo(nemo_config["encoder"]))
        prefix = cls.PREFIX
        encoder.load_weights(
            [(k[len(prefix) :], v) for k, v in weights.items() if k.startswith(prefix)], strict=True
        )
        return encoder

    @classmethod
    def from_model_dir(cls, path: str | Path, dtype: mx.Dtype | None = None) -> Conformer:
        """The encoder of a converted model directory (nemo-mlx-convert's, or an MLX port's).

        Reads `config.json` (the NeMo config, under `nemo_config` in nemo-mlx-convert's
        format) and `model.safetensors`, then `from_nemo`.
        """
        path = Path(path)
        config = json.loads((path / "config.json").read_text())
        encoder = cls.from_nemo(
            config.get("nemo_config", config), mx.load(str(path / "model.safetensors"))
        )
        if dtype is not None:
            encoder.set_dtype(dtype)
        return encoder

    @property
    def subsampling_factor(self) -> int:
        return self.config.subsampling_factor

    def __call__(
        self, features: mx.array, lengths: mx.array | None = None
    ) -> tuple[mx.array, mx.array]:
        """Encode a zero-padded batch; `lengths` are valid feature frames (default: all)."""
        batch, frames, _ = features.shape
        if lengths is None:
            lengths = mx.full((batch,), frames, dtype=mx.int32)
        if self.config.att_context_style != "regular" and self._local_positions is None:
            from .streaming import dense_forward  # cache-aware models: NeMo's chunked mask

            return dense_forward(self, features, lengths)
        x, lengths = self.pre_encode(features, lengths)
        if self._xscale is not None:
            x = x * self._xscale
        time = x.shape[1]
        if self._local_positions is not None:
            pos_emb = self._local_positions.astype(x.dtype)
        else:
            pos_emb = self._positions(time, x.dtype)
        # No padding anywhere (one item as it came, or a batch of equal lengths): no masking.
        padded = bool(mx.any(lengths < time))
        pad_mask = (mx.arange(time)[None, :] >= lengths[:, None]) if padded else None
        attention_lengths = lengths if padded else None
        for layer in self.layers:
            x = layer(x, pos_emb, attention_lengths, pad_mask)
        if "out_proj" in self:
            x = self.out_proj(x)
        return x, lengths
