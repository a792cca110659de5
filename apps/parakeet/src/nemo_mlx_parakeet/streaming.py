"""Streaming transcription: audio in pieces of any size, text as it becomes known.

Two ways, chosen by the checkpoint:

- Cache-aware models (NVIDIA's streaming FastConformers: `att_context_style: chunked_limited`,
  causal subsampling and convolutions): NeMo's exact cache-aware step. `context` picks one
  of the checkpoint's `att_context_size` entries ([left, right] in encoder frames; the right
  context is the lookahead); chunks are right + 1 encoder frames, as the model was trained.
  Tokens equal NeMo's streaming output, and every token is final when it appears. A prompt
  model's frames are conditioned on the stream's language as NeMo's `conformer_stream_step`
  conditions them after `set_inference_prompt`.
- Offline-trained models: limited-context streaming. Audio is encoded in chunks of `chunk`
  seconds, each in a window with `context = (left, right)` encoder frames of audio before
  and after it (overlapping windows), and only the chunk's own frames are decoded, with
  the decoder's state carried from chunk to chunk. Latency is chunk + right context. The
  right context is also decoded, from a copy of that state, as a tentative tail, replaced
  at the next chunk. Features with utterance-wide normalisation (`per_feature`,
  `all_features`) are normalised over each window, which no stream can avoid; see the
  README for the measured difference to offline decoding.

End-of-utterance checkpoints (a vocabulary with `<EOU>` / `<EOB>`, parakeet_realtime_eou_120m-v1)
also report each marker as it becomes final: an `EndOfUtterance` in the update's
`end_of_utterances` and to the `on_end_of_utterance` callback, with NeMo's frame.

With a `diarizer` (Sortformer), a cache-aware transducer stream labels each word as it
appears, as NeMo's speaker-tagged streaming does (`live_speakers.py`; `speakers` of each
update); other streams are diarized offline when they end (NeMo has no live path there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import mlx.core as mx
import numpy as np

from mlx_asr_fusion import FusionModel
from mlx_audio_frontend import LogMel, conv_stack_length, feature_frames, subsampling_stages
from mlx_audio_frontend.streaming import StreamingLogMel, normalize_frames
from mlx_conformer import Conformer
from mlx_conformer.streaming import CacheAwareStreamer, streaming_config
from mlx_ctc_decoder import CTCHead
from mlx_ctc_decoder.streaming import GreedyCTCStream
from mlx_transducer import Transducer
from mlx_transducer.streaming import GreedyStream
from speech_transcript import TimedToken, Transcript

from .decoding import Head, Hypothesis, from_tokens
from .diarization import with_speakers_of
from .eou import EndOfUtterance, Markers
from .errors import ParakeetError
from .live_speakers import LiveSpeakers, decode_chunks
from .prompting import Language
from .tokenizer import Tokenizer

DEFAULT_CHUNK_SECONDS = 1.0
DEFAULT_LEFT_SECONDS = 10.0
DEFAULT_RIGHT_SECONDS = 1.0


class StreamingModel(Protocol):
    """What a stream reads of its model (`Parakeet` has it): the modules, the head, the
    model's rates, and its transcript assembly (`transcripts.Assembly`)."""

    head: Head
    frontend: LogMel
    encoder: Conformer
    transducer: Transducer | None
    ctc: CTCHead | None
    tokenizer: Tokenizer
    dtype: mx.Dtype
    sample_rate: int
    frame_seconds: float

    @property
    def cache_aware(self) -> bool: ...

    @property
    def context_choices(self) -> list[list[int]]: ...

    @property
    def assemble(self) -> Callable[[Hypothesis, float], Transcript]: ...

    def condition(self, encoded: mx.array, language: Language | None) -> mx.array: ...


