"""Speaker diarization on MLX, exact to NeMo: Sortformer (`SortformerEncLabelModel`).

`load(model_dir)` gives a `Diarizer`; `diarizer.probabilities(audio)` the per-frame speaker
probabilities, `diarizer.diarize(audio)` NeMo's post-processed speaker turns. Offline and
streaming (speaker cache and FIFO) models alike; `diarizer.live()` a live stream's
probabilities chunk by chunk, as NeMo's speaker-tagged streaming ASR computes them.
"""

import mlx_cpu_runtime.auto  # noqa: F401  (must run before anything imports mlx)

from .config import SortformerConfig, StreamingConfig, TransformerConfig
from .diarizer import Diarizer
from .live import LiveDiarization
from .loader import MODEL_CLASS, load
from .model import Sortformer
from .postprocess import PostProcessing, Turn, speaker_turns
from .resolving import DEFAULT_MODEL, STREAMING_MODEL, DiarizerChoice, load_model, resolve
from .streaming import StreamingState, stream_probabilities

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_CLASS",
    "STREAMING_MODEL",
    "Diarizer",
    "DiarizerChoice",
    "LiveDiarization",
    "PostProcessing",
    "Sortformer",
    "SortformerConfig",
    "StreamingConfig",
    "StreamingState",
    "TransformerConfig",
    "Turn",
    "load",
    "load_model",
    "resolve",
    "speaker_turns",
    "stream_probabilities",
]
