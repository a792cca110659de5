"""Transcript assembly: a hypothesis (token ids, frames, durations, confidences) into a
`Transcript` with timed tokens, words and segments, by NeMo's rules (`timestamps`)."""

from __future__ import annotations

from dataclasses import dataclass

from speech_transcript import Segment, TimedToken, Transcript, Word, seconds_at

from .decoding import Head, Hypothesis
from .timestamps import segment_spans, token_spans, word_spans
from .tokenizer import Tokenizer


@dataclass(frozen=True)
class Assembly:
    """What turning a hypothesis into a transcript needs of the model: its tokenizer, head,
    encoder frame length, NeMo's segment settings, and its name for the transcript."""

    name: str
    head: Head
    tokenizer: Tokenizer
    frame_seconds: float
    segment_separators: tuple[str, ...]
    segment_gap: int | None

    def __call__(
        self, hypothesis: Hypothesis, duration: float, lead: float = 0.0, label: str | None = None
    ) -> Transcript:
        """The transcript of `hypothesis` for an input of `duration` seconds that got `lead`
        seconds of padding in front; `label` is its source."""
        tokens = token_spans(hypothesis.ids, hypothesis.frames, hypothesis.durations, self.head,
                             self.tokenizer, hypothesis.confidences)  # fmt: skip
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
