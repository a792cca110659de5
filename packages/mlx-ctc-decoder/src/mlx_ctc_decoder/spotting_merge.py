"""Spotted words merged into a greedy result, as NeMo's `merge_alignment_with_ws_hyps`
(context_biasing/context_biasing_utils.py): the result's words with their frames, and each
spotted word in place of the words it covers by more than `threshold` percent (or put where
it starts). Works with a CTC result (its per-frame argmax) or a transducer one (its tokens
and their frames); the words keep the positions of their tokens so that a caller can keep
their ids and times."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .spotting import BEGIN_OF_WORD, SpottedWord

MERGE_THRESHOLD = 30.0  # percent; NeMo's `intersection_threshold`


@dataclass(frozen=True)
class MergedWord:
    """A word of the merged text over frames [start_frame, end_frame]: the result's own
    (`tokens`: the positions of its tokens in the result) or a spotted one (`spotted`)."""

    text: str
    start_frame: int
    end_frame: int
    tokens: tuple[int, ...] = ()
    spotted: bool = False


def ctc_token_frames(alignment: Sequence[int], blank_id: int) -> list[int]:
    """Each token of a greedy CTC result (runs of one label, blanks dropped) at the last
    frame of its run, as NeMo's merge places it."""
    frames: list[int] = []
    previous = None
    for frame, label in enumerate(alignment):
        if label != blank_id:
            if label == previous:
                frames[-1] = frame
            else:
                frames.append(frame)
        previous = label
    return frames


def merge_spotted(
    pieces: Sequence[str],
    frames: Sequence[int],
    spotted: Sequence[SpottedWord],
    transducer: bool = False,
    threshold: float = MERGE_THRESHOLD,
) -> list[MergedWord]:
    """The words of a result (its tokens' `pieces` at `frames`: `ctc_token_frames` for CTC)
    with the `spotted` words merged in; for a transducer result each spotted word starts a
    frame earlier (NeMo: transducers tend to emit a frame early)."""
    tokens = [(p, f, (i,)) for i, (p, f) in enumerate(zip(pieces, frames, strict=True))]
    if transducer:
        tokens = _bow_joined(tokens)
    if not tokens:
        return [MergedWord(s.word, s.start_frame, s.end_frame, spotted=True) for s in spotted]
    words = _words(tokens)
    for word in spotted:
        start = word.start_frame - 1 if transducer and word.start_frame > 0 else word.start_frame
        new = MergedWord(word.word, start, word.end_frame, spotted=True)
        merged: list[MergedWord] = []
        inserted = False
        for item in words:
            if start < item.start_frame and not inserted:
                merged.append(new)
                inserted = True
            common = max(0, min(word.end_frame, item.end_frame) - max(start, item.start_frame) + 1)
            if 100 / (item.end_frame - item.start_frame + 1) * common <= threshold:
                merged.append(item)
            elif not inserted:
                merged.append(new)
                inserted = True
        if not inserted:
            merged.append(new)
        words = merged
    return words


def merged_text(words: Sequence[MergedWord]) -> str:
    """The merged words as NeMo's text: joined by single spaces."""
    return " ".join(word.text for word in words)


Token = tuple[str, int, tuple[int, ...]]  # piece, frame, positions in the result


def _bow_joined(tokens: list[Token]) -> list[Token]:
    """A lone "▁" token joined to the next token when that one does not start a word."""
    joined: list[Token] = []
    carried: tuple[int, ...] | None = None
    for position, (piece, frame, indices) in enumerate(tokens):
        if carried is not None:
            piece, indices, carried = BEGIN_OF_WORD + piece, carried + indices, None
        following = tokens[position + 1][0] if position + 1 < len(tokens) else BEGIN_OF_WORD
        if piece == BEGIN_OF_WORD and not following.startswith(BEGIN_OF_WORD):
            carried = indices
            continue
        joined.append((piece, frame, indices))
    return joined


def _words(tokens: list[Token]) -> list[MergedWord]:
    """Pieces into words at "▁" (the first piece's first character dropped, as NeMo does)."""
    words: list[MergedWord] = []
    text, first, last, positions = "", 0, 0, []
    for piece, frame, indices in tokens:
        if text and piece.startswith(BEGIN_OF_WORD):
            words.append(MergedWord(text, first, last, tuple(positions)))
            text, first, last, positions = piece[1:], frame, frame, list(indices)
        elif text:
            text, last = text + piece, frame
            positions += indices
        else:
            text, first, last = piece[1:], frame, frame
            positions += indices
    words.append(MergedWord(text, first, last, tuple(positions)))
    return words
