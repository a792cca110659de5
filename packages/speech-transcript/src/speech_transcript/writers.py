"""TXT, SRT, VTT, TSV, JSON and RTTM renderings of a Transcript.

A diarized transcript (`speakers.with_speakers`) shows its speakers: a `[speaker_0] ` prefix
on each txt line and subtitle cue, a `speaker` column in TSV, `speaker` fields and the
`speakers` turns in JSON; RTTM is the turns alone."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from pathlib import PurePath

from pydantic import BaseModel, Field

from .model import Segment, Transcript
from .segmenting import SegmentLimits, resegment

FORMATS = ("txt", "srt", "vtt", "tsv", "json", "rttm")
TRANSCRIPT_FORMATS = FORMATS[:-1]  # what `all` means without diarization


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
    speaker: str | None = Field(None, description="who said it (`speaker_0`, ...) when diarized")


class JSONSegment(BaseModel):
    text: str
    start: float
    end: float
    speaker: str | None = Field(None, description="who said it when diarized (one per segment)")


class JSONTurn(BaseModel):
    start: float
    end: float
    speaker: str


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
    speakers: list[JSONTurn] = Field(
        default_factory=list, description="the diarizer's speaker turns by start; empty if none"
    )


def to_json_model(transcript: Transcript) -> TranscriptJSON:
    return TranscriptJSON(
        text=transcript.text,
        duration=round(transcript.duration, 3),
        model=transcript.model,
        language=transcript.language,
        source=transcript.source,
        segments=[
            JSONSegment(text=s.text, start=_r(s.start), end=_r(s.end), speaker=s.speaker)
            for s in transcript.segments
        ],
        words=[
            JSONWord(
                text=w.text,
                start=_r(w.start),
                end=_r(w.end),
                confidence=_c(w.confidence),
                speaker=w.speaker,
            )
            for w in transcript.words
        ],
        tokens=[
            JSONToken(
                id=t.id, text=t.text, start=_r(t.start), end=_r(t.end), confidence=_c(t.confidence)
            )
            for t in transcript.tokens
        ],
        speakers=[
            JSONTurn(start=_r(t.start), end=_r(t.end), speaker=t.speaker)
            for t in transcript.speakers
        ],
    )


def to_json(transcript: Transcript, **_: object) -> str:
    return to_json_model(transcript).model_dump_json(indent=2) + "\n"


def to_txt(transcript: Transcript, timestamps: bool = False, **_: object) -> str:
    if timestamps:  # one timed line per segment
        return "".join(f"[{s.start:.2f} - {s.end:.2f}] {_label(s)}{s.text}\n"
                       for s in transcript.segments)  # fmt: skip
    if transcript.speakers:  # one line per speaker's run of segments
        lines: list[tuple[str | None, list[str]]] = []
        for s in transcript.segments:
            if not lines or lines[-1][0] != s.speaker:
                lines.append((s.speaker, []))
            lines[-1][1].append(s.text)
        return "".join(f"{_label(speaker)}{' '.join(texts)}\n" for speaker, texts in lines)
    return transcript.text.strip() + "\n"


def _label(item: Segment | str | None) -> str:
    """`[speaker_0] ` for a segment (or name) with a speaker, else nothing."""
    speaker = item.speaker if isinstance(item, Segment) else item
    return f"[{speaker}] " if speaker else ""


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
                text = _label(segment) + " ".join(
                    f"<u>{w.text}</u>" if j == i else w.text for j, w in enumerate(segment.words)
                )
                end = segment.words[i + 1].start if i + 1 < len(segment.words) else segment.end
                blocks.append((word.start, max(end, word.end), text))
        else:
            blocks.append((segment.start, segment.end, _wrap(_label(segment) + segment.text)))
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
    speakers = bool(transcript.speakers)  # a speaker column when diarized
    rows = ["start\tend\tspeaker\ttext" if speakers else "start\tend\ttext"]
    for segment in _cues(transcript, limits):
        text = segment.text.replace("\t", " ").replace("\n", " ")
        who = f"{segment.speaker or ''}\t" if speakers else ""
        rows.append(f"{round(segment.start * 1000)}\t{round(segment.end * 1000)}\t{who}{text}")
    return "\n".join(rows) + "\n"


def to_rttm(transcript: Transcript, **_: object) -> str:
    """The speaker turns as RTTM lines, the recording named after the source's stem."""
    file_id = PurePath(transcript.source or "transcript").stem
    return "".join(turn.rttm(file_id) + "\n" for turn in transcript.speakers)


WRITERS: dict[str, Callable[..., str]] = {
    "txt": to_txt,
    "srt": to_srt,
    "vtt": to_vtt,
    "tsv": to_tsv,
    "json": to_json,
    "rttm": to_rttm,
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


def formats_for(spec: str, speakers: bool = False) -> Sequence[str]:
    """`--output-format` value -> list of formats ("all" expands: RTTM only with `speakers`)."""
    if spec == "all":
        return FORMATS if speakers else TRANSCRIPT_FORMATS
    return (spec,)