@dataclass(frozen=True)
class StreamUpdate:
    """What is known after a piece of audio: final tokens so far, and a tentative tail.

    `tokens` never change once reported; `tentative` may be replaced by the next update.
    Times are seconds from the start of the stream.
    """

    text: str  # final text + tentative text
    final_text: str
    tentative_text: str
    tokens: list[TimedToken] = field(default_factory=list)
    tentative: list[TimedToken] = field(default_factory=list)
    new_tokens: list[TimedToken] = field(default_factory=list)
    audio_seconds: float = 0.0
    # markers that became final with this update (end-of-utterance checkpoints only)
    end_of_utterances: list[EndOfUtterance] = field(default_factory=list)
    # with a diarizer on a cache-aware model: the speaker of each word of `final_text`
    speakers: list[str] = field(default_factory=list)


class _Head:
    """The model's decoding head as a stream: transducer or CTC greedy, reading the encoder
    frames as the model conditions them (a prompt model's `language`)."""

    def __init__(
        self,
        model: StreamingModel,
        language: Language | None = None,
        fusion: Sequence[FusionModel] = (),
    ) -> None:
        self.kind = model.head
        self._condition = lambda encoded: model.condition(encoded[None], language)[0]
        if self.kind == "ctc":
            self._ctc = model.ctc
            self.stream = GreedyCTCStream(model.ctc.config.blank_id, fusion)
        else:
            self.stream = GreedyStream(model.transducer, fusion)
        self.encoder_frames = 0

    def feed(self, encoded: mx.array) -> None:
        if encoded.shape[0] == 0:
            return
        encoded = self._condition(encoded)
        if self.kind == "ctc":
            self.stream.feed(self._ctc(encoded[None])[0])
        else:
            self.stream.feed(encoded)
        self.encoder_frames += encoded.shape[0]

    def peek(self, encoded: mx.array) -> list:
        """Tokens the frames would add, without committing them (a deep enough copy)."""
        if encoded.shape[0] == 0:
            return []
        encoded = self._condition(encoded)
        tentative = self.stream.copy()
        if self.kind == "ctc":
            before = len(tentative.tokens)
            tentative.feed(self._ctc(encoded[None])[0])
            return tentative.tokens[before:]
        return tentative.feed(encoded)


