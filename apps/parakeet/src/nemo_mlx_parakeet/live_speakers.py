"""Live speaker labels: each word of a cache-aware stream gets a speaker as it appears,
by the rule of NeMo's speaker-tagged streaming ASR (`SpeakerTaggedASR`, serial; in
nemo/collections/asr/parts/utils/multispk_transcribe_utils.py, NeMo 3.0.0).

Per chunk, after the ASR has decoded it: the chunk's features (with the pre-encode cache, the
ASR's `drop_extra_pre_encoded`) go through the streaming Sortformer (`LiveDiarization`);
the words of the hypothesis text beyond those already labelled are the new words; their
tokens (the tokenizer's pieces of each word) take the frames of the tokens the chunk emitted
(`hypothesis.timestamp`, chunk-local, plus step x `valid_out_len`), lined up by
`fix_frame_time_step`; a word spans its first token's frame to its last's (one frame for a
one-token word), and takes the speaker with the largest mean probability over the frames
from one before its start to its end (`left_frame_shift` -1, `right_frame_shift` 0), each
speaker's mean clamped at 0.01 (`get_word_dict_content_online`). A word is labelled once,
when its first tokens appear; later tokens of it change its text, not its speaker
(`get_multitoken_words`).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import mlx.core as mx
import numpy as np

from mlx_conformer.streaming import Chunk
from mlx_diarization import Diarizer, LiveDiarization
from speech_transcript import Transcript
from speech_transcript.speakers import with_word_speakers

from .errors import ParakeetError

LEFT_SHIFT, RIGHT_SHIFT = -1, 0  # NeMo's left_frame_shift, right_frame_shift
MIN_SIGMOID = 1e-2  # min_sigmoid_val
FIX_PREVIOUS = 5  # fix_prev_words_count
IGNORED_STEPS = 5  # ignored_initial_frame_steps


@dataclass
class LiveWord:
    """A word as NeMo's live path records it: text, frames, speaker (`speaker_<k>`)."""

    text: str
    frame_start: int
    frame_end: int
    speaker: str


@dataclass
class LiveSpeakers:
    """The live labels of one stream; `feed` after each chunk the ASR decoded."""

    diarization: LiveDiarization
    tokenizer: object
    valid_out_len: int
    frame_seconds: float
    words: list[LiveWord] = field(default_factory=list)
    _count: int = 0  # NeMo's offset_count: words of the text taken so far

    @classmethod
    def start(cls, model, diarizer: Diarizer, streaming) -> LiveSpeakers:
        """For `model`'s cache-aware stream (`streaming`: its StreamingConfig); ParakeetError
        (one line) where NeMo's live path does not apply or the models do not fit together."""
        if not model.cache_aware or model.head == "ctc":
            raise ParakeetError("live speaker labels need a cache-aware transducer model (NeMo's "
                                "speaker-tagged streaming is defined for those)")  # fmt: skip
        if not np.isclose(diarizer.frame_seconds, model.frame_seconds):
            raise ParakeetError(f"the diarizer's frames last {diarizer.frame_seconds:g} s and "
                                f"{model.name}'s {model.frame_seconds:g} s: live labels need the same")  # fmt: skip
        try:
            live = diarizer.live()
        except ValueError as err:
            raise ParakeetError(str(err)) from None
        if live.num_features != model.frontend.config.n_mels:
            raise ParakeetError(f"the diarizer reads {live.num_features} features and {model.name} "
                                f"computes {model.frontend.config.n_mels}: NeMo's live path feeds it the ASR's")  # fmt: skip
        return cls(live, model.tokenizer, streaming.valid_out_len, model.frame_seconds)

    def feed(self, chunk: Chunk, ids: Sequence[int], local_frames: Sequence[int]) -> None:
        """After the ASR decoded `chunk`: `ids` the whole hypothesis so far, `local_frames`
        the frames (within the chunk) of the tokens it emitted."""
        self.diarization.step(chunk.features, chunk.drop)
        text = self.tokenizer.text(list(ids))
        if not text and chunk.step <= IGNORED_STEPS:
            return
        word_seq = text.split()
        new_words = word_seq[self._count :]
        groups = [len(self.tokenizer.encode(word)) for word in new_words]
        tokens = sum(groups)
        offset = chunk.step * self.valid_out_len
        frames = [f + offset for f in local_frames]
        frames = fix_frame_time_step(tokens, len(new_words), frames)
        if tokens and not frames:
            return  # NeMo fails here (it indexes an empty list); never seen on real streams
        self._count += min(len(new_words), len(frames))
        self._fix_multitoken(word_seq, len(new_words))
        preds = self.diarization.probabilities
        position = 0
        for count, word in zip(groups, new_words, strict=True):
            start, end = word_frames(frames, position, count, preds.shape[0])
            speaker = speaker_of(preds, start, end)
            self.words.append(LiveWord(word, start, end, f"speaker_{speaker}"))
            position += count

    def _fix_multitoken(self, word_seq: list[str], new: int) -> None:
        """`get_multitoken_words`: a recent word whose text grew gets the longer text."""
        first = max(0, len(word_seq) - FIX_PREVIOUS - new)
        last = max(0, len(word_seq) - new)
        for index, previous in enumerate(word_seq[first:last]):
            if len(self.words) > FIX_PREVIOUS - index:
                saved = self.words[-FIX_PREVIOUS + index]
                if len(previous) > len(saved.text):
                    saved.text = previous

    @property
    def speakers(self) -> list[str]:
        """The labelled words' speakers in order."""
        return [w.speaker for w in self.words]

    def label(self, transcript: Transcript) -> Transcript:
        """`transcript` (the stream's) with the live labels on its words: a word takes the
        label of the word of the text (`text.split()`, as NeMo's words) its first character
        is in; words beyond the labelled ones (the stream still running) take the last."""
        if not self.words:
            return transcript
        text = transcript.text
        ends = [m.end() for m in re.finditer(r"\S+", text)]
        speakers, cursor, index = [], 0, 0
        for word in transcript.words:
            at = text.find(word.text, cursor)
            start = at if at >= 0 else cursor
            cursor = start + len(word.text) if at >= 0 else cursor
            while index < len(ends) - 1 and ends[index] <= start:
                index += 1
            speakers.append(self.words[min(index, len(self.words) - 1)].speaker)
        return with_word_speakers(transcript, speakers)


