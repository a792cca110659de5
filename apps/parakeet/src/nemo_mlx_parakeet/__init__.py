"""Parakeet speech recognition on MLX: NVIDIA's TDT, RNNT, CTC and hybrid checkpoints,
with NeMo's exact output.

>>> import nemo_mlx_parakeet as parakeet
>>> model = parakeet.load("nvidia/parakeet-tdt-0.6b-v3")       # doctest: +SKIP
>>> result = model.transcribe("talk.mp3")                        # doctest: +SKIP
>>> result.text, result.words[0].start, result.sentences          # doctest: +SKIP
"""

import mlx_cpu_runtime.auto  # noqa: F401  (must run before anything imports mlx)

from mlx_audio_frontend import AudioError
from speech_transcript import Segment, TimedToken, Transcript, Word

from .corpus import transcriber
from .diarization import load_diarizer
from .eou import EndOfUtterance
from .errors import ParakeetError
from .loading import DEFAULT_MODEL, load
from .model import DEFAULT_LANGUAGE, Parakeet
from .multitalker import SpeakerTranscript, transcribe_speakers
from .streaming import StreamUpdate, TranscriptionStream

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_LANGUAGE",
    "DEFAULT_MODEL",
    "AudioError",
    "EndOfUtterance",
    "Parakeet",
    "ParakeetError",
    "Segment",
    "SpeakerTranscript",
    "StreamUpdate",
    "TimedToken",
    "Transcript",
    "TranscriptionStream",
    "Word",
    "load",
    "load_diarizer",
    "transcribe_speakers",
    "transcriber",
]
