"""Speakers on words, NeMo's way: a diarizer's speaker turns attached to a transcript.

NeMo's ASR + diarization pipeline (`OfflineDiarWithASR.get_word_level_json_list` in
`nemo/collections/asr/parts/utils/diarization_utils.py`, 3.0.0) walks the turns in time order
with one cursor: a word's anchor is its start (`word_ts_anchor_pos: start`, offset 0), and
when the anchor lies past the current turn's end the cursor moves on by one turn (never past
the last). The word takes the cursor's speaker. So every word gets a speaker, also a word in
a gap between turns or before the first (it takes the turn it is in or the next one), and
where turns overlap the earlier-starting one wins. We keep that rule exactly, its quirk too:
the cursor moves at most one turn per word. Without any turn (no speech found) words get
none; NeMo has no rule there (it fails on an empty list).

NeMo's sentences (`get_session_trans_dict`) start wherever the speaker changes from one word to
the next; we split the ASR's segments at the same places, so a segment has one speaker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Protocol

from .model import Segment, SpeakerTurn, Transcript, Word


class DiarizerTurn(Protocol):
    """A diarizer's turn as mlx-diarization's `Turn` has it: speaker index, seconds."""

    start: float
    end: float
    speaker: int


def named_turns(turns: Iterable[DiarizerTurn]) -> list[SpeakerTurn]:
    """A diarizer's turns as NeMo's ASR pipeline reads them, from its label lines: times as
    printed (3 decimals), speakers named `speaker_<k>`; in the order given."""
    return [SpeakerTurn(_printed(t.start), _printed(t.end), f"speaker_{t.speaker}") for t in turns]


def _printed(seconds: float) -> float:
    return float(f"{seconds:.3f}")


def in_time_order(turns: Sequence[SpeakerTurn]) -> list[SpeakerTurn]:
    """The turns by start, then end (NeMo's labels are time-ordered RTTM lines; Sortformer's
    `diarize()` lists them speaker by speaker)."""
    return sorted(turns, key=lambda t: (t.start, t.end))


def word_speakers(words: Sequence[Word], turns: Sequence[SpeakerTurn]) -> list[str | None]:
    """Each word's speaker: NeMo's cursor walk over the time-ordered `turns` (module doc)."""
    ordered = in_time_order(turns)
    if not ordered:
        return [None] * len(words)
    index, speakers = 0, []
    for word in words:
        if word.start > ordered[index].end:
            index = min(index + 1, len(ordered) - 1)
        speakers.append(ordered[index].speaker)
    return speakers


def split_by_speaker(segment: Segment) -> list[Segment]:
    """`segment` cut where its words' speaker changes, each part with its speaker."""
    if not segment.words:
        return [segment]
    parts: list[list[Word]] = [[segment.words[0]]]
    for word in segment.words[1:]:
        if word.speaker != parts[-1][-1].speaker:
            parts.append([])
        parts[-1].append(word)
    if len(parts) == 1:
        return [dataclasses.replace(segment, speaker=segment.words[0].speaker)]
    return [
        Segment(" ".join(w.text for w in part), part[0].start, part[-1].end, tuple(part),
                part[0].speaker)
        for part in parts
    ]  # fmt: skip


def with_speakers(transcript: Transcript, turns: Sequence[SpeakerTurn]) -> Transcript:
    """`transcript` with a speaker on every word and segment (segments split where it
    changes) and the turns themselves (`speakers`, for RTTM). The segments' words are the
    transcript's words in order, so the same walk labels both alike."""
    inner = [w for s in transcript.segments for w in s.words]
    labelled = with_word_speakers(transcript, word_speakers(transcript.words, turns),
                                  word_speakers(inner, turns))  # fmt: skip
    return dataclasses.replace(labelled, speakers=in_time_order(turns))


def with_word_speakers(
    transcript: Transcript,
    speakers: Sequence[str | None],
    segment_speakers: Sequence[str | None] | None = None,
) -> Transcript:
    """`transcript` with `speakers[i]` on its i-th word (`segment_speakers`, default the
    same, on the segments' words in order), segments split where the speaker changes; its
    `speakers` (turns) the runs of words with one speaker, from the first word's start to the
    last's end (a live stream's labels come per word, not as turns)."""
    inner = [w for s in transcript.segments for w in s.words]
    segment_speakers = speakers if segment_speakers is None else segment_speakers
    if len(speakers) != len(transcript.words) or len(segment_speakers) != len(inner):
        raise ValueError(f"{len(speakers)} speakers for {len(transcript.words)} words")
    words = [
        dataclasses.replace(w, speaker=s) for w, s in zip(transcript.words, speakers, strict=True)
    ]
    labels = iter(segment_speakers)
    segments = []
    for segment in transcript.segments:
        labelled = tuple(dataclasses.replace(w, speaker=next(labels)) for w in segment.words)
        segments += split_by_speaker(dataclasses.replace(segment, words=labelled))
    return dataclasses.replace(transcript, words=words, segments=segments, speakers=_runs(words))


def _runs(words: Sequence[Word]) -> list[SpeakerTurn]:
    turns: list[SpeakerTurn] = []
    for word in words:
        if word.speaker is None:
            continue
        if turns and turns[-1].speaker == word.speaker:
            turns[-1] = dataclasses.replace(turns[-1], end=word.end)
        else:
            turns.append(SpeakerTurn(word.start, word.end, word.speaker))
    return turns