def fix_frame_time_step(tokens: int, words: int, frames: list[int]) -> list[int]:
    """NeMo's `fix_frame_time_step`: the chunk's token frames lined up with `tokens` new
    tokens (deduplicated and cut from the front, or padded with the first at the front)."""
    if tokens == len(frames):
        return frames
    if len(frames) > words:
        frames = list(OrderedDict.fromkeys(frames))
        if len(frames) < tokens:
            frames = [frames[0]] * (tokens - len(frames)) + frames
        elif len(frames) > tokens:
            frames = frames[len(frames) - tokens :]
    elif len(frames) < tokens:
        frames = [frames[0]] * (tokens - len(frames)) + frames
    return frames


def word_frames(frames: list[int], position: int, count: int, total: int) -> tuple[int, int]:
    """A word's (start, end) frames from its tokens' (`get_word_dict_content_online`)."""
    if count == 1 or position + count - 1 >= len(frames):
        start, end = frames[position], frames[position] + 1
    else:
        start, end = frames[position], frames[position + count - 1]
    if start == end:
        if start >= total - 1:
            start, end = total - 1, total
        else:
            end = start + 1
    return start, end


def speaker_of(preds: np.ndarray, start: int, end: int) -> int:
    """The speaker with the largest clamped mean probability over frames
    [start + LEFT_SHIFT, end + RIGHT_SHIFT) (NeMo's `get_simulated_softmax` and argmax; over
    no frame NeMo's mean is NaN and its argmax 0)."""
    window = preds[max(start + LEFT_SHIFT, 0) : end + RIGHT_SHIFT]
    if window.shape[0] == 0:
        return 0
    mean = np.clip(window.mean(axis=0, dtype=np.float32), MIN_SIGMOID, 1.0)
    return int(np.argmax(mean / mean.sum()))


def decode_chunks(head, chunks: Sequence[Chunk], speakers: LiveSpeakers | None) -> None:
    """Decode a cache-aware stream's chunks with `head` (streaming._Head); with live labels,
    one chunk at a time, each chunk's new words labelled after it is decoded (NeMo's order)."""
    if speakers is None:
        if chunks:
            head.feed(mx.concatenate([c.encoded for c in chunks]))
        return
    for chunk in chunks:
        before, start = len(head.stream.tokens), head.encoder_frames
        head.feed(chunk.encoded)
        tokens = head.stream.tokens
        speakers.feed(chunk, [t.id for t in tokens], [t.frame - start for t in tokens[before:]])
