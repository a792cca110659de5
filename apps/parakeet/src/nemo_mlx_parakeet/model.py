"""`Parakeet`: a loaded Parakeet model (TDT, RNNT, CTC or hybrid TDT-CTC) that transcribes.

The class composes the parts: `checkpoint` (the modules from a model directory, with a
prompt model's language projection), `batching` (inputs into pieces and batches),
`pieces` (an input cut into pieces, their hypotheses joined into its transcript),
`encoding` (a batch through the encoder, padded or one piece at a time),
`attention` (the long-audio policy), `decoding` (the heads' hypotheses), `biasing` (fusion
or word spotting)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import mlx.core as mx
import numpy as np

from mlx_asr_fusion import FusionModel
from mlx_audio_frontend import AudioError, load_samples
from mlx_conformer import DEFAULT_LANGUAGE
from mlx_conformer.shapes import bucketed_frames
from mlx_diarization import DiarizerChoice
from mlx_frame_vad import VadChoice
from nemo_mlx_convert import ModelDirectory
from speech_transcript import SpeakerTurn, Transcript
from speech_transcript import checkpoints as nemo
from speech_transcript.biasing import Biasing

from . import attention, batching
from .attention import FULL_ATTENTION_BUDGET, LONG_AUDIO_ATTENTION, Attention
from .batching import BATCH_SECONDS, OVERLAP_SECONDS, Piece
from .biasing import Aids, aids_for, with_boost, without_spotter
from .checkpoint import load_parts
from .checks import check_options
from .decoding import Head, Hypothesis, decode
from .diarization import labelled, live_choice, load_diarizer, speaker_turns
from .encoding import encode_each, encode_padded
from .eou import EndOfUtterance
from .errors import ParakeetError
from .pieces import input_pieces, joined
from .prompting import Language, choose_language
from .streaming import TranscriptionStream
from .timestamps import Span
from .transcripts import Assembly
from .vad import load_vad

AudioInput = str | Path | bytes | np.ndarray | mx.array


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
        parts = load_parts(model_dir, name, dtype, quantize)
        self.name = name
        self.dtype = dtype
        self.config = cfg = model_dir.nemo_config
        self.frontend, self.encoder, self.tokenizer = parts.frontend, parts.encoder, parts.tokenizer
        self.transducer, self.ctc = parts.transducer, parts.ctc
        self.prompt = parts.prompt  # a prompt model's language projection (Nemotron 3.5 ASR)
        self.head = self._choose_head(head)
        decoding = cfg.get("decoding") or {}
        self.segment_separators = tuple(decoding.get("segment_seperators") or (".", "?", "!"))
        self.segment_gap = decoding.get("segment_gap_threshold")
        self.frame_seconds = nemo.frame_seconds(
            cfg["preprocessor"], self.encoder.subsampling_factor
        )
        self.sample_rate = nemo.sample_rate(cfg["preprocessor"])
        # Pad batches to a few shapes (lengths, piece counts: mlx_conformer.shapes); None: on a GPU
        self.bucket_shapes: bool | None = None
        # Encode a batch's pieces one at a time, unpadded (`encoding.py`); else padded batches
        self.encode_each = False
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
    def languages(self) -> list[str]:
        """The target languages a prompt model takes (its `prompt_dictionary`, with `auto`);
        empty for a model without a language prompt."""
        return self.prompt.config.names if self.prompt is not None else []

    def language(self, language: str | None = None) -> Language | None:
        """The language prompt `language` asks for (None: NeMo's default, `auto`); None for
        a model without one. ParakeetError for an unknown language (listing the model's) or
        a language given to a model that takes none."""
        return choose_language(self.name, self.prompt, language)

    def condition(self, encoded: mx.array, language: Language | None) -> mx.array:
        """Encoder output conditioned on `language` (a prompt model's projection), or as it is."""
        if language is None or self.prompt is None:
            return encoded
        return self.prompt(encoded, language.index)

    @property
    def cache_aware(self) -> bool:
        """A cache-aware streaming checkpoint (streams in the chunks it was trained for)."""
        return self.encoder.config.att_context_style == "chunked_limited"

    @property
    def context_choices(self) -> list[list[int]]:
        """The [left, right] attention contexts the checkpoint was trained with."""
        return [list(c) for c in self.encoder.config.att_context_sizes]

    @property
    def assemble(self) -> Assembly:
        """Hypothesis to `Transcript` with this model's tokenizer, head and settings (read
        when called, so that a changed setting counts)."""
        return Assembly(self.name, self.head, self.tokenizer, self.frame_seconds,
                        self.segment_separators, self.segment_gap)  # fmt: skip

    # ----------------------------------------------------------------- transcription

    def transcribe_stream(
        self,
        context=None,
        chunk: float | None = None,
        language: str | None = None,
        on_end_of_utterance: Callable[[EndOfUtterance], None] | None = None,
        biasing: Biasing | None = None,
        diarize: DiarizerChoice = None,
    ) -> TranscriptionStream:
        """A stream to feed with `add_audio(samples)`; use it as a context manager.

        Cache-aware streaming models: `context` is one of the checkpoint's
        `att_context_size` entries [left, right] (default: its first); NeMo's exact
        cache-aware step. Other models: `chunk` seconds per step (default 1.0) and
        `context = (left, right)` encoder frames around each chunk (default 10 s / 1 s).
        A prompt model streams in `language` (default `auto`), as NeMo's
        `set_inference_prompt` before `conformer_stream_step`. End-of-utterance
        checkpoints call `on_end_of_utterance` with each `<EOU>` / `<EOB>` as it becomes
        final (also in each update's `end_of_utterances`). `biasing`: phrases boosted and
        an LM fused as `transcribe_many` takes them (the greedy stream carries their states).
        `diarize` (as `transcribe_many`'s; True: a streaming Sortformer): speakers on the
        words, live on cache-aware transducer models (`live_speakers.py`), else at the end."""
        return TranscriptionStream(self, context=context, chunk=chunk,
                                   on_end_of_utterance=on_end_of_utterance,
                                   language=self.language(language),
                                   fusion=self.fusion_models(biasing),
                                   diarizer=load_diarizer(live_choice(diarize)))  # fmt: skip

    def transcribe(
        self, audio: AudioInput | Sequence[AudioInput], **options
    ) -> Transcript | list[Transcript]:
        """Transcribe one input (a path, encoded bytes, or samples) or a list of them; the
        options are `transcribe_many`'s.

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
        for index, result in self.transcribe_many(items, **options):
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
        language: str | None = None,
        vad: VadChoice = None,
        biasing: Biasing | None = None,
        boost: Sequence[str] = (),
        diarize: DiarizerChoice = None,
    ) -> Iterator[tuple[int, Transcript | AudioError]]:
        """Yield (index, transcript) for each input, or (index, AudioError) for one that
        cannot be read. Inputs are decoded in batches of similar length; `progress` is
        called with the number of inputs finished. A prompt model (Nemotron 3.5 ASR)
        transcribes in `language`, one of `languages` (default `auto`: it finds the
        language itself, as NeMo's `transcribe(..., target_lang="auto")`); the transcript's
        `language` says which was used. `biasing` (`speech_transcript.biasing.Biasing`)
        boosts key phrases and fuses an n-gram LM as NeMo's greedy decoding does;
        `boost=[...]` is the short form for phrases with the default weights (beam search:
        NeMo's fused `malsd_batch` transducer beam, or its CTC `beam_batch`); with
        `biasing.word_spotter` the phrases are spotted by NeMo's CTC word spotter instead.

        With `vad` (a loaded `mlx_frame_vad.FrameVAD`, a frame-VAD reference to load, or
        True for the default, NVIDIA's Frame_VAD_Multilingual_MarbleNet_v2.0), only the
        speech segments it finds are transcribed (`vad.py`); times stay the whole input's.
        With `diarize` (a loaded `mlx_diarization.Diarizer`, a Sortformer reference to load,
        or True for the default, NVIDIA's diar_sortformer_4spk-v1), every word and segment
        gets a speaker by NeMo's rule and segments split where it changes
        (`diarization.py`, `speech_transcript.speakers`); `speakers` holds the turns."""
        check_options(batch_size, decoding, beam_size, chunk_duration)
        aids = self.decoding_aids(with_boost(biasing, boost))
        if aids[1] is not None and decoding != "greedy":
            raise ParakeetError("the word spotter works with greedy decoding (NeMo's recipe)")
        prompt = self.language(language)
        detector = load_vad(vad)
        diarizer = load_diarizer(diarize)
        turns: dict[int, list[SpeakerTurn]] = {}
        pieces: list[Piece] = []
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
            if diarizer is not None:
                turns[index] = speaker_turns(diarizer, signal)
            pieces += input_pieces(self, index, signal, chunk_duration, overlap_duration, detector)
        decoded: dict[int, list[tuple[Piece, Hypothesis]]] = {}
        remaining = {index: sum(p.item == index for p in pieces) for index in durations}
        for index in [i for i, count in remaining.items() if count == 0]:  # no speech found
            yield index, labelled(joined(self, [], durations[index], items[index]), turns, index)
            if progress is not None:
                progress(1)
        limit = BATCH_SECONDS * self.sample_rate / self.frontend.config.hop_length
        for batch in batching.batches(pieces, batch_size, limit):
            count = batching.padded_count(batch, batch_size, limit, self.bucket_shapes)
            padded = batch + [batch[0]] * (count - len(batch))  # results dropped below
            hypotheses = self._decode(padded, decoding, beam_size, length_penalty, prompt, aids)
            for piece, hypothesis in zip(batch, hypotheses[: len(batch)], strict=True):
                decoded.setdefault(piece.item, []).append((piece, hypothesis))
                remaining[piece.item] -= 1
                if remaining[piece.item] == 0:
                    parts = sorted(decoded.pop(piece.item), key=lambda pair: pair[0].offset)
                    result = joined(self, parts, durations[piece.item], items[piece.item])
                    result.language = prompt.name if prompt is not None else None
                    yield piece.item, labelled(result, turns, piece.item)
                    if progress is not None:
                        progress(1)

    def load_audio(self, item: AudioInput, sample_rate: int | None = None) -> np.ndarray:
        """`item` as the model's mono samples at its rate (arrays are taken at `sample_rate`,
        default the model's); AudioError naming it if it cannot be read."""
        source_sr = nemo.array_rate(item, sample_rate)
        return load_samples(item, self.sample_rate, source_sr=source_sr)

    def _decode(
        self,
        pieces: list[Piece],
        decoding: str,
        beam_size: int,
        length_penalty: float = 1.0,
        language: Language | None = None,
        aids: Aids = ([], None),
    ) -> list[Hypothesis]:
        """Decode a batch of pieces, with `aids` (fusion or a word spotter); frames are
        relative to each piece's start."""
        longest = max(p.feature_frames for p in pieces)
        parts = self.frontend, self.encoder, self.dtype, pieces
        with self._attention(len(pieces), longest):
            if self.encode_each:
                encoded, encoded_len = encode_each(*parts)
            else:
                encoded, encoded_len = encode_padded(*parts, self._padded_frames(longest))
        encoded = self.condition(encoded, language)
        head = self.ctc if self.head == "ctc" else self.transducer
        return decode(self.head, head, encoded, encoded_len, decoding, beam_size, length_penalty,
                      *aids)  # fmt: skip

    def fusion_models(self, biasing: Biasing | None) -> list[FusionModel]:
        """The decoders' fusion models for `biasing` (a stream's: no word spotter there)."""
        return without_spotter(self.decoding_aids(biasing))

    def decoding_aids(self, biasing: Biasing | None) -> Aids:
        """The fusion models or the word spotter of `biasing` (`biasing.aids_for`), kept."""
        cache = self.__dict__.setdefault("_fusion_cache", {})
        if biasing not in cache:
            cache.clear()  # one set of options kept: a server's requests vary
            cache[biasing] = aids_for(biasing, self) if biasing else ([], None)
        return cache[biasing]

    def _padded_frames(self, frames: int) -> int:
        """The frame count a batch is padded to (`mlx_conformer.shapes`, `bucket_shapes`)."""
        return bucketed_frames(frames, self.bucket_shapes)

    # ----------------------------------------------------------------- long audio

    def attention_for(self, batch: int, frames: int) -> Attention:
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
        return attention.attention_for(self.encoder, self.attention_budget, batch, frames)

    def full_attention_bytes(self, batch: int, frames: int) -> int:
        """NeMo's full-attention score memory (`attention.full_attention_bytes`)."""
        return attention.full_attention_bytes(self.encoder, batch, frames)

    def _attention(self, batch: int, frames: int) -> contextlib.AbstractContextManager[None]:
        """The encoder runs with `attention_for(batch, frames)` inside, its own after; a
        switch to the long-audio recipe is told to `notice`."""
        chosen = self.attention_for(batch, frames)
        if self.notice is not None and chosen != attention.own_attention(self.encoder):
            seconds = frames * self.frontend.config.hop_length / self.sample_rate
            gib = self.full_attention_bytes(batch, frames) / 2**30
            self.notice(attention.switch_notice(seconds, batch, gib, self.attention_budget / 2**30,
                                                chosen))  # fmt: skip
        return attention.attention_set(self.encoder, chosen)


__all__ = [
    "DEFAULT_LANGUAGE",
    "FULL_ATTENTION_BUDGET",
    "LONG_AUDIO_ATTENTION",
    "AudioError",
    "Parakeet",
    "Span",
]
