"""`SortformerConfig`: what a NeMo `SortformerEncLabelModel` config says, for inference."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from mlx_conformer import ConformerConfig

_TRANSFORMER_KEYS = {
    "_target_", "num_layers", "hidden_size", "inner_size", "num_attention_heads", "hidden_act",
    "pre_ln", "pre_ln_final_layer_norm", "mask_future",
    "attn_score_dropout", "attn_layer_dropout", "ffn_dropout",  # training only
}  # fmt: skip
# sortformer_modules keys that only training reads
_MODULES_TRAINING = {"_target_", "dropout_rate", "causal_attn_rate", "causal_attn_rc",
                     "scores_add_rnd", "num_spks", "fc_d_model", "tf_d_model"}  # fmt: skip


@dataclass(frozen=True)
class TransformerConfig:
    """NeMo's `TransformerEncoder` (Sortformer's, after the FastConformer)."""

    num_layers: int
    hidden_size: int
    inner_size: int
    num_heads: int = 1
    hidden_act: str = "relu"
    pre_ln: bool = False
    final_layer_norm: bool = True  # NeMo builds it only when pre_ln

    @classmethod
    def from_nemo(cls, cfg: Mapping[str, Any]) -> TransformerConfig:
        unknown = sorted(set(cfg) - _TRANSFORMER_KEYS)
        if unknown:
            raise ValueError(f"transformer_encoder config key {unknown[0]!r} is not supported")
        if cfg.get("mask_future"):
            raise ValueError("transformer_encoder mask_future=true is not supported")
        if cfg.get("hidden_act", "relu") not in ("relu", "gelu"):
            raise ValueError(
                f"transformer_encoder hidden_act {cfg['hidden_act']!r} is not supported"
            )
        pre_ln = bool(cfg.get("pre_ln", False))
        return cls(
            num_layers=int(cfg["num_layers"]),
            hidden_size=int(cfg["hidden_size"]),
            inner_size=int(cfg["inner_size"]),
            num_heads=int(cfg.get("num_attention_heads", 1)),
            hidden_act=str(cfg.get("hidden_act", "relu")),
            pre_ln=pre_ln,
            final_layer_norm=pre_ln and bool(cfg.get("pre_ln_final_layer_norm", True)),
        )


@dataclass(frozen=True)
class StreamingConfig:
    """NeMo's `SortformerModules` streaming settings, in 80 ms (subsampled) frames.

    The chunk settings (`spkcache_len` ... `chunk_right_context`) are what users change for
    a latency (the model card's table); the rest steer the speaker-cache compression.
    """

    spkcache_len: int = 188
    fifo_len: int = 0
    chunk_len: int = 188
    spkcache_update_period: int = 188
    chunk_left_context: int = 1
    chunk_right_context: int = 1
    spkcache_sil_frames_per_spk: int = 3
    pred_score_threshold: float = 0.25
    max_index: int = 99999
    scores_boost_latest: float = 0.05
    sil_threshold: float = 0.2
    strong_boost_rate: float = 0.75
    weak_boost_rate: float = 1.5
    min_pos_scores_rate: float = 0.5

    def checked(self, num_speakers: int) -> StreamingConfig:
        """Itself, if NeMo's `_check_streaming_parameters` accepts it; else a ValueError."""
        minimum = {
            "spkcache_len": (1 + self.spkcache_sil_frames_per_spk) * num_speakers,
            "fifo_len": 0, "chunk_len": 1, "spkcache_update_period": 1,
            "chunk_left_context": 0, "chunk_right_context": 0, "spkcache_sil_frames_per_spk": 0,
        }  # fmt: skip
        for name, least in minimum.items():
            value = getattr(self, name)
            if not isinstance(value, int) or value < least:
                raise ValueError(f"streaming {name} must be an integer >= {least}, got {value!r}")
        return self

    def with_chunks(self, **settings: int) -> StreamingConfig:
        """A copy with other chunk settings (e.g. `chunk_len=6, chunk_right_context=7`)."""
        known = {f.name for f in fields(self)}
        for name in settings:
            if name not in known:
                raise ValueError(f"unknown streaming setting {name!r}")
        return replace(self, **settings)

    @classmethod
    def from_nemo(cls, cfg: Mapping[str, Any]) -> StreamingConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known - _MODULES_TRAINING)
        if unknown:
            raise ValueError(f"sortformer_modules config key {unknown[0]!r} is not supported")
        return cls(**{k: v for k, v in cfg.items() if k in known})


@dataclass(frozen=True)
class SortformerConfig:
    """A Sortformer diarizer: FastConformer, projection, Transformer, sigmoid speaker head."""

    encoder: ConformerConfig
    transformer: TransformerConfig
    num_speakers: int = 4
    streaming_mode: bool = False
    eps: float = 1e-3  # offline input scaling: audio / (max + eps)
    streaming: StreamingConfig = field(default_factory=StreamingConfig)

    @property
    def projected(self) -> bool:
        """NeMo drops `encoder_proj` when both widths agree."""
        return self.encoder.d_model != self.transformer.hidden_size

    @classmethod
    def from_nemo(cls, cfg: Mapping[str, Any]) -> SortformerConfig:
        """From a whole `SortformerEncLabelModel` config (model_config.yaml)."""
        modules = dict(cfg.get("sortformer_modules") or {})
        speakers = int(cfg.get("max_num_of_spks", modules.get("num_spks", 4)))
        if cfg.get("async_streaming"):
            raise ValueError("async_streaming=true is not supported (NeMo's synchronous update is)")
        if int(modules.get("num_spks", speakers)) != speakers:
            raise ValueError("sortformer_modules.num_spks differs from max_num_of_spks")
        config = cls(
            encoder=ConformerConfig.from_nemo(cfg["encoder"]),
            transformer=TransformerConfig.from_nemo(cfg["transformer_encoder"]),
            num_speakers=speakers,
            streaming_mode=bool(cfg.get("streaming_mode", False)),
            eps=float(cfg.get("eps", 1e-3)),
            streaming=StreamingConfig.from_nemo(modules),
        )
        if config.streaming_mode:
            config.streaming.checked(speakers)
        return config
