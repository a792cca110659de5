"""NeMo-exact audio loading and log-mel features on MLX.

`load_audio` turns a file, bytes or an array into 16 kHz mono float32 samples the way
NeMo's loader does; `LogMel` / `log_mel` reproduce NeMo's `AudioToMelSpectrogramPreprocessor`;
the functions of `frames` give NeMo's lengths of features and subsampled frames.
"""

import mlx_cpu_runtime.auto  # noqa: F401  (must run before anything imports mlx)

from .audio import AudioSource, ffmpeg_available, load_audio, load_samples, resample
from .config import FixedNormalization, LogMelConfig
from .errors import (
    AudioDecodeError,
    AudioError,
    AudioFileNotFoundError,
    EmptyAudioError,
    InvalidSamplesError,
    MissingDecoderError,
)
from .filterbank import analysis_window, mel_filterbank
from .frames import (
    ConvStage,
    conv_stack_length,
    feature_frames,
    stft_frames,
    subsampling_stages,
)
from .logmel import LogMel, log_mel

__version__ = "0.1.0"

__all__ = [
    "AudioDecodeError",
    "AudioError",
    "AudioFileNotFoundError",
    "AudioSource",
    "ConvStage",
    "EmptyAudioError",
    "FixedNormalization",
    "InvalidSamplesError",
    "LogMel",
    "LogMelConfig",
    "MissingDecoderError",
    "analysis_window",
    "conv_stack_length",
    "feature_frames",
    "ffmpeg_available",
    "load_audio",
    "load_samples",
    "log_mel",
    "mel_filterbank",
    "resample",
    "stft_frames",
    "subsampling_stages",
]
