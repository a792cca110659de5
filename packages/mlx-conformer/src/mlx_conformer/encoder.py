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
import numpy as np

from . import cpu_attention
from .cache import StreamCache
from .config import ConformerConfig
from .context import context_mask
from .layers import ConformerLayer
from .packing import PackedRows
from .positional import RelativePositions, SymmetricPositions, local_positions
from .speaker import SpeakerKernels, SpeakerTargets
from .subsampling import ConvSubsampling


class Conformer(nn.Module):
    """Features (B, T, feat_in) with lengths -> hidden states (B, T', d_model) with lengths.

    Parameter names are NeMo's (`pre_encode.conv.0.weight`, `layers.3.self_attn.linear_q.weight`,
    ...), with convolution weights channels-last; nemo-mlx-convert writes them so.
    """

    def __init__(self, config: ConformerConfig) -> None:
        super().__init__()
        self.config = config
        self.pre_encode = ConvSubsampling(config)
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

    def set_default_att_context_size(self, att_context_size: Sequence[int]) -> None:
        """NeMo's: which of the [left, right] contexts a multi-lookahead checkpoint was
        trained with runs offline (and first in `att_context_sizes`)."""
        context = tuple(att_context_size)
        sizes = self.config.att_context_sizes
        if context not in sizes:
            raise ValueError(
                f"att_context_size {list(context)} is not one the model was trained with: "
                f"{[list(c) for c in sizes]}"
            )
        others = tuple(c for c in sizes if c != context)
        self.config = replace(self.config, att_context_sizes=(context, *others))
        self.change_attention_model()

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
    def speaker_kernels(self) -> SpeakerKernels | None:
        """A multitalker model's speaker kernels (`attach_speaker_kernels`), else None."""
        return self.get("speaker_kernels")

    def attach_speaker_kernels(self, kernels: SpeakerKernels | None) -> None:
        """Run `kernels` before the layers they belong to, as NeMo's multitalker model hooks
        them onto its encoder (they are the model's, not the encoder config's)."""
        if kernels is not None:
            self["speaker_kernels"] = kernels

    @property
    def subsampling_factor(self) -> int:
        return self.config.subsampling_factor

    def __call__(
        self,
        features: mx.array,
        lengths: mx.array | None = None,
        cache: StreamCache | None = None,
        drop_pre_encoded: int = 0,
        pre_encoded: bool = False,
        speakers: SpeakerTargets | None = None,
    ) -> tuple[mx.array, mx.array]:
        """Encode a zero-padded batch; `lengths` are valid feature frames (default: all).

        Offline, or one chunk of cache-aware streams (`cache`, updated in place; see
        `mlx_conformer.streaming`): the chunk's first `drop_pre_encoded` subsampled frames
        (those of its pre-encode cache) are dropped, as NeMo's streaming step drops them.
        `pre_encoded`: `features` are already `pre_encode`'s output (B, T', d_model) with
        their lengths, NeMo's `bypass_pre_encode` (Sortformer's streaming re-encodes cached
        subsampled frames with each new chunk's).
        `speakers`: a multitalker model's target and background speaker activity per encoder
        frame (of this chunk, in a stream), for its `speaker_kernels` (`speaker.py`).
        """
        batch, frames, _ = features.shape
        if lengths is None:
            lengths = mx.full((batch,), frames, dtype=mx.int32)
        if pre_encoded:
            x, lengths = features, lengths.astype(mx.int32)
        else:
            x, lengths = self.pre_encode(features, lengths.astype(mx.int32))
        if drop_pre_encoded > 0:
            x = x[:, drop_pre_encoded:]
            lengths = mx.maximum(lengths - drop_pre_encoded, 0)
        if self._xscale is not None:
            x = x * self._xscale
        pos_emb, attention_lengths, mask, pad_mask = self._attention_inputs(x, lengths, cache)
        layer_caches = cache.layers if cache is not None else [None] * len(self.layers)
        kernels = self.speaker_kernels
        packed = self._packing(x, attention_lengths, mask, cache)
        if packed is not None:  # the layers over the valid frames only
            x, attention_lengths, pad_mask = packed.pack(x), None, None
        for index, (layer, layer_cache) in enumerate(zip(self.layers, layer_caches, strict=True)):
            if kernels is not None:
                x = kernels.before_layer(index, x, speakers)
            x = layer(x, pos_emb, attention_lengths, pad_mask, mask, layer_cache, packed)
        if packed is not None:
            x = packed.unpack(x)
        if cache is not None:
            cache.advance(x.shape[1])
        if "out_proj" in self:
            x = self.out_proj(x)
        return x, lengths

    def _packing(
        self, x: mx.array, lengths: mx.array | None, mask: mx.array | None,
        cache: StreamCache | None,
    ) -> PackedRows | None:  # fmt: skip
        """Packed rows (`packing`) for a padded batch where every part that mixes frames runs
        natively on the CPU: offline full attention with no explicit mask, a batch-norm
        convolution module, no speaker kernels, float32, enough frames (the native attention's
        `MIN_KEYS`); else None (the padded batch, masked)."""
        time = x.shape[1]
        layer = self.layers[0] if self.layers else None
        if (
            lengths is None  # no padding
            or layer is None
            or cache is not None
            or mask is not None
            or self._local_positions is not None
            or self.speaker_kernels is not None
            or time < cpu_attention.MIN_KEYS
            or layer.self_attn.context != (-1, -1)
            or not layer.conv.native_usable(x)
        ):
            return None
        try:
            valid = np.array(lengths)  # inside mx.compile nothing can be read: no packing
        except (ValueError, RuntimeError):
            return None
        return PackedRows.of(valid, time)

    def _attention_inputs(
        self, x: mx.array, lengths: mx.array, cache: StreamCache | None
    ) -> tuple[mx.array | SymmetricPositions, mx.array | None, mx.array | None, mx.array | None]:
        """Positions, lengths, key mask and padding mask for the layers.

        Full attention of the `regular` style and local attention (of any style, as NeMo
        builds no chunked mask for it) mask by lengths (nothing when no item is padded).
        NeMo's chunked style and streams get an explicit (B, T, C + T) mask of the keys
        each query sees, over the stream's C cached frames and the T new.
        """
        time = x.shape[1]
        chunked = self.config.att_context_style != "regular" and self._local_positions is None
        if cache is not None or chunked:
            return self._masked_inputs(x.dtype, time, lengths, cache)
        padded = bool(mx.any(lengths < time))
        pad_mask = (mx.arange(time)[None, :] >= lengths[:, None]) if padded else None
        if self._local_positions is None:
            pos_emb = self._positions(time, x.dtype)
        else:
            pos_emb = self._local_positions.astype(x.dtype)
        return pos_emb, lengths if padded else None, None, pad_mask

    def _masked_inputs(
        self, dtype: mx.Dtype, time: int, lengths: mx.array, cache: StreamCache | None
    ) -> tuple[SymmetricPositions, None, mx.array, mx.array]:
        if self._local_positions is not None:
            raise ValueError(
                "cache-aware streaming runs the model's own attention, not local attention "
                "(rel_pos_local_attn): call change_attention_model() to switch back"
            )
        if cache is not None:
            style, context = cache.style, cache.att_context
            valid = cache.valid_frames(lengths, time)
        else:
            style, context = self.config.att_context_style, self.config.att_context
            valid = mx.arange(time)[None, :] < lengths[:, None]
        cached = valid.shape[1] - time
        mask = valid[:, cached:, None] & valid[:, None, :]
        keep = context_mask(style, context, valid.shape[1])
        if keep is not None:
            mask = mask & keep[None, cached:]
        return self._positions(valid.shape[1], dtype), None, mask, ~valid[:, cached:]
