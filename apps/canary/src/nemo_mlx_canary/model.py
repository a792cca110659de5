"""`Canary`: a loaded Canary checkpoint that transcribes and translates."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import mlx.core as mx
import numpy as np

from mlx_asr_fusion import FusionModel
from mlx_audio_frontend import AudioError, LogMel, LogMelConfig, load_samples
from mlx_conformer import Conformer, quantize_linears
from mlx_conformer.shapes import bucketed_count, bucketed_frames
from mlx_diarization import Diarizer
from mlx_frame_vad import FrameVAD
from mlx_seq2seq_decoder import TransformerDecoder, beam_search, greedy_search
from nemo_mlx_convert import ModelDirectory
from speech_transcript import Segment, TimedToken, Transcript, Word, seconds_at
from speech_transcript import checkpoints as nemo
from speech_transcript.biasing import Biasing
from speech_transcript.speakers import named_turns, with_speakers

from . import timestamps as frame_times
from .biasing import fusion_for, with_boost
from .errors import CanaryError
from .prompt import PromptOptions, Task, build_prompt, timestamps_unsupported
from .tokenizer import CanaryTokenizer

CHUNK_SECONDS = 40.0  # Canary is trained on utterances up to 40 s; longer input is cut

AudioInput = str | Path | bytes | np.ndarray | mx.array
Decoding = Literal["greedy", "beam"]


@dataclass(frozen=True)
class _Piece:
    item: int
    start: float  # seconds into the input
    samples: np.ndarray
    lead: float = 0.0  # seconds of zeros put in front (NeMo's padding to 1 s)
    stop: float = math.inf  # a speech segment's end (--vad): no time of the piece goes past it


class Canary:
    """A Canary checkpoint ready to run. Build it with `canary.load(...)`."""

    def __init__(
        self, model_dir: ModelDirectory, name: str, dtype: mx.Dtype, quantize: int | None = None
    ) -> None:
        cfg = model_dir.nemo_config
        if problem := nemo.model_class_problem(name, model_dir.model_class, "canary"):
            raise CanaryError(problem)
        if (cfg.get("transf_encoder") or {}).get("num_layers", 0):
            raise CanaryError(f"{name}: models with a Transformer encoder stage are not supported")
        self.name = name
        self.config = cfg
        weights = mx.load(str(model_dir.weights))
        self.frontend = LogMel(LogMelConfig.from_nemo(cfg["preprocessor"]))
        self.encoder = Conformer.from_nemo(cfg, weights)
        self.decoder = TransformerDecoder.from_nemo(cfg, weights)
        self.dtype = dtype
        if dtype != mx.float32:
            self.encoder.set_dtype(dtype)
            self.decoder.set_dtype(dtype)
        if quantize is not None:  # the encoder's and the decoder's linear layers
            quantize_linears(self.encoder, quantize)
            quantize_linears(self.decoder, quantize)
        self.tokenizer = CanaryTokenizer.from_model_directory(model_dir)
        # models the .nemo holds beside this one (canary-1b-v2: its CTC aligner)
        self.auxiliary_models = list(model_dir.config.auxiliary_models) if model_dir.config else []
        self.prompt_format = str(cfg.get("prompt_format") or "canary")
        decoding = cfg.get("decoding") or {}
        beam = decoding.get("beam") or {}
        self.default_decoding: Decoding = (
            "greedy" if decoding.get("strategy") in ("greedy", "greedy_batch") else "beam"
        )
        self.default_beam_size = int(beam.get("beam_size", 1))
        # NeMo reads `length_penalty` (its config dataclass calls the field `len_pen`, unread):
        # GNMT's alpha, see mlx_seq2seq_decoder.beam_search (not the transducer's score_norm).
        self.length_penalty = float(beam.get("length_penalty", 0.0))
        # Each strategy has its own length limit (NeMo: `<strategy>.max_generation_delta`).
        self.max_deltas: dict[str, int] = {
            "greedy": int((decoding.get("greedy") or {}).get("max_generation_delta", -1)),
            "beam": int(beam.get("max_generation_delta", -1)),
        }
        self.sample_rate = nemo.sample_rate(cfg["preprocessor"])
        # Pad batches to a few shapes (frames, counts: mlx_conformer.shapes); None: on a GPU
        self.bucket_shapes: bool | None = None
        # Frame tokens count encoder frames: window stride times subsampling (NeMo's rule).
        factor = int(cfg["encoder"].get("subsampling_factor", 8))
        self.frame_seconds = nemo.frame_seconds(cfg["preprocessor"], factor)

    @property
    def languages(self) -> list[str]:
        return self.tokenizer.languages

    @property
    def has_timestamps(self) -> bool:
        """Whether the model can write timestamps (canary2 prompt and frame tokens)."""
        return (
            timestamps_unsupported(self.tokenizer, self.prompt_format, self.auxiliary_models)
            is None
        )

    def prompt(self, options: PromptOptions) -> list[int]:
        """The decoder prompt for `options`; checks languages, task and timestamps."""
        return build_prompt(self.tokenizer, self.prompt_format, options, self.auxiliary_models)

    def transcribe(
        self,
        audio: AudioInput | Sequence[AudioInput],
        *,
        source_lang: str = "en",
        target_lang: str | None = None,
        task: Task | None = None,
        pnc: bool = True,
        timestamps: bool = False,
        sample_rate: int | None = None,
        decoding: Decoding | None = None,
        beam_size: int | None = None,
        batch_size: int = 8,
        chunk_duration: float = CHUNK_SECONDS,
        progress: Callable[[int], None] | None = None,
        vad: FrameVAD | None = None,
        diarize: Diarizer | None = None,
        biasing: Biasing | None = None,
        boost: Sequence[str] = (),
    ) -> Transcript | list[Transcript]:
        """Text of each input, in `target_lang` (default: the spoken `source_lang`).

        One input gives a `Transcript`, a list gives a list. Inputs longer than
        `chunk_duration` seconds are cut into consecutive chunks, each decoded on its own.
        `timestamps=True` prompts with `<|timestamp|>` (models with frame tokens:
        canary-1b-flash, canary-180m-flash); the frame tokens the model writes become word
        and segment times, as NeMo parses them (they are parsed in any case, as NeMo does).
        With `vad` (an `mlx_frame_vad.FrameVAD`; `canary.load_vad` loads one), only the
        speech segments it finds are decoded, each as an input of its own (cut on encoder
        frames, rounded inwards: `speech_transcript.checkpoints.speech_spans`), in chunks if
        longer than `chunk_duration`; times stay the whole input's.
        With `diarize` (an `mlx_diarization.Diarizer`; `canary.load_diarizer` loads one), each
        word and segment gets a speaker by NeMo's rule (`speech_transcript.speakers`; segments
        split where it changes) and `speakers` holds the turns; it needs `timestamps` (words
        without times cannot be given speakers).
        `biasing` (a `speech_transcript.biasing.Biasing`; `boost=[...]` for phrases alone) is
        fused into the beam search as NeMo's AED beam does it (`biasing.py`; beam only).
        """
        options = PromptOptions(
            source_lang=source_lang, target_lang=target_lang, task=task, pnc=pnc,
            timestamps=timestamps,
        )  # fmt: skip
        prompt = self.prompt(options)
        if diarize is not None and not timestamps:
            raise CanaryError("diarization needs timestamps: words get speakers by their times")
        single = not isinstance(audio, (list, tuple))
        items = [audio] if single else list(audio)
        if batch_size < 1:
            raise CanaryError(f"batch_size must be at least 1, got {batch_size}")
        if not 1.0 <= chunk_duration <= CHUNK_SECONDS:
            raise CanaryError(f"chunk duration must be between 1 and {CHUNK_SECONDS:g} seconds")
        if beam_size is not None and beam_size < 1:
            raise CanaryError(f"beam_size must be at least 1, got {beam_size}")
        if decoding not in (None, "greedy", "beam"):
            raise CanaryError(f"decoding must be 'greedy' or 'beam', got {decoding!r}")
        decoding = decoding or self.default_decoding
        beam_size = self.default_beam_size if beam_size is None else beam_size
        fusion = fusion_for(with_boost(biasing, boost), self.tokenizer, source_lang, decoding)
        signals = [self._load(item, sample_rate) for item in items]
        pieces = [p for i, s in enumerate(signals) for p in self._pieces(i, s, chunk_duration, vad)]
        pieces.sort(key=lambda p: -len(p.samples))  # similar lengths together: less padding
        decoded: dict[int, list[tuple[_Piece, list[int]]]] = {}
        for first in range(0, len(pieces), batch_size):
            batch = pieces[first : first + batch_size]
            rows = bucketed_count(len(batch), batch_size, self.bucket_shapes)
            found = self._decode(batch, rows, prompt, decoding, beam_size, fusion)
            for piece, (ids, _confidence) in zip(batch, found, strict=True):
                decoded.setdefault(piece.item, []).append((piece, ids))
            if progress is not None:
                progress(len(batch))
        results = []
        target = options.resolved()[1]
        for index, signal in enumerate(signals):
            duration = len(signal) / self.sample_rate
            parts = sorted(decoded.get(index, []), key=lambda part: part[0].start)
            result = self._transcript(parts, duration, target, chunk_duration)
            if diarize is not None:
                result = with_speakers(result, named_turns(diarize.diarize(signal)))
            results.append(result)
        return results[0] if single else results

    def _load(self, item: AudioInput, sample_rate: int | None) -> np.ndarray:
        """`item` as mono samples at the model's rate (an array taken at `sample_rate`)."""
        source_sr = nemo.array_rate(item, sample_rate)
        return load_samples(item, self.sample_rate, source_sr=source_sr)

    def _pieces(
        self, item: int, signal: np.ndarray, chunk: float, vad: FrameVAD | None
    ) -> list[_Piece]:
        """The input's chunks (`_split`), or its speech segments' with a VAD model."""
        if vad is None:
            return self._split(item, signal, chunk)
        frame = self.frontend.config.hop_length * self.encoder.subsampling_factor
        try:
            found = vad.segments(signal, sample_rate=self.sample_rate)
        except ValueError as err:
            raise CanaryError(str(err)) from None
        segments = [(s.start, s.end) for s in found]
        pieces = []
        for first, last in nemo.speech_spans(segments, len(signal), self.sample_rate, frame):
            start, stop = first * frame, last * frame
            rate = self.sample_rate
            pieces += self._split(item, signal[start:stop], chunk, start / rate, stop / rate)
        return pieces

    def _split(
        self,
        item: int,
        signal: np.ndarray,
        chunk: float,
        offset: float = 0.0,
        stop: float = math.inf,
    ) -> list[_Piece]:
        """Consecutive chunks of samples that start `offset` seconds into the input (and end
        by `stop`: a speech segment's end); one under 1 s gets NeMo's zeros, half in front
        (`padding_for`)."""
        size = int(chunk * self.sample_rate)
        count = max(1, math.ceil(len(signal) / size))
        pieces = []
        for k in range(count):
            samples = signal[k * size : (k + 1) * size]
            lead, trail = nemo.padding_for(len(samples), self.sample_rate)
            if lead or trail:
                samples = np.pad(samples, (lead, trail))
            pieces.append(_Piece(item, offset + k * chunk, samples, lead / self.sample_rate, stop))
        return pieces

    def _decode(
        self,
        batch: list[_Piece],
        rows: int,
        prompt: list[int],
        decoding: Decoding,
        beam_size: int,
        fusion: Sequence[FusionModel] = (),
    ) -> list[tuple[list[int], float]]:
        """Ids and confidence of each piece of `batch`, decoded as `rows` rows: the batch's
        shortest features repeat in the rows beyond it (`bucket_shapes`), their results dropped."""
        features = []
        for piece in batch:
            feats, length = self.frontend(piece.samples)
            features.append(feats[0, : int(length[0])])
        features += [features[-1]] * (rows - len(batch))
        feature_frames = [f.shape[0] for f in features]
        longest = bucketed_frames(max(feature_frames), self.bucket_shapes)
        padded = mx.stack([mx.pad(f, [(0, longest - f.shape[0]), (0, 0)]) for f in features])
        states, lengths = self.encoder(padded, mx.array(feature_frames))
        mx.eval(states, lengths)
        prompts = [prompt] * rows
        t = self.tokenizer
        if decoding == "greedy":
            found = greedy_search(
                self.decoder, states, lengths, prompts, eos_id=t.eos_id,
                max_delta=self.max_deltas["greedy"],
            )  # fmt: skip
            return [
                (
                    _text_ids(r.tokens, t),
                    float(np.exp(np.mean(r.log_probs))) if r.log_probs else 1.0,
                )
                for r in found[: len(batch)]
            ]
        found = beam_search(
            self.decoder, states, lengths, prompts, eos_id=t.eos_id, pad_id=t.pad_id,
            beam_size=beam_size, length_penalty=self.length_penalty, max_delta=self.max_deltas["beam"],
            fusion=fusion,
        )  # fmt: skip
        return [(_text_ids(r.tokens, t), float("nan")) for r in found[: len(batch)]]

    def _transcript(
        self,
        parts: list[tuple[_Piece, list[int]]],
        duration: float,
        language: str,
        chunk: float,
    ) -> Transcript:
        """Text, words and segments of one input from its chunks' ids.

        Times from frame tokens are the chunk's start plus frame x `frame_seconds`, less the
        zeros NeMo's padding put in front of a short input (NeMo keeps those in its times;
        ours refer to the input as given). Tokens outside any pair of frame tokens, and
        every token of an output without them, get their chunk's span.
        """
        tokens, words, segments, texts = [], [], [], []
        for piece, ids in parts:
            end = min(duration, piece.start + chunk, piece.stop)
            text, frame_words = frame_times.parse(self.tokenizer.decode(ids))
            if text:
                texts.append(text)

            def to_time(frame: int, piece: _Piece = piece) -> float:
                return seconds_at(frame, self.frame_seconds, min(duration, piece.stop),
                                  start=piece.start, lead=piece.lead)  # fmt: skip

            pieces = [self.tokenizer.piece(i) for i in ids]
            for token_id, text_piece, span in zip(
                ids, pieces, frame_times.token_frames(pieces), strict=True
            ):
                start_s, end_s = (
                    (to_time(span[0]), to_time(span[1])) if span else (piece.start, end)
                )
                tokens.append(TimedToken(token_id, text_piece.replace("▁", " "), start_s, end_s))
            if frame_words is None:
                if text:
                    segments.append(Segment(text=text, start=piece.start, end=end))
                continue
            timed = [Word(w.text, to_time(w.start), to_time(w.end)) for w in frame_words]
            words += timed
            segments += [
                Segment(s.text, to_time(s.start), to_time(s.end),
                        tuple(timed[s.first_word : s.last_word + 1]))
                for s in frame_times.segments(frame_words)
            ]  # fmt: skip
        return Transcript(
            text=" ".join(texts),
            duration=duration,
            model=self.name,
            tokens=tokens,
            words=words,
            segments=segments,
            language=language,
        )


def _text_ids(ids: list[int], tokenizer: CanaryTokenizer) -> list[int]:
    """NeMo's hypothesis ids (`format_hypotheses`): the generated ids less trailing EOS and PAD.

    Anything else the model emits, special tokens included, stays and is decoded literally.
    """
    end = len(ids)
    while end and ids[end - 1] in (tokenizer.eos_id, tokenizer.pad_id):
        end -= 1
    return list(ids[:end])


__all__ = ["CHUNK_SECONDS", "AudioError", "Canary"]