class TranscriptionStream:
    """A context manager over one stream; build it with `Parakeet.transcribe_stream`."""

    def __init__(
        self,
        model: StreamingModel,
        context=None,
        chunk: float | None = None,
        on_end_of_utterance: Callable[[EndOfUtterance], None] | None = None,
        language: Language | None = None,
        fusion: Sequence[FusionModel] = (),
        diarizer=None,
    ) -> None:
        self.model = model
        self.diarizer, self.live = diarizer, None
        self._heard: list[np.ndarray] | None = [] if diarizer is not None else None
        self.markers = Markers(model.tokenizer)
        self.on_end_of_utterance = on_end_of_utterance
        self.end_of_utterances: list[EndOfUtterance] = []  # every marker so far
        self._utterance_start = 0  # index of the first final token after the last marker
        self.cache_aware = model.cache_aware
        self.language = language
        self.features = StreamingLogMel(model.frontend.config)
        self.head = _Head(model, language, fusion)
        self.factor = model.encoder.subsampling_factor
        self._samples = 0
        self._reported = 0  # decoded tokens already timed into `_final_timed`
        self._final_timed: list[TimedToken] = []
        self._tentative: list = []
        self._finished = False
        if self.cache_aware:
            if chunk is not None:
                raise ParakeetError(
                    "a cache-aware model streams in the chunks it was trained for: pass "
                    "context=[left, right] (one of its att_context_size entries), not chunk"
                )
            choices = model.context_choices
            chosen = list(context) if context is not None else choices[0]
            if chosen not in choices:
                raise ParakeetError(f"context {chosen} is not one of the model's {choices}")
            self.context = tuple(chosen)
            self.streaming = streaming_config(model.encoder, self.context)
            self._streamer = CacheAwareStreamer(model.encoder, self.streaming)
            self.chunk_frames = self.context[1] + 1
            if diarizer is not None:  # live labels: NeMo's speaker-tagged streaming
                self.live, self._heard = LiveSpeakers.start(model, diarizer, self.streaming), None
        else:
            seconds = model.frame_seconds
            chunk = DEFAULT_CHUNK_SECONDS if chunk is None else float(chunk)
            if chunk <= 0:
                raise ParakeetError(f"chunk must be positive, got {chunk:g} s")
            self.chunk_frames = max(1, round(chunk / seconds))
            if context is None:
                context = (
                    round(DEFAULT_LEFT_SECONDS / seconds),
                    round(DEFAULT_RIGHT_SECONDS / seconds),
                )
            left, right = (int(v) for v in context)
            if left < 0 or right < 0:
                raise ParakeetError(f"context must be two non-negative frame counts, got {context}")
            self.context = (left, right)
            self._raw: list[np.ndarray] = []  # feature frames kept, from `_raw_start` on
            self._raw_start = 0
            self._raw_count = 0  # feature frames received (global)
            self._next = 0  # first encoder frame of the next chunk

    # ------------------------------------------------------------------ protocol

    def __enter__(self) -> TranscriptionStream:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None and not self._finished:
            self.finalize()

    def add_audio(self, samples: np.ndarray | mx.array) -> StreamUpdate:
        """Add samples (mono float, the model's sample rate); returns the update."""
        if self._finished:
            raise ParakeetError("the stream is finalized")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._samples += samples.size
        if self._heard is not None:  # diarized offline when the stream ends
            self._heard.append(samples)
        features = self.features.add(samples)
        if self.cache_aware:
            decode_chunks(self.head, self._streamer.add_chunks(features), self.live)
        else:
            self._append(features)
            self._run(final=False)
        return self._update()

    def finalize(self) -> Transcript:
        """Flush everything; the stream's final transcript (times from its start)."""
        if self._finished:
            raise ParakeetError("the stream is finalized")
        features = self.features.finish()
        if self.cache_aware:
            decode_chunks(self.head, self._streamer.add_chunks(features), self.live)
            decode_chunks(self.head, self._streamer.finish_chunks(), self.live)
        else:
            valid = feature_frames(self._samples, self.model.frontend.config.hop_length,
                                   self.model.frontend.config.n_fft, self.model.frontend.config.exact_pad)  # fmt: skip
            self._append(features)
            self._raw_count = min(self._raw_count, valid)  # the masked last STFT frame is not audio
            self._run(final=True)
        self._tentative = []
        self._finished = True
        self.last_update = self._update()
        return self.transcript()

    def transcript(self) -> Transcript:
        """The final tokens so far as a transcript with words and segments."""
        hypothesis = from_tokens(self.head.stream.tokens, self.head.kind)
        result = self.model.assemble(hypothesis, self._samples / self.model.sample_rate)
        result.language = self.language.name if self.language is not None else None
        if self.live is not None:
            return self.live.label(result)
        return with_speakers_of(result, self.diarizer, self._heard or [])

    @property
    def final_frames(self) -> int:
        """Encoder frames decoded for good (their tokens will not change)."""
        return self.head.encoder_frames

    @property
    def seen_frames(self) -> int:
        """Encoder frames decoded at least tentatively."""
        return max(self.head.encoder_frames, getattr(self, "_seen", 0))

    # ------------------------------------------------------------------ internals

    def _append(self, features: mx.array) -> None:
        if features.shape[0]:
            self._raw.append(np.array(features))
            self._raw_count += features.shape[0]

    def _window(self, first: int, last: int) -> np.ndarray:
        """Feature frames [first, last) (global indices)."""
        if len(self._raw) > 1:
            self._raw = [np.concatenate(self._raw)]
        data = self._raw[0] if self._raw else np.zeros((0, 0), np.float32)
        return data[first - self._raw_start : last - self._raw_start]

    def _run(self, final: bool) -> None:
        """Encode and decode every chunk whose window is complete (all of them when final)."""
        left, right = self.context
        factor, chunk = self.factor, self.chunk_frames
        stages = subsampling_stages(factor)
        total_encoded = conv_stack_length(self._raw_count, stages) if final else None
        while True:
            first = self._next
            if final:
                if first >= total_encoded:
                    break
                last = min(first + chunk, total_encoded)
                end = min((last + right) * factor, self._raw_count)
            else:
                last = first + chunk
                end = (last + right) * factor
                if end > self._raw_count:
                    break
            start = max(0, first - left) * factor
            encoded = self._encode(start, min(end, self._raw_count))
            offset = first - start // factor
            self.head.feed(encoded[offset : offset + last - first])
            self._next = last
            self._trim(max(0, self._next - left) * factor)
            if not final:
                tail = encoded[offset + last - first :]
                self._tentative = self.head.peek(tail)
                self._seen = last + tail.shape[0]
        # (Between chunks the tentative tail stays the last window's right context: encoding a
        # window for every piece of audio would cost a window per piece.)

    def _encode(self, start: int, end: int) -> mx.array:
        features = mx.array(self._window(start, end))
        mode = self.model.frontend.config.normalize
        if not self.features.normalized:
            features = normalize_frames(features, mode)
        encoded, _ = self.model.encoder(features[None].astype(self.model.dtype))
        mx.eval(encoded)
        return encoded[0]

    def _trim(self, keep_from: int) -> None:
        """Forget feature frames before `keep_from`: no later window reads them."""
        if keep_from > self._raw_start and self._raw:
            data = np.concatenate(self._raw) if len(self._raw) > 1 else self._raw[0]
            drop = min(keep_from - self._raw_start, data.shape[0])
            self._raw = [data[drop:]]
            self._raw_start += drop

    def _timed(self, tokens: list, before: object | None) -> list[TimedToken]:
        """Timed tokens for `tokens`, which follow the final token `before` (or start).

        Token times depend on the token before (NeMo moves punctuation onto it), so that
        one is timed along and dropped: each update costs its new tokens, not the stream.
        """
        if not tokens:
            return []
        context = [before] if before is not None else []
        hypothesis = from_tokens(context + list(tokens), self.head.kind)
        transcript = self.model.assemble(hypothesis, self._samples / self.model.sample_rate)
        return transcript.tokens[len(context) :]

    def _markers(self, decoded: list, since: int) -> list[EndOfUtterance]:
        """End-of-utterance markers among the final tokens from `since` on, told to the
        callback; their frames count from the stream's start, as NeMo's."""
        if not any(t.id in self.markers.kinds for t in decoded[since:]):
            return []
        hypothesis = from_tokens(decoded, self.head.kind)
        events, self._utterance_start = self.markers.events(
            hypothesis.ids, hypothesis.frames, self.model.frame_seconds,
            self._utterance_start, since,
        )  # fmt: skip
        self.end_of_utterances.extend(events)
        if self.on_end_of_utterance is not None:
            for event in events:
                self.on_end_of_utterance(event)
        return events

    def _update(self) -> StreamUpdate:
        decoded = self.head.stream.tokens
        fresh = decoded[self._reported :]
        before = decoded[self._reported - 1] if self._reported else None
        new = self._timed(fresh, before)
        self._final_timed.extend(new)
        events = self._markers(decoded, self._reported)
        self._reported = len(decoded)
        last = decoded[-1] if decoded else None
        tentative = self._timed(self._tentative, last)
        tokenizer = self.model.tokenizer
        final_ids = [t.id for t in decoded]
        final_text = tokenizer.text(final_ids)
        text = tokenizer.text(final_ids + [t.id for t in self._tentative])
        return StreamUpdate(
            text=text,
            final_text=final_text,
            tentative_text=text[len(final_text) :] if text.startswith(final_text) else text,
            tokens=list(self._final_timed),
            tentative=tentative,
            new_tokens=new,
            audio_seconds=self._samples / self.model.sample_rate,
            end_of_utterances=events,
            speakers=self.live.speakers if self.live is not None else [],
        )
