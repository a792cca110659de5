"""Re-cutting segments for display: subtitle-sized pieces of a transcript's words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .model import Segment, Word


@dataclass(frozen=True)
class SegmentLimits:
    """Limits for subtitle segments; None means unlimited.

    A segment ends after a word ending in sentence punctuation, before a silence of at least
    `gap` seconds, where the speaker changes (diarized words), or before exceeding `max_words`, `max_duration` seconds or `max_chars`.
    """

    max_words: int | None = None
    max_duration: float | None = None
    max_chars: int | None = 84  # two subtitle lines of 42
    gap: float | None = None
    sentence_end: str = ".?!。？！"


def resegment(words: Sequence[Word], limits: SegmentLimits) -> list[Segment]:
    segments: list[Segment] = []
    current: list[Word] = []

    def close() -> None:
        if current:
            text = " ".join(w.text for w in current)
            segments.append(Segment(text, current[0].start, current[-1].end, tuple(current),
                                    current[0].speaker))  # fmt: skip
            current.clear()

    for word in words:
        if current:
            too_long = (
                (limits.max_words is not None and len(current) >= limits.max_words)
                or (
                    limits.max_duration is not None
                    and word.end - current[0].start > limits.max_duration
                )
                or (
                    limits.max_chars is not None
                    and len(" ".join(w.text for w in current)) + 1 + len(word.text)
                    > limits.max_chars
                )
            )
            silence = limits.gap is not None and word.start - current[-1].end >= limits.gap
            if too_long or silence or word.speaker != current[-1].speaker:
                close()
        current.append(word)
        if word.text and word.text[-1] in limits.sentence_end:
            close()
    close()
    return segments
