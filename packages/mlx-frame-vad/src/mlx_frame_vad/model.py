"""`FrameVAD`: NeMo's `EncDecFrameClassificationModel` (frame VAD, MarbleNet) on MLX.

Audio -> NeMo-exact log-mel (mlx-audio-frontend) -> `ConvASREncoder` -> per-frame classifier
-> softmax; the speech probability of a frame is class 1's, as NeMo's `generate_vad_frame_pred`
takes it. Every output frame is kept, as NeMo writes them (the encoder's output for the
feature frames NeMo pads the input to, `pad_to`, included).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from mlx_audio_frontend import LogMel, LogMelConfig

from .convasr import ConvASRConfig, ConvASREncoder
from .head import FrameClassifier, MLPConfig
from .postprocessing import PostProcessing, SpeechSegment, speech_segments

MODEL_CLASS = "nemo.collections.asr.models.classification_models.EncDecFrameClassificationModel"
SPEECH_CLASS = 1  # NeMo's frame-VAD inference reads probs[:, 1]


@dataclass(frozen=True)
class FrameVADConfig:
    """The parts of a NeMo frame-classification config that inference reads."""

    preprocessor: LogMelConfig
    encoder: ConvASRConfig
    head: MLPConfig
    labels: tuple[str, ...]

    @property
    def frame_seconds(self) -> float:
        """Seconds per output frame: feature hop times the encoder's stride (0.02 for MarbleNet)."""
        hop = self.preprocessor.hop_length * self.encoder.subsampling_factor
        return hop / self.preprocessor.sample_rate

    @classmethod
    def from_nemo(cls, cfg: Mapping[str, Any]) -> FrameVADConfig:
        """Build from a NeMo model config; ValueError (one line) for what is not supported."""
        if cfg.get("crop_or_pad_augment") is not None:
            raise ValueError("frame VAD with crop_or_pad_augment is not supported")
        labels = tuple(str(label) for label in cfg.get("labels") or ())
        if len(labels) < 2:
            raise ValueError("frame VAD config without at least two labels")
        return cls(
            preprocessor=LogMelConfig.from_nemo(cfg["preprocessor"]),
            encoder=ConvASRConfig.from_nemo(cfg["encoder"]),
            head=MLPConfig.from_nemo(cfg["decoder"], len(labels)),
            labels=labels,
        )


class FrameVAD(nn.Module):
    """Per-frame speech probabilities, and NeMo's speech segments from them."""

    def __init__(self, config: FrameVADConfig) -> None:
        super().__init__()
        self.config = config
        self.frontend = LogMel(config.preprocessor)
        self.encoder = ConvASREncoder(config.encoder)
        self.decoder = FrameClassifier(config.head)

    @classmethod
    def from_nemo(cls, cfg: Mapping[str, Any], weights: Mapping[str, mx.array]) -> FrameVAD:
        """The model of a converted checkpoint: its NeMo config and its (MLX-named) weights."""
        model = cls(FrameVADConfig.from_nemo(cfg))
        own = {k: v for k, v in weights.items() if k.startswith(("encoder.", "decoder."))}
        model.load_weights(list(own.items()), strict=True)
        model.eval()
        mx.eval(model.parameters())
        return model

    @classmethod
    def from_model_directory(cls, directory: Any) -> FrameVAD:
        """The model of a converted model directory (nemo-mlx-convert's `ModelDirectory`:
        `model_class`, `nemo_config`, `weights`); ValueError (one line) for another class."""
        if directory.model_class != MODEL_CLASS:
            short = str(directory.model_class).rsplit(".", 1)[-1] or "unknown"
            raise ValueError(
                f"{directory.path}: an {short} model, not a frame VAD "
                "(EncDecFrameClassificationModel)"
            )
        return cls.from_nemo(directory.nemo_config, mx.load(str(directory.weights)))

    def logits(self, features: mx.array, lengths: mx.array) -> mx.array:
        """(B, T, F) features and valid lengths -> (B, T', classes) per-frame outputs."""
        encoded, _ = self.encoder(features, lengths)
        return self.decoder(encoded)

    def speech_probabilities(self, audio: mx.array | np.ndarray) -> np.ndarray:
        """One recording's samples (at the model's rate) -> float32 speech probability per frame."""
        features, lengths = self.frontend(mx.array(audio, dtype=mx.float32).reshape(-1))
        probs = mx.softmax(self.logits(features, lengths).astype(mx.float32), axis=-1)
        return np.array(probs[0, :, SPEECH_CLASS])

    def segments(
        self,
        audio: mx.array | np.ndarray,
        params: PostProcessing | None = None,
        sample_rate: int | None = None,
    ) -> list[SpeechSegment]:
        """One recording's speech segments, in seconds, by NeMo's post-processing; the audio
        must be at the model's rate (ValueError, one line, for a `sample_rate` that is not)."""
        own = self.config.preprocessor.sample_rate
        if sample_rate is not None and sample_rate != own:
            raise ValueError(f"the VAD model takes {own} Hz audio, not {sample_rate} Hz")
        probs = self.speech_probabilities(audio)
        return speech_segments(probs, self.config.frame_seconds, params)
