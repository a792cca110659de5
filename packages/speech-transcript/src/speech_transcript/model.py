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
    speaker: str | None = None  # with diarization (`speakers.with_speakers`)


@dataclass(frozen=True)
class SpeakerTurn:
    """One speaker's speech from `start` to `end` seconds; `speaker` as NeMo names it
    (`speaker_0`, ...)."""

    start: float
    end: float
    speaker: str

    def rttm(self, file_id: str) -> str:
        """The turn as an RTTM `SPEAKER` line of recording `file_id`."""
        return (
            f"SPEAKER {file_id} 1 {self.start:.3f} {self.end - self.start:.3f} "
            f"<NA> <NA> {self.speaker} <NA> <NA>"
        )


@dataclass(frozen=True)
class Segment:
    """A run of words: a sentence where the model writes punctuation, else a gap-delimited span."""

    text: str
    start: float
    end: float
    words: tuple[Word, ...] = ()
    speaker: str | None = None  # with diarization: every word's speaker


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
    speakers: list[SpeakerTurn] = field(default_factory=list)  # diarization's turns, by time

    @property
    def sentences(self) -> list[Segment]:
        return self.segments
