"""Live diarization: speaker probabilities of a stream as its chunks arrive, NeMo's live path.

NeMo labels a live stream's words with speakers in its speaker-tagged streaming ASR
(`SpeakerTaggedASR.perform_serial_streaming_stt_spk`, multispk_transcribe_utils.py): each
chunk of features that a cache-aware ASR model streams (`CacheAwareStreamingAudioBuffer`:
the chunk after its pre-encode cache) also goes to the streaming Sortformer's
`forward_streaming_step`, with the ASR's `drop_extra_pre_encoded` and no left or right
context; the speaker cache and FIFO carry over from chunk to chunk and the chunk's frames
give their probabilities. `LiveDiarization` is that step for one stream.

The features are the ASR's, as they arrive, not normalised over the recording: so the
probabilities differ from the offline `stream_probabilities`, which chunks features
computed (and normalised, `per_feature`) over the whole input first, as NeMo's `diarize()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mlx.core as mx
import numpy as np

from .config import StreamingConfig
from .model import Sortformer
from .streaming import StreamingState, step


@dataclass
class LiveDiarization:
    """One stream's speaker probabilities, chunk by chunk (NeMo's `forward_streaming_step`).

    `config` holds the speaker-cache settings (`spkcache_len`, `fifo_len`,
    `spkcache_update_period` ...); the chunks are the caller's. Build it with
    `Diarizer.live()`.
    """

    model: Sortformer
    config: StreamingConfig
    state: StreamingState
    _preds: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    _frames: int = 0

    @classmethod
    def start(cls, model: Sortformer, config: StreamingConfig) -> LiveDiarization:
        """A new stream; ValueError (one line) for a Sortformer not trained to stream."""
        if not model.config.streaming_mode:
            raise ValueError(
                "live speaker labels need a streaming Sortformer (streaming_mode, e.g. "
                "nvidia/diar_streaming_sortformer_4spk-v2), not an offline one"
            )
        config.checked(model.config.num_speakers)
        preds = np.zeros((256, model.config.num_speakers), np.float32)
        return cls(model, config, StreamingState.empty(model.config.encoder.d_model), preds)

    @property
    def num_features(self) -> int:
        return self.model.config.encoder.feat_in

    def step(self, features: mx.array | np.ndarray, drop: int = 0) -> np.ndarray:
        """A chunk's feature frames (T, F), its first `drop` subsampled frames dropped ->
        its (frames, speakers) probabilities; the state moves on."""
        features = mx.array(features, dtype=mx.float32)
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise ValueError(
                f"a chunk must be (frames, {self.num_features}) features, got {features.shape}"
            )
        preds = step(self.model, self.state, features[None], 0, 0, self.config, drop)
        end = self._frames + preds.shape[0]
        if end > self._preds.shape[0]:  # grown by doubling: a long stream copies little
            grown = np.zeros((max(end, 2 * self._preds.shape[0]), self._preds.shape[1]), np.float32)
            grown[: self._frames] = self._preds[: self._frames]
            self._preds = grown
        self._preds[self._frames : end] = preds
        self._frames = end
        return preds

    @property
    def probabilities(self) -> np.ndarray:
        """Every frame's probabilities so far (frames, speakers): NeMo's `total_preds`."""
        return self._preds[: self._frames]
