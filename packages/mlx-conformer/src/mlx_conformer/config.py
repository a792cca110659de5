"""`ConformerConfig`: the encoder settings NVIDIA's FastConformer checkpoints use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SUBSAMPLING = ("dw_striding", "striding")
ATTENTION = ("rel_pos", "rel_pos_local_attn")
CONV_NORMS = ("batch_norm", "layer_norm")
ATTENTION_STYLES = ("regular", "chunked_limited")  # chunked_limited: cache-aware streaming

# Keys of a NeMo encoder config that only matter for training (or are bookkeeping).
_TRAINING_ONLY = {
    "_target_",
    "dropout",
    "dropout_pre_encoder",
    "dropout_emb",
    "dropout_att",
    "stochastic_depth_drop_prob",
    "stochastic_depth_mode",
    "stochastic_depth_start_layer",
    "att_context_probs",
    "subsampling_conv_chunking_factor",  # a torch indexing work-around
    "use_pytorch_sdpa",
    "use_pytorch_sdpa_backends",
    "sync_max_audio_length",
}


@dataclass(frozen=True)
class ConformerConfig:
    """FastConformer encoder geometry, in NeMo's terms (`ConformerEncoder`'s arguments).

    `att_context_sizes` lists every (left, right) attention context the checkpoint was
    trained with (cache-aware streaming models have several); the first one is used.
    `subsampling_conv_channels` and `conv_context_size` are resolved to concrete values.
    """

    feat_in: int
    n_layers: int
    d_model: int
    n_heads: int = 4
    feat_out: int = -1
    subsampling: str = "striding"
    subsampling_factor: int = 4
    subsampling_conv_channels: int = -1
    ff_expansion_factor: int = 4
    self_attention_model: str = "rel_pos"
    att_context_sizes: tuple[tuple[int, int], ...] = ((-1, -1),)
    att_context_style: str = "regular"
    xscaling: bool = True
    untie_biases: bool = True
    pos_emb_max_len: int = 5000
    conv_kernel_size: int = 31
    conv_norm_type: str = "batch_norm"
    conv_context_size: tuple[int, int] | None = None
    use_bias: bool = True
    causal_downsampling: bool = False

    def __post_init__(self) -> None:
        if self.subsampling_conv_channels == -1:
            object.__setattr__(self, "subsampling_conv_channels", self.d_model)
        if self.conv_context_size is None:
            half = (self.conv_kernel_size - 1) // 2
            object.__setattr__(self, "conv_context_size", (half, half))
        _check("subsampling", self.subsampling, SUBSAMPLING)
        _check("self_attention_model", self.self_attention_model, ATTENTION)
        _check("conv_norm_type", self.conv_norm_type, CONV_NORMS)
        _check("att_context_style", self.att_context_style, ATTENTION_STYLES)
        if self.att_context_style == "chunked_limited":
            for left, right in self.att_context_sizes:
                if right < 0 and len(self.att_context_sizes) <= 1:
                    raise ValueError("chunked_limited attention needs a limited right context")
                if left > 0 and right >= 0 and left % (right + 1):
                    raise ValueError(
                        f"chunked_limited: left context {left} is not a multiple of the chunk {right + 1}"
                    )
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.subsampling_factor < 2 or self.subsampling_factor & (self.subsampling_factor - 1):
            raise ValueError(
                f"subsampling_factor must be a power of two >= 2, got {self.subsampling_factor}"
            )
        left, right = self.conv_context_size
        if left + right + 1 != self.conv_kernel_size:
            raise ValueError(
                f"conv_context_size {self.conv_context_size} does not fit kernel {self.conv_kernel_size}"
            )
        if self.self_attention_model == "rel_pos_local_attn" and (
            min(self.att_context) < 0 or max(self.att_context) < 1
        ):
            raise ValueError(
                f"rel_pos_local_attn needs att_context_size >= 0 on both sides and > 0 on one, got {list(self.att_context)}"
            )

    @property
    def att_context(self) -> tuple[int, int]:
        """The (left, right) attention context used for inference."""
        return self.att_context_sizes[0]

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def d_ff(self) -> int:
        return self.d_model * self.ff_expansion_factor

    @property
    def output_dim(self) -> int:
        return self.feat_out if self.feat_out > 0 else self.d_model

    @classmethod
    def from_nemo(cls, cfg: Mapping[str, Any]) -> ConformerConfig:
        """Build from the `encoder` section of a NeMo model config.

        Options we do not implement are refused with a message naming the option and what
        is supported, never ignored.
        """
        cfg = dict(cfg)
        target = str(cfg.get("_target_", "ConformerEncoder")).rsplit(".", 1)[-1]
        if target != "ConformerEncoder":
            raise ValueError(f"encoder {target!r} is not supported; supported: ConformerEncoder")
        for key, allowed in (
            ("reduction", (None,)),
            ("global_tokens", (0, None)),
            ("conv_context_style", ("regular", None)),
        ):
            if cfg.get(key) not in allowed:
                raise ValueError(f"encoder option {key}={cfg[key]!r} is not supported yet")
        if (
            cfg.pop("reduction_position", None) not in (None, -1)
            or cfg.pop("reduction_factor", 1) != 1
        ):
            raise ValueError(
                "encoder reduction (reduction_position / reduction_factor) is not supported yet"
            )
        cfg["causal_downsampling"] = bool(cfg.get("causal_downsampling") or False)
        for key in ("reduction", "global_tokens", "global_tokens_spacing",
                    "global_attn_separate", "conv_context_style"):  # fmt: skip
            cfg.pop(key, None)
        contexts = _contexts(cfg.pop("att_context_size", None))
        conv_context = cfg.pop("conv_context_size", None)
        kernel = int(cfg.get("conv_kernel_size", 31))
        if conv_context == "causal":
            conv_context = (kernel - 1, 0)
        elif conv_context is not None:
            conv_context = tuple(int(v) for v in conv_context)
        kwargs: dict[str, Any] = {"att_context_sizes": contexts, "conv_context_size": conv_context}
        fields = set(cls.__dataclass_fields__) - {"att_context_sizes", "conv_context_size"}
        for key, value in cfg.items():
            if key in _TRAINING_ONLY:
                continue
            if key not in fields:
                raise ValueError(f"encoder config key {key!r} is not supported")
            kwargs[key] = value
        return cls(**kwargs)


def _check(name: str, value: str, supported: tuple[str, ...]) -> None:
    if value not in supported:
        raise ValueError(f"{name}={value!r} is not supported; supported: {', '.join(supported)}")


def _contexts(value: Any) -> tuple[tuple[int, int], ...]:
    if not value:
        return ((-1, -1),)
    items = list(value)
    if isinstance(items[0], int):
        items = [items]
    contexts = tuple((int(c[0]), int(c[1])) for c in items)
    for context in contexts:
        if len(context) != 2:
            raise ValueError(f"att_context_size entries must be [left, right], got {context}")
    return contexts
