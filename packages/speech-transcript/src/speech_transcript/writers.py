"""TXT, SRT, VTT, TSV and JSON renderings of a Transcript."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from .model import Segment, Transcript
from .segmenting import SegmentLimits, resegment

FORMATS = ("txt", "srt", "vtt", "tsv", "json")


class JSONToken(BaseModel):
    id: int = Field(
        description="the model's token id; in order, the exact sequence of the hypothesis"
    )
    text: str
    start: float
    end: float
    confidence: float | None = None


class JSONWord(BaseModel):
    text: str
    start: float
    end: float
    confidence: float | None = None


class JSONSegment(BaseModel):
    text: str
    start: float
    end: float


class TranscriptJSON(BaseModel):
    """The `--output-format json` schema; times are seconds from the start of the input."""

    text: str
    duration: float
    model: str
    language: str | None = Field(None, description="the language of the text, where the model says")
    source: str | None = Field(
        None, description="the input as given: its path, `stdin`, or null for samples"
    )
    segments: list[JSONSegment]
    words: list[JSONWord]
    tokens: list[JSONToken]


def to_json_model(transcript: Transcript) -> TranscriptJSON:
    return TranscriptJSON(
        text=transcript.text,
        duration=round(transcript.duration, 3),
        model=transcript.model,
        language=transcript.language,
        source=transcript.source,
        segments=[
            JSONSegment(text=s.text, start=_r(s.start), end=_r(s.end)) for s in transcript.segments
        ],
        words=[
            JSONWord(text=w.text, start=_r(w.start), end=_r(w.end), confidence=_c(w.confidence))
            for w in transcript.words
        ],
        tokens=[
            JSONToken(
                id=t.id, text=t.text, start=_r(t.start), end=_r(t.end), confidence=_c(t.confidence)
            )
            for t in transcript.tokens
        ],
    )


def to_json(transcript: Transcript, **_: object) -> str:
    return to_json_model(transcript).model_dump_json(indent=2) + "\n"


def to_txt(transcript: Transcript, timestamps: bool = False, **_: object) -> str:
    if timestamps:  # one timed line per segment
        return "".join(f"[{s.start:.2f} - {s.end:.2f}] {s.text}\n" for s in transcript.segments)
    return transcript.text.strip() + "\n"


def _cues(transcript: Transcript, limits: SegmentLimits | None) -> list[Segment]:
    if limits is not None and transcript.words:
        return resegment(transcript.words, limits)
    return transcript.segments


def _wrap(text: str, width: int = 42) -> str:
    lines = textwrap.wrap(text, width=width) or [text]
    if len(lines) > 2:  # keep two lines: rebalance instead of a third
        lines = textwrap.wrap(text, width=(len(text) + 1) // 2 + 1)
    return "\n".join(lines)


def _subtitles(
    transcript: Transcript,
    stamp: Callable[[float], str],
    limits: SegmentLimits | None,
    highlight_words: bool,
    numbered: bool,
) -> list[str]:
    blocks = []
    for segment in _cues(transcript, limits):
        if highlight_words and segment.words:
            for i, word in enumerate(segment.words):
                text = " ".join(
                    f"<u>{w.text}</u>" if j == i else w.text for j, w in enumerate(segment.words)
                )
                end = segment.words[i + 1].start if i + 1 < len(segment.words) else segment.end
                blocks.append((word.start, max(end, word.end), text))
        else:
            blocks.append((segment.start, segment.end, _wrap(segment.text)))
    out = []
    for index, (start, end, text) in enumerate(blocks, start=1):
        head = f"{index}\n" if numbered else ""
        out.append(f"{head}{stamp(start)} --> {stamp(end)}\n{text}\n")
    return out


def to_srt(
    transcript: Transcript,
    limits: SegmentLimits | None = None,
    highlight_words: bool = False,
    **_: object,
) -> str:
    return "\n".join(
        _subtitles(transcript, lambda t: _clock(t, ","), limits, highlight_words, True)
    )


def to_vtt(
    transcript: Transcript,
    limits: SegmentLimits | None = None,
    highlight_words: bool = False,
    **_: object,
) -> str:
    cues = _subtitles(transcript, lambda t: _clock(t, "."), limits, highlight_words, False)
    return "WEBVTT\n\n" + "\n".join(cues)


def to_tsv(transcript: Transcript, limits: SegmentLimits | None = None, **_: object) -> str:
    rows = ["start\tend\ttext"]
    for segment in _cues(transcript, limits):
        text = segment.text.replace("\t", " ").replace("\n", " ")
        rows.append(f"{round(segment.start * 1000)}\t{round(segment.end * 1000)}\t{text}")
    return "\n".join(rows) + "\n"


WRITERS: dict[str, Callable[..., str]] = {
    "txt": to_txt,
    "srt": to_srt,
    "vtt": to_vtt,
    "tsv": to_tsv,
    "json": to_json,
}


def render(transcript: Transcript, output_format: str, **options: object) -> str:
    """The transcript in one of FORMATS; options: limits (SegmentLimits), highlight_words (bool),
    timestamps (bool, txt: one `[start - end] text` line per segment)."""
    if output_format not in WRITERS:
        raise ValueError(
            f"unknown output format {output_format!r}; choose from {', '.join(FORMATS)}"
        )
    return WRITERS[output_format](transcript, **options)


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _r(value: float) -> float:
    return round(value, 3)


def _c(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def formats_for(spec: str) -> Sequence[str]:
    """`--output-format` value -> list of formats ("all" expands)."""
    return FORMATS if spec == "all" else (spec,)
