"""One utterance transcribed as its audio arrives, for the realtime and Wyoming servers.

`LiveTranscription` feeds a Parakeet model's `TranscriptionStream` piece by piece: every
step runs on the compute thread (the stream's MLX arrays live there), so many connections
share one model and their steps take turns. `BufferedTranscription` is for models that do
not stream (Canary): it keeps the samples and decodes them whole, through the model's
batcher, when the utterance ends. Both resample to the model's rate as the audio arrives."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from nemo_mlx_parakeet import EndOfUtterance
from nemo_mlx_parakeet.streaming import TranscriptionStream
from speech_transcript import Transcript

from .batching import Batcher
from .compute import Compute
from .models import Options, Recognizer
from .pcm import StreamResampler


class Transcription(Protocol):
    """An utterance being received: `add` pieces, then `finish` (or `discard`) once."""

    resampler: StreamResampler

    async def add(self, samples: np.ndarray) -> str: ...

    async def finish(self) -> str: ...

    def finish_delta(self, text: str) -> str: ...

    async def discard(self) -> None: ...


class LiveTranscription:
    """A Parakeet stream on the compute thread; `add` returns the newly final text."""

    def __init__(
        self, recognizer: Recognizer, compute: Compute, input_rate: int, language: str | None = None
    ) -> None:
        if recognizer.kind != "parakeet":
            raise ValueError(f"{recognizer.name} ({recognizer.kind}) does not stream")
        self.recognizer = recognizer
        # a language-prompt model's target language (checked by the caller; None: auto)
        self.language = language if recognizer.languages else None
        self.resampler = StreamResampler(input_rate, recognizer.sample_rate)
        self._compute = compute
        self._stream: TranscriptionStream | None = None  # made on the compute thread
        self.sent = ""  # the final text given out so far (the deltas joined)
        self._markers: list[EndOfUtterance] = []  # end-of-utterance markers not yet taken

    async def add(self, samples: np.ndarray) -> str:
        """The text that became final with this piece ("" if none)."""
        resampled = self.resampler.add(samples)
        if resampled.size == 0:
            return ""
        final = await self._compute.run(self._step, resampled)
        return self._delta(final)

    async def finish(self) -> str:
        """The whole transcript once the last piece is decoded; `sent` then equals it where
        the text only grew (the caller sends `finish_delta` first)."""
        tail = self.resampler.finish()
        return await self._compute.run(self._finish, tail)

    def finish_delta(self, text: str) -> str:
        """The end of `text` not yet given out as deltas."""
        return self._delta(text)

    def take_end_of_utterances(self) -> list[EndOfUtterance]:
        """The end-of-utterance markers (end-of-utterance checkpoints) that became final
        since the last call, times from the start of this utterance's audio."""
        taken, self._markers = self._markers, []
        return taken

    async def discard(self) -> None:
        """Drop the stream on the compute thread, where its arrays were made."""
        try:
            await self._compute.run(self._drop)
        except RuntimeError:  # the server is stopping: the thread, and the stream, are gone
            self._stream = None

    def _delta(self, final: str) -> str:
        if not final.startswith(self.sent):  # detokenisation changed earlier text: say nothing
            return ""
        delta, self.sent = final[len(self.sent) :], final
        return delta

    # on the compute thread
    def _open(self) -> TranscriptionStream:
        if self._stream is None:
            self._stream = self.recognizer.model.transcribe_stream(language=self.language)
        return self._stream

    def _step(self, samples: np.ndarray) -> str:
        update = self._open().add_audio(samples)
        self._markers.extend(update.end_of_utterances)
        return update.final_text

    def _finish(self, tail: np.ndarray) -> str:
        stream = self._open()
        if tail.size:
            self._markers.extend(stream.add_audio(tail).end_of_utterances)
        transcript: Transcript = stream.finalize()
        self._markers.extend(stream.last_update.end_of_utterances)
        self._stream = None
        return transcript.text

    def _drop(self) -> None:
        self._stream = None


class BufferedTranscription:
    """Samples kept until `finish`, then decoded whole by the model's batcher (no deltas)."""

    def __init__(
        self, recognizer: Recognizer, batcher: Batcher, input_rate: int, options: Options
    ) -> None:
        self.recognizer = recognizer
        self.resampler = StreamResampler(input_rate, recognizer.sample_rate)
        self._batcher = batcher
        self._options = options
        self._pieces: list[np.ndarray] = []

    async def add(self, samples: np.ndarray) -> str:
        self._pieces.append(self.resampler.add(samples))
        return ""

    async def finish(self) -> str:
        self._pieces.append(self.resampler.finish())
        signal, self._pieces = np.concatenate(self._pieces), []
        transcript = await self._batcher.transcribe(signal, self._options)
        return transcript.text

    def finish_delta(self, text: str) -> str:
        return ""

    async def discard(self) -> None:
        self._pieces = []
