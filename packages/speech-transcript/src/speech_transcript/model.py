"""A timed transcript: what a speech recogniser hands to writers and to users."""

from __future__ import annotations

from dataclasses import dataclass, field


def seconds_at(
    frame: float, frame_seconds: float, duration: float, *, start: float = 0.0, lead: float = 0.0
) -> float:
    """Seconds into the input at encoder `frame` of a piece that begins `start` seconds in
    and had `lead` seconds of zeros put in front (NeMo's padding of short inputs), kept
    within [0, duration]: a last token's span (a TDT duration, a frame of padding) can
    reach past the audio, and no time is reported outside it."""
    return min(duration, max(0.0, start + frame * frame_seconds - lead))


@dataclass(frozen=True)
class TimedToken:
    """One model token: its id in the model's vocabulary, its text, its time span in seconds."""

    id: int
    text: str
    start: float
    end: float
    confidence: float | None = None


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float
    confidence: float | None = None


@dataclass(frozen=True)
class Segment:
    """A run of words: a sentence where the model writes punctuation, else a gap-delimited span."""

    text: str
    start: float
    end: float
    words: tuple[Word, ...] = ()


@dataclass
class Transcript:
    """Everything known about one transcribed input."""

    text: str
    duration: float
    model: str
    tokens: list[TimedToken] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    source: str | None = None  # the input's name (a path, "-" for stdin, or None for an array)
    language: str | None = None

    @property
    def sentences(self) -> list[Segment]:
        return self.segments
