"""Canary's timestamps: frame tokens `<|n|>` in the output text, parsed as NeMo parses them.

canary-1b-flash and canary-180m-flash, prompted with `<|timestamp|>`, write an encoder
frame number before and after each word: `<|3|> Hello<|7|><|8|> world<|12|>`. NeMo's
`process_aed_timestamp_outputs` (`asr/parts/utils/timestamp_utils.py`, NeMo 3.0.0) finds
the pairs with one regular expression over the stripped text; the content of each pair
(stripped) is a word, its times are the two frame numbers; content outside any pair is
dropped from the text; empty pairs are skipped; an output without a pair is kept as it is
(stripped). Segments end at a word whose last character is `.`, `?` or `!`
(`get_segment_offsets`). `transcribe` runs this parser whether or not timestamps were asked
for, so a model that writes frame tokens gets the same text either way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_PAIR = re.compile(r"<\|(\d+)\|>(.*?)<\|(\d+)\|>")
FRAME_TOKEN = re.compile(r"<\|(\d+)\|>")
SEGMENT_DELIMITERS = (".", "?", "!")


@dataclass(frozen=True)
class FrameWord:
    """A word between two frame tokens; offsets in encoder frames, as the model wrote them."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class FrameSegment:
    text: str
    start: int
    end: int
    first_word: int
    last_word: int  # inclusive


def parse(text: str) -> tuple[str, list[FrameWord] | None]:
    """NeMo's `extract_words_with_timestamps`: (text without frame tokens, words) or
    (stripped text, None) when the text has no pair of frame tokens."""
    text = text.strip()
    if not _PAIR.search(text):
        return text, None
    words = []
    for match in _PAIR.finditer(text):
        content = match.group(2).strip()
        if content:
            words.append(FrameWord(content, int(match.group(1)), int(match.group(3))))
    return " ".join(w.text for w in words), words


def segments(
    words: Sequence[FrameWord], delimiters: Sequence[str] = SEGMENT_DELIMITERS
) -> list[FrameSegment]:
    """NeMo's `get_segment_offsets` without a gap threshold (as Canary calls it)."""
    out: list[FrameSegment] = []
    first = 0
    for i, word in enumerate(words):
        if word.text[-1] in delimiters or word.text in delimiters:
            run = words[first : i + 1]
            out.append(FrameSegment(" ".join(w.text for w in run), words[first].start, word.end,
                                    first, i))  # fmt: skip
            first = i + 1
    if first < len(words):
        run = words[first:]
        out.append(FrameSegment(" ".join(w.text for w in run), words[first].start, words[-1].end,
                                first, len(words) - 1))  # fmt: skip
    return out


def token_frames(pieces: Sequence[str]) -> list[tuple[int, int] | None]:
    """Each token's frame span: a frame token its own frame, a token inside a pair the pair's
    (start, end), other tokens None.

    Frame tokens pair up in order (first with second, third with fourth, ...), as the
    parser's non-greedy pattern pairs them.
    """
    frames = [int(m.group(1)) if (m := FRAME_TOKEN.fullmatch(p)) else None for p in pieces]
    spans: list[tuple[int, int] | None] = [None] * len(pieces)
    opened: int | None = None
    for i, frame in enumerate(frames):
        if frame is None:
            continue
        spans[i] = (frame, frame)
        if opened is None:
            opened = i
            continue
        for j in range(opened + 1, i):
            spans[j] = (frames[opened], frame)
        opened = None
    return spans
