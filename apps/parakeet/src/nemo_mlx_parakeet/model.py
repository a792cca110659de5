"""`Parakeet`: a loaded Parakeet model (TDT, RNNT, CTC or hybrid TDT-CTC) that transcribes."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import mlx.core as mx
import numpy as np

from mlx_audio_frontend import AudioError, LogMel, LogMelConfig, load_audio
from mlx_conformer import Conformer, quantize_linears
from mlx_ctc_decoder import CTCHead
from mlx_ctc_decoder import beam_search as ctc_beam
from mlx_ctc_decoder import greedy_decode as ctc_greedy
from mlx_transducer import Transducer
from nemo_mlx_convert import ModelDirectory
from speech_transcript import Segment, TimedToken, Transcript, Word, seconds_at

from .errors import ParakeetError
from .merging import merge_hypotheses
from .streaming import TranscriptionStream
from .timestamps import Span, segment_spans, token_spans, word_spans
from .tokenizer import Tokenizer

TRANSDUCER_CLASS = "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel"
CTC_CLASS = "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE"
HYBRID_CLASS = "nemo.collections.asr.models.hybrid_rnnt_ctc_bpe_models.EncDecHybridRNNTCTCBPEModel"
SUPPORTED = (TRANSDUCER_CLASS, CTC_CLASS, HYBRID_CLASS)
MIN_SECONDS = 1.0  # NeMo's transcribe pads shorter audio to this, half on each side

Head = Literal["tdt", "rnnt", "ctc"]
AudioInput = str | Path | bytes | np.ndarray | mx.array


# Long inputs run whole, as NeMo runs them: with full attention while NeMo's full attention
# would hold at most this many bytes of scores, batch x heads x T'^2 x 4 (T' encoder frames of
# the batch's longest input, float32 scores whatever the dtype, so that the choice, which
# changes the output, is the same on every device). 10 GiB is where NVIDIA puts the end of
# full attention for parakeet-tdt-0.6b-v2 / v3 (8 heads): ~24 minutes (24.4) on an 80 GB
# GPU. Beyond it the batch runs with NeMo's long-audio recipe, LONG_AUDIO_ATTENTION.
FULL_ATTENTION_BUDGET = 10 * 2**30
SCORE_BYTES = 4
LONG_AUDIO_ATTENTION = ("rel_pos_local_attn", (256, 256))  # change_attention_model's arguments
# Cache-aware checkpoints keep their attention, whose offline form (NeMo's, with its (T, T)
# chunked mask) takes memory quadratic in the length: beyond the budget they go in chunks.
CACHE_AWARE_CHUNK_SECONDS = 240.0
OVERLAP_SECONDS = 15.0  # overlap of consecutive chunks
FRAME_BUCKET = 128  # feature frames: padded batch lengths on a GPU are multiples of this
BATCH_SECONDS = 240.0  # a batch's attention memory at most that of one input this long


@dataclass(frozen=True)
class _Piece:
    """One input, or a chunk of one: starting `offset` encoder frames into it, after `lead`
    seconds of padding in front (NeMo's padding of short inputs). A whole input keeps its
    samples (its features are computed with the rest of its batch, in one front-end call);
    a chunk keeps the feature frames cut from its input's features."""

    item: int
    offset: int
    lead: float
    feature_frames: int  # valid feature frames
    signal: np.ndarray | None = None
    features: mx.array | None = None  # (feature_frames, n_mels)


@dataclass(frozen=True)
class Hypothesis:
    """Decoder output for one utterance, before text: ids, frames, durations, confidences."""

    ids: list[int]
    frames: list[int]
    durations: list[int] | None
    confidences: list[float]


class Parakeet:
    """A Parakeet checkpoint ready to transcribe. Build it with `parakeet.load(...)`."""

    def __init__(
        self,
        model_dir: ModelDirectory,
        name: str,
        dtype: mx.Dtype,
        head: str = "auto",
        quantize: int | None = None,
    ) -> None:
        cfg = model_dir.nemo_config
        model_class = model_dir.model_class
        if model_class not in SUPPORTED:
            if "MultiTask" in model_class:
                raise ParakeetError(
                    f"{name} is a Canary model ({model_class.rsplit('.', 1)[-1]}): use the `canary` command"
                )
            raise ParakeetError(f"{name}: model class {model_class!r} is not a Parakeet model")
        self.name = name
        self.dtype = dtype
        self.config = cfg
        weights = mx.load(str(model_dir.weights))
        self.frontend = LogMel(LogMelConfig.from_nemo(cfg["preprocessor"]))
        self.encoder = Conformer.from_nemo(cfg, weights)
        self.transducer: Transducer | None = None
        if model_class in (TRANSDUCER_CLASS, HYBRID_CLASS):
            self.transducer = Transducer.from_nemo(cfg, weights)
        # a hybrid's head is `ctc_decoder.*`, a CTC model's `decoder.*`: the class decides
        self.ctc: CTCHead | None = CTCHead.from_nemo(cfg, weights, model_class)
        if dtype != mx.float32:
            for module in (self.encoder, self.transducer, self.ctc):
                if module is not None:
                    module.set_dtype(dtype)
        if quantize is not None:  # the encoder's and the transducer's linear layers
            for module in (self.encoder, self.transducer):
                if module is not None:
                    quantize_linears(module, quantize)
        self.tokenizer = Tokenizer.from_model_directory(model_dir)
        self.head = self._choose_head(head)
        decoding = cfg.get("decoding") or {}
        self.segment_separators = tuple(decoding.get("segment_seperators") or (".", "?", "!"))
        self.segment_gap = decoding.get("segment_gap_threshold")
        stride = cfg["preprocessor"].get("window_stride") or cfg["preprocessor"][
            "n_window_stride"
        ] / cfg["preprocessor"].get("sample_rate", 16000)
        self.frame_seconds = float(stride) * self.encoder.subsampling_factor
        self.sample_rate = int(cfg["preprocessor"].get("sample_rate", 16000))
        self.bucket_frames: bool | None = None  # pad batches to a few lengths; None: on a GPU
        # Bytes of full-attention scores a batch may take (`attention_for`); None: no limit.
        self.attention_budget: int | None = FULL_ATTENTION_BUDGET
        # Called with a line when a batch switches to the long-audio recipe (--verbose).
        self.notice: Callable[[str], None] | None = None

    def _choose_head(self, head: str) -> Head:
        transducer_kind: Head = (
            "tdt" if self.transducer is not None and self.transducer.config.is_tdt else "rnnt"
        )
        if head in ("auto", "tdt", "rnnt", "transducer"):
            if self.transducer is not None and head in ("auto", "transducer", transducer_kind):
                return transducer_kind
            if head == "auto" and self.ctc is not None:
                return "ctc"
            raise ParakeetError(f"{self.name} has no {head} head")
        if head == "ctc":
            if self.ctc is None:
                raise ParakeetError(f"{self.name} has no CTC head")
            return "ctc"
        raise ParakeetError(f"unknown head {head!r}; choose tdt, rnnt or ctc")

    @property
    def cache_aware(self) -> bool:
        """A cache-aware streaming checkpoint (streams in the chunks it was trained for)."""
        return self.encoder.config.att_context_style == "chunked_limited"

    @property
    def context_choices(self) -> list[list[int]]:
        """The [left, right] attention contexts the checkpoint was trained with."""
        return [list(c) for c in self.encoder.config.att_context_sizes]

    # ----------------------------------------------------------------- transcription

    def transcribe_stream(self, context=None, chunk: float | None = None) -> TranscriptionStream:
        """A stream to feed with `add_audio(samples)`; use it as a context manager.

        Cache-aware streaming models: `context` is one of the checkpoint's
        `att_context_size` entries [left, right] (default: its first); NeMo's exact
        cache-aware step. Other models: `chunk` seconds per step (default 1.0) and
        `context = (left, right)` encoder frames around each chunk (default 10 s / 1 s).
        """
        return TranscriptionStream(self, context=context, chunk=chunk)

    def transcribe(
        self,
        audio: AudioInput | Sequence[AudioInput],
        *,
        sample_rate: int | None = None,
        batch_size: int = 8,
        decoding: Literal["greedy", "beam"] = "greedy",
        beam_size: int = 4,
        length_penalty: float = 1.0,
        chunk_duration: float | None = None,
        overlap_duration: float = OVERLAP_SECONDS,
    ) -> Transcript | list[Transcript]:
        """Transcribe one input (a path, encoded bytes, or samples) or a list of them.

        Arrays are taken at `sample_rate` (default: the model's 16 kHz). A list returns a
        list in the same order. A bad input raises `AudioError` naming it; use
        `transcribe_many` to report and skip bad inputs instead. Every input runs whole:
        with full attention, or, where that would exceed `attention_budget`, with NeMo's
        long-audio recipe (see `attention_for`); times are exact either way (cache-aware
        checkpoints beyond the budget go in chunks, whose tokens are merged). Inputs longer
        than `chunk_duration` seconds, if given, are transcribed in overlapping chunks of it
        whose tokens are merged. Transducer beam search ranks its n-best by
        score / length ** `length_penalty` (NeMo's `score_norm`: 1.0).
        """
        single = not isinstance(audio, (list, tuple))
        items = [audio] if single else list(audio)
        results: list[Transcript] = [None] * len(items)  # type: ignore[list-item]
        for index, result in self.transcribe_many(items, sample_rate=sample_rate, batch_size=batch_size,
                                                  decoding=decoding, beam_size=beam_size,
                                                  length_penalty=length_penalty, chunk_duration=chunk_duration, overlap_duration=overlap_duration):  # fmt: skip
            if isinstance(result, AudioError):
                raise result
            results[index] = result
        return results[0] if single else results

    def transcribe_many(
        self,
        items: Sequence[AudioInput],
        *,
        sample_rate: int | None = None,
        batch_size: int = 8,
        decoding: Literal["greedy", "beam"] = "greedy",
        beam_size: int = 4,
        length_penalty: float = 1.0,
        chunk_duration: float | None = None,
        overlap_duration: float = OVERLAP_SECONDS,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[tuple[int, Transcript | AudioError]]:
        """Yield (index, transcript) for each input, or (index, AudioError) for one that
        cannot be read. Inputs are decoded in batches of similar length; `progress` is
        called with the number of inputs finished."""
        if batch_size < 1:
            raise ParakeetError(f"batch_size must be at least 1, got {batch_size}")
        if decoding not in ("greedy", "beam"):
            raise ParakeetError(f"decoding must be 'greedy' or 'beam', got {decoding!r}")
        if decoding == "beam" and beam_size < 1:
            raise ParakeetError(f"beam_size must be at least 1, got {beam_size}")
        if chunk_duration is not None and chunk_duration <= 0:
            raise ParakeetError(f"chunk_duration must be positive, got {chunk_duration:g} s")
        pieces: list[_Piece] = []
        durations: dict[int, float] = {}
        for index, item in enumerate(items):
            try:
                signal = self.load_audio(item, sample_rate)
            except AudioError as err:
                yield index, err
                if progress is not None:
                    progress(1)
                continue
            durations[index] = len(signal) / self.sample_rate
            pieces.extend(self._split(index, signal, chunk_duration, overlap_duration))
        decoded: dict[int, list[tuple[_Piece, Hypothesis]]] = {}
        remaining = {index: sum(p.item == index for p in pieces) for index in durations}
        for batch in self._batches(pieces, batch_size):
            for piece, hypothesis in zip(
                batch, self._decode(batch, decoding, beam_size, length_penalty), strict=True
            ):
                decoded.setdefault(piece.item, []).append((piece, hypothesis))
                remaining[piece.item] -= 1
                if remaining[piece.item] == 0:
                    parts = sorted(decoded.pop(piece.item), key=lambda pair: pair[0].offset)
                    yield piece.item, self._finish(parts, durations[piece.item], items[piece.item])
                    if progress is not None:
                        progress(1)

    def _batches(self, pieces: list[_Piece], batch_size: int) -> Iterator[list[_Piece]]:
        """Pieces of similar length, at most `batch_size` of them, and so few long ones that
        the batch's attention scores (batch x longest**2) take no more memory than one
        `BATCH_SECONDS` input's: memory stays bounded for long inputs, short ones fill a batch."""
        limit = BATCH_SECONDS * self.sample_rate / self.frontend.config.hop_length
        batch: list[_Piece] = []
        for piece in sorted(pieces, key=lambda p: p.feature_frames):
            longest = max([piece.feature_frames, *(p.feature_frames for p in batch)])
            full = len(batch) >= max(1, batch_size) or longest**2 * (len(batch) + 1) > limit**2
            if batch and full:
                yield batch
                batch = []
            batch.append(piece)
        if batch:
            yield batch

    def load_audio(self, item: AudioInput, sample_rate: int | None = None) -> np.ndarray:
        """`item` as the model's mono samples at its rate (arrays are taken at `sample_rate`,
        default the model's); AudioError naming it if it cannot be read."""
        if isinstance(item, (np.ndarray, mx.array)):
            return np.array(
                load_audio(item, self.sample_rate, source_sr=sample_rate or self.sample_rate)
            )
        return np.array(load_audio(item, self.sample_rate))

    def _split(
        self, index: int, signal: np.ndarray, chunk: float | None, overlap: float
    ) -> list[_Piece]:
        """The pieces of one input: all its feature frames, or overlapping chunks of them.

        Features are computed over the whole input first, so chunks are normalised with
        the whole input's statistics, as a single pass would be; chunk bounds fall on
        encoder frames.
        """
        lead, padded = _pad_to_minimum(signal, self.sample_rate)
        seconds = len(signal) / self.sample_rate
        frames = self.frontend.frame_count(len(padded))
        if chunk is None and self._quadratic_beyond_budget(frames):
            chunk = CACHE_AWARE_CHUNK_SECONDS
        if chunk is None or seconds <= chunk:
            return [_Piece(index, 0, lead, frames, signal=padded)]
        features, length = self.frontend(padded)
        features = features[0, : int(length[0])]
        if overlap >= chunk / 2:
            raise ParakeetError(
                f"overlap ({overlap:g} s) must be under half the chunk ({chunk:g} s)"
            )
        factor = self.encoder.subsampling_factor
        per_second = self.sample_rate / self.frontend.config.hop_length
        size = max(factor, round(chunk * per_second / factor) * factor)
        step = max(factor, round((chunk - overlap) * per_second / factor) * factor)
        total = features.shape[0]
        pieces = []
        for start in range(0, total, step):
            part = features[start : start + size]
            pieces.append(_Piece(index, start // factor, lead, part.shape[0], features=part))
            if start + size >= total:
                break
        return pieces

    def _finish(
        self, parts: list[tuple[_Piece, Hypothesis]], duration: float, item: AudioInput
    ) -> Transcript:
        if len(parts) == 1:
            piece, hypothesis = parts[0]
            return self._transcript(hypothesis, duration, piece.lead, _label(item))
        factor = self.encoder.subsampling_factor
        merged = _shifted(parts[0][1], parts[0][0].offset)
        for (previous, _), (piece, hypothesis) in itertools.pairwise(parts):
            overlap = (piece.offset, previous.offset + previous.feature_frames // factor)
            merged = merge_hypotheses(merged, _shifted(hypothesis, piece.offset), overlap)
        return self._transcript(merged, duration, parts[0][0].lead, _label(item))

    def _decode(
        self, pieces: list[_Piece], decoding: str, beam_size: int, length_penalty: float = 1.0
    ) -> list[Hypothesis]:
        """Decode a batch of pieces; frames are relative to each piece's start."""
        features = self._features(pieces)
        feature_len = mx.array([p.feature_frames for p in pieces])
        with self._attention(len(pieces), max(p.feature_frames for p in pieces)):
            encoded, encoded_len = self.encoder(features.astype(self.dtype), feature_len)
        if self.head == "ctc":
            log_probs = self.ctc(encoded)
            if decoding == "beam":
                probs, sizes = np.array(log_probs), np.array(encoded_len).tolist()
                best = [ctc_beam(probs[b, : sizes[b]], blank_id=self.ctc.config.blank_id, beam_size=beam_size)[0]
                        for b in range(len(pieces))]  # fmt: skip
                return [Hypothesis(h.ids, h.frames, None, [None] * len(h.ids)) for h in best]
            hyps = ctc_greedy(log_probs, encoded_len, blank_id=self.ctc.config.blank_id)
            return [Hypothesis(h.ids, [t.start_frame for t in h.tokens], None,
                               [math.exp(t.logprob) for t in h.tokens]) for h in hyps]  # fmt: skip
        if decoding == "beam":
            nbests = self.transducer.beam(
                encoded, encoded_len, beam_size=beam_size, length_penalty=length_penalty
            )
            return [_from_tokens(n[0].tokens if n else [], self.head) for n in nbests]
        return [
            _from_tokens(h.tokens, self.head) for h in self.transducer.greedy(encoded, encoded_len)
        ]

    def attention_for(self, batch: int, frames: int) -> tuple[str, tuple[int, int]]:
        """The encoder attention (model, [left, right]) a batch of `batch` inputs runs with,
        the longest of them `frames` valid feature frames (not counting the padding a GPU
        batch gets, so that the choice is the same on every device).

        The encoder's own, unless it is full attention over the whole input (`rel_pos`,
        context [-1, -1], as NVIDIA's offline Parakeet checkpoints) and NeMo's full attention
        would hold more than `attention_budget` bytes of scores: batch x heads x T'^2 x 4,
        T' the encoder frames. Then NeMo's long-audio recipe, `LONG_AUDIO_ATTENTION`: local
        attention with 256 encoder frames (20.48 s at 80 ms) each side, what NeMo's
        `change_attention_model("rel_pos_local_attn", [256, 256])` runs. Checkpoints
        trained with local attention or a limited context keep theirs (cache-aware ones
        are cut into `CACHE_AWARE_CHUNK_SECONDS` chunks beyond the budget instead).
        """
        own = self._own_attention()
        if (
            self.attention_budget is None
            or own != ("rel_pos", (-1, -1))
            or self.encoder.config.att_context_style != "regular"
            or self.full_attention_bytes(batch, frames) <= self.attention_budget
        ):
            return own
        model, context = LONG_AUDIO_ATTENTION
        return model, tuple(context)

    def _own_attention(self) -> tuple[str, tuple[int, int]]:
        """The attention the encoder is set to: its checkpoint's, or `--local-attention`'s."""
        config = self.encoder.config
        return config.self_attention_model, tuple(config.att_context)

    def _quadratic_beyond_budget(self, frames: int) -> bool:
        """A cache-aware checkpoint run offline (its own attention, NeMo's (T, T)-masked
        form, memory quadratic in the length) on an input beyond the budget: chunk it."""
        config = self.encoder.config
        return (
            config.att_context_style != "regular"
            and config.self_attention_model == "rel_pos"
            and self.attention_budget is not None
            and self.full_attention_bytes(1, frames) > self.attention_budget
        )

    def full_attention_bytes(self, batch: int, frames: int) -> int:
        """NeMo's full-attention score memory for `batch` inputs of `frames` feature frames:
        batch x heads x T'^2 x 4 bytes (T' = frames / subsampling factor, rounded up).

        This encoder computes those scores in groups of rows and never holds them whole
        (mlx-conformer's attention), so for it the figure is a measure of length (its time
        grows as T'^2), not of its own memory."""
        encoded = -(-frames // self.encoder.subsampling_factor)
        return batch * self.encoder.config.n_heads * encoded**2 * SCORE_BYTES

    @contextlib.contextmanager
    def _attention(self, batch: int, frames: int) -> Iterator[None]:
        """The encoder runs with `attention_for(batch, frames)` inside, its own after."""
        own = self._own_attention()
        chosen = self.attention_for(batch, frames)
        if chosen == own:
            yield
            return
        if self.notice is not None:
            seconds = frames * self.frontend.config.hop_length / self.sample_rate
            gib = self.full_attention_bytes(batch, frames) / 2**30
            budget = self.attention_budget / 2**30
            inputs = f"{seconds:.1f} s of audio"
            if batch > 1:
                inputs = f"{batch} inputs of up to {seconds:.1f} s"
            self.notice(f"{inputs}: full attention would take {gib:.1f} GiB of scores (budget "
                        f"{budget:.3g} GiB), so NeMo's long-audio recipe runs: {chosen[0]} "
                        f"{list(chosen[1])}")  # fmt: skip
        self.encoder.change_attention_model(*chosen)
        try:
            yield
        finally:
            self.encoder.change_attention_model(*own)

    def _padded_frames(self, frames: int) -> int:
        """The frame count a batch is padded to. On a GPU, a few sizes only: MLX's CUDA
        backend builds a cuDNN plan (attention, convolutions) and a cuFFT plan for each new
        shape, ~0.1 s each, and keeps them in bounded caches. Multiples of 128 frames up to
        2048, then of 256 up to 4096, and so on (at most 1/8 more frames from there on);
        the padding is masked, as in any batch. On the CPU no padding (it costs arithmetic)."""
        bucket = self.bucket_frames
        if bucket is None:
            bucket = mx.default_device() == mx.gpu
        if not bucket or frames <= 0:
            return frames
        step = FRAME_BUCKET << max(0, math.ceil(math.log2(frames / (16 * FRAME_BUCKET))))
        return -(-frames // step) * step

    def _features(self, pieces: list[_Piece]) -> mx.array:
        """(B, frames, n_mels) for a batch: the whole inputs' through one front-end call over
        their zero-padded samples with their lengths (NeMo's batched preprocessor), chunks'
        from their cut features, each padded to the longest piece (`_padded_frames`)."""
        longest = self._padded_frames(max(p.feature_frames for p in pieces))
        whole = [p for p in pieces if p.signal is not None]
        if whole:
            width = max(longest * self.frontend.config.hop_length, *(len(p.signal) for p in whole))
            samples = np.zeros((len(whole), width), dtype=np.float32)
            for row, piece in enumerate(whole):
                samples[row, : len(piece.signal)] = piece.signal
            batch, _ = self.frontend(samples, [len(p.signal) for p in whole])
            if len(whole) == len(pieces):
                return _frames_to(batch, longest)
            rows = iter(range(len(whole)))
            parts = [batch[next(rows), : p.feature_frames] if p.signal is not None else p.features
                     for p in pieces]  # fmt: skip
        else:
            parts = [p.features for p in pieces]
        return mx.stack([_frames_to(part[None], longest)[0] for part in parts])

    def _transcript(
        self, hypothesis: Hypothesis, duration: float, lead: float, label: str | None
    ) -> Transcript:
        tokens = token_spans(hypothesis.ids, hypothesis.frames, hypothesis.durations, self.head, self.tokenizer,
                             hypothesis.confidences)  # fmt: skip
        words = word_spans(tokens, self.tokenizer) if tokens else []
        segments = segment_spans(words, self.segment_separators, self.segment_gap) if words else []
        seconds = self.frame_seconds
        # NeMo does not move times back by the padding it adds to inputs under 1 s; we do,
        # so that times refer to the input as given, and a last token whose duration reaches
        # past the end of the audio ends with it. Otherwise they are NeMo's exactly.
        to_time = lambda frames: seconds_at(frames, seconds, duration, lead=lead)  # noqa: E731
        timed_words = [Word(w.text, to_time(w.start), to_time(w.end), w.confidence) for w in words]
        return Transcript(
            text=self.tokenizer.text(hypothesis.ids),
            duration=duration,
            model=self.name,
            tokens=[
                TimedToken(i, t.piece, to_time(t.start), to_time(t.end), t.confidence)
                for i, t in zip(hypothesis.ids, tokens, strict=True)
            ],
            words=timed_words,
            segments=[
                Segment(
                    s.text,
                    to_time(s.start),
                    to_time(s.end),
                    tuple(timed_words[s.first_token : s.last_token + 1]),
                )
                for s in segments
            ],
            source=label,
        )


def _frames_to(features: mx.array, frames: int) -> mx.array:
    """(B, T, F) cut or zero-padded to `frames` frames."""
    if features.shape[1] >= frames:
        return features[:, :frames]
    return mx.pad(features, [(0, 0), (0, frames - features.shape[1]), (0, 0)])


def _shifted(hypothesis: Hypothesis, offset: int) -> Hypothesis:
    return Hypothesis(hypothesis.ids, [f + offset for f in hypothesis.frames], hypothesis.durations,
                      hypothesis.confidences)  # fmt: skip


def _from_tokens(tokens: Sequence, kind: str) -> Hypothesis:
    return Hypothesis(
        ids=[t.id for t in tokens],
        frames=[t.frame for t in tokens],
        durations=[t.duration for t in tokens] if kind == "tdt" else None,
        confidences=[math.exp(t.logprob) for t in tokens],
    )


def _pad_to_minimum(signal: np.ndarray, sample_rate: int) -> tuple[float, np.ndarray]:
    """NeMo's transcribe pads inputs shorter than 1 s with zeros, half before, half after."""
    missing = int(MIN_SECONDS * sample_rate) - len(signal)
    if missing <= 0:
        return 0.0, signal
    before = missing // 2
    return before / sample_rate, np.pad(signal, (before, missing - before))


def _label(item: AudioInput) -> str | None:
    return str(item) if isinstance(item, (str, Path)) else None


__all__ = ["AudioError", "Parakeet", "Span"]
