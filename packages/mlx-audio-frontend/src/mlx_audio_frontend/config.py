"""`LogMelConfig`: the settings of NeMo's `AudioToMelSpectrogramPreprocessor`, in samples."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .filterbank import WINDOWS

Normalize = Literal["per_feature", "all_features"] | None

# Keys of a NeMo preprocessor config that change nothing at inference time.
_INFERENCE_NEUTRAL = {
    "_target_",
    "dither",  # only applied in training mode
    "nb_augmentation_prob",  # training-only narrow-band augmentation
    "nb_max_freq",
    "rng",
    "use_grads",
    "use_torchaudio",  # deprecated, ignored by NeMo
    "stft_conv",  # deprecated, ignored by NeMo
    "stft_exact_pad",  # deprecated, ignored by NeMo
}
_SUPPORTED_TARGETS = ("AudioToMelSpectrogramPreprocessor",)


@dataclass(frozen=True)
class LogMelConfig:
    """Log-mel settings with NeMo's defaults; lengths are in samples.

    `normalize` is "per_feature", "all_features", None, or a `FixedNormalization`.
    `pad_to` pads the frame axis to a multiple of itself (0: no padding).
    """

    sample_rate: int = 16000
    win_length: int = 320
    hop_length: int = 160
    n_fft: int | None = None
    window: str = "hann"
    n_mels: int = 64
    preemph: float | None = 0.97
    lowfreq: float = 0.0
    highfreq: float | None = None
    log: bool = True
    log_zero_guard_type: Literal["add", "clamp"] = "add"
    log_zero_guard_value: float | Literal["tiny", "eps"] = 2**-24
    normalize: Normalize | FixedNormalization = "per_feature"
    pad_to: int = 16
    pad_value: float = 0.0
    mag_power: float = 2.0
    exact_pad: bool = False
    frame_splicing: int = 1
    mel_norm: Literal["slaney"] | None = "slaney"

    def __post_init__(self) -> None:
        if self.win_length <= 0 or self.hop_length <= 0:
            raise ValueError("win_length and hop_length must be positive")
        if self.n_fft is None:
            object.__setattr__(self, "n_fft", 2 ** math.ceil(math.log2(self.win_length)))
        if self.window not in WINDOWS:
            raise ValueError(f"window {self.window!r} is not supported; use one of {WINDOWS}")
        if self.exact_pad and self.hop_length % 2 == 1:
            raise ValueError("exact_pad needs an even hop_length (as in NeMo)")
        if self.log_zero_guard_type not in ("add", "clamp"):
            raise ValueError(
                f"log_zero_guard_type must be 'add' or 'clamp', got {self.log_zero_guard_type!r}"
            )
        if isinstance(self.log_zero_guard_value, str) and self.log_zero_guard_value not in (
            "tiny",
            "eps",
        ):
            raise ValueError(
                f"log_zero_guard_value must be a number, 'tiny' or 'eps', got {self.log_zero_guard_value!r}"
            )
        if self.frame_splicing < 1:
            raise ValueError("frame_splicing must be >= 1")
        if isinstance(self.pad_to, bool) or not isinstance(self.pad_to, int) or self.pad_to < 0:
            # NeMo's own preprocessor fails to build with pad_to="max".
            raise ValueError(f"pad_to must be a non-negative integer, got {self.pad_to!r}")

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def num_features(self) -> int:
        """Features per frame after frame splicing."""
        return self.n_mels * self.frame_splicing

    @classmethod
    def from_nemo(cls, cfg: Mapping[str, Any]) -> LogMelConfig:
        """Build from a NeMo `preprocessor` config (as in `model_config.yaml`).

        Window sizes may be given in seconds (`window_size`, `window_stride`) or samples
        (`n_window_size`, `n_window_stride`), as NeMo allows. Unknown keys are an error so
        that a preprocessor we do not reproduce is never run silently.
        """
        cfg = dict(cfg)
        target = str(cfg.get("_target_", "AudioToMelSpectrogramPreprocessor"))
        if target.rsplit(".", 1)[-1] not in _SUPPORTED_TARGETS:
            raise ValueError(
                f"preprocessor {target!r} is not supported; supported: {', '.join(_SUPPORTED_TARGETS)}"
            )
        sample_rate = int(cfg.pop("sample_rate", 16000))
        win = _samples(cfg, "window_size", "n_window_size", sample_rate, default_seconds=0.02)
        hop = _samples(cfg, "window_stride", "n_window_stride", sample_rate, default_seconds=0.01)
        known = {
            "n_fft": "n_fft",
            "window": "window",
            "features": "n_mels",
            "nfilt": "n_mels",
            "preemph": "preemph",
            "lowfreq": "lowfreq",
            "highfreq": "highfreq",
            "log": "log",
            "log_zero_guard_type": "log_zero_guard_type",
            "log_zero_guard_value": "log_zero_guard_value",
            "normalize": "normalize",
            "pad_to": "pad_to",
            "pad_value": "pad_value",
            "mag_power": "mag_power",
            "exact_pad": "exact_pad",
            "frame_splicing": "frame_splicing",
            "mel_norm": "mel_norm",
        }
        kwargs: dict[str, Any] = {"sample_rate": sample_rate, "win_length": win, "hop_length": hop}
        for key, value in cfg.items():
            if key in _INFERENCE_NEUTRAL:
                continue
            if key not in known:
                raise ValueError(f"preprocessor config key {key!r} is not supported")
            kwargs[known[key]] = value
        kwargs["normalize"] = _normalize_mode(kwargs.get("normalize", "per_feature"))
        if "window" in kwargs and kwargs["window"] in ("none", None):
            raise ValueError(
                "preprocessor window 'none' is not supported (NeMo cannot run it either)"
            )
        if isinstance(kwargs.get("log_zero_guard_value"), str):
            value = kwargs["log_zero_guard_value"]
            if value not in ("tiny", "eps"):
                kwargs["log_zero_guard_value"] = float(value)
        return cls(**kwargs)


@dataclass(frozen=True)
class FixedNormalization:
    """NeMo's `normalize: {fixed_mean: [...], fixed_std: [...]}`: one mean and std per mel bin."""

    mean: tuple[float, ...] = field(default_factory=tuple)
    std: tuple[float, ...] = field(default_factory=tuple)


def _samples(
    cfg: dict[str, Any],
    seconds_key: str,
    samples_key: str,
    sample_rate: int,
    default_seconds: float,
) -> int:
    seconds = cfg.pop(seconds_key, None)
    samples = cfg.pop(samples_key, None)
    if seconds and samples:
        raise ValueError(f"preprocessor config gives both {seconds_key} and {samples_key}")
    if samples:
        return int(samples)
    return int((seconds or default_seconds) * sample_rate)


def _normalize_mode(value: Any) -> Normalize | FixedNormalization:
    """NeMo normalises only for these three spellings; anything else (e.g. "NA") means none."""
    if isinstance(value, Mapping) and "fixed_mean" in value and "fixed_std" in value:
        return FixedNormalization(
            tuple(float(v) for v in value["fixed_mean"]),
            tuple(float(v) for v in value["fixed_std"]),
        )
    if value in ("per_feature", "all_features"):
        return value
    return None
