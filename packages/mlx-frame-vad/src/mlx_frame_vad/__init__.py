"""Frame voice-activity detection on MLX: NeMo's `EncDecFrameClassificationModel` (MarbleNet,
Frame_VAD_Multilingual_MarbleNet_v2.0) with NeMo's post-processing into speech segments.

`ConvASREncoder` / `JasperBlock` are NeMo's convolutional encoder, written so that other
ConvASR models (QuartzNet, Jasper) can reuse them.
"""

import mlx_cpu_runtime.auto  # noqa: F401  (must run before anything imports mlx)

from .convasr import ConvASRConfig, ConvASREncoder, JasperBlock, JasperBlockConfig, MaskedConv1d
from .head import FrameClassifier, MLPConfig
from .loading import DEFAULT_MODEL, VadChoice, load, resolve
from .model import MODEL_CLASS, FrameVAD, FrameVADConfig
from .postprocessing import PostProcessing, SpeechSegment, speech_segments

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_CLASS",
    "ConvASRConfig",
    "ConvASREncoder",
    "FrameClassifier",
    "FrameVAD",
    "FrameVADConfig",
    "JasperBlock",
    "JasperBlockConfig",
    "MLPConfig",
    "MaskedConv1d",
    "PostProcessing",
    "SpeechSegment",
    "VadChoice",
    "load",
    "resolve",
    "speech_segments",
]
