"""`Diarizer`: audio -> speaker probabilities and turns, as NeMo's `diarize()` gives them."""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import numpy as np

from mlx_audio_frontend import AudioSource, LogMel, load_samples

from .config import StreamingConfig
from .live import LiveDiarization
from .model import Sortformer
from .postprocess import PostProcessing, Turn, speaker_turns
from .streaming import stream_probabilities


@dataclass
class Diarizer:
    """A Sortformer with its front end; offline or streaming as the model was trained.

    `streaming` holds the chunk settings a streaming model runs with (the config's, until a
    caller picks a latency with `streaming.with_chunks(...)`).
    """

    model: Sortformer
    frontend: LogMel
    streaming: StreamingConfig

    @property
    def num_speakers(self) -> int:
        return self.model.config.num_speakers

    @property
    def frame_seconds(self) -> float:
        """Seconds per output frame (80 ms for NVIDIA's checkpoints)."""
        hop = self.frontend.config.hop_length / self.frontend.config.sample_rate
        return hop * self.model.config.encoder.subsampling_factor

    def features(self, samples: np.ndarray) -> mx.array:
        """NeMo's `process_signal`, trimmed to the valid frames: (1, T, F).

        Offline models scale the input by 1 / (max + eps) first, as NeMo does (the maximum,
        not the absolute maximum); streaming models take it as it is.
        """
        samples = np.asarray(samples, np.float32)
        if not self.model.config.streaming_mode:
            peak = np.float32(samples.max()) + np.float32(self.model.config.eps)
            samples = (np.float32(1.0) / peak) * samples
        features, lengths = self.frontend(samples[None])
        return features[:, : int(lengths[0])]

    def probabilities(self, audio: AudioSource) -> np.ndarray:
        """Per-frame speaker probabilities (frames, speakers) of one recording."""
        samples = _samples(audio, self.frontend.config.sample_rate)
        features = self.features(samples)
        if self.model.config.streaming_mode:
            return stream_probabilities(self.model, features, self.streaming)
        lengths = mx.array([features.shape[1]], dtype=mx.int32)
        preds = self.model(features, lengths)
        mx.eval(preds)
        return np.array(preds[0])

    def live(self) -> LiveDiarization:
        """A live stream's diarization, fed the chunks of features as they arrive (NeMo's
        speaker-tagged streaming; `live.py`), with this diarizer's speaker-cache settings."""
        return LiveDiarization.start(self.model, self.streaming)

    def diarize(
        self, audio: AudioSource, postprocessing: PostProcessing | None = None
    ) -> list[Turn]:
        """Speaker turns of one recording, NeMo's `diarize()` lines as `Turn`s."""
        return speaker_turns(
            self.probabilities(audio),
            self.model.config.encoder.subsampling_factor,
            postprocessing,
        )


def _samples(audio: AudioSource, sample_rate: int) -> np.ndarray:
    """Any audio the front end loads (a file, bytes, samples at `sample_rate`), checked:
    empty or non-finite input is an `AudioError` with one line."""
    return load_samples(audio, sr=sample_rate)
