"""Token, word and segment times exactly as NeMo computes them for its hypotheses.

NeMo's rules, which this module follows step for step (`rnnt_decoding.py`,
`ctc_decoding.py`, `timestamp_utils.py` in NeMo 3.0):

- Token spans in encoder frames. TDT: [frame, frame + duration]. RNNT: [frame, frame + 1].
  CTC: token k spans [start of token k-1, start of token k], the first one starting one
  frame before its own first frame.
- Punctuation tokens are pulled onto their neighbour. TDT: a punctuation token starts and
  ends where the previous token ends. CTC: it ends where it starts. RNNT: unchanged.
- Words: a token whose piece carries the word-start marker (its piece differs from its
  text) begins a word; punctuation attaches to the word before it.
- Segments end after a word ending in a segment separator (. ? ! by default), or at a
  pause of at least `segment_gap_threshold` frames when the config sets one.
- Seconds are frames x window stride x subsampling factor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .tokenizer import Tokenizer

_WORD_DELIMITER = " "


@dataclass
class Span:
    """A token, word or segment with its [start, end] in encoder frames."""

    text: str
    start: int
    end: int
    piece: str = ""  # the tokenizer piece, for tokens
    confidence: float | None = None
    first_token: int = 0  # index range of the tokens it covers (words, segments)
    last_token: int = 0


def token_spans(
    ids: Sequence[int],
    frames: Sequence[int],
    durations: Sequence[int] | None,
    kind: str,
    tokenizer: Tokenizer,
    confidences: Sequence[float | None] | None = None,
) -> list[Span]:
    """Refined token spans for a hypothesis; `kind` is "tdt", "rnnt" or "ctc".

    `frames` are emission frames (transducers) or each token's first frame (CTC).
    """
    if kind == "tdt":
        bounds = [(f, f + d) for f, d in zip(frames, durations or [], strict=True)]
    elif kind == "rnnt":
        bounds = [(f, f + 1) for f in frames]
    elif kind == "ctc":
        starts = list(frames)
        previous = [max(0, starts[0] - 1), *starts[:-1]] if starts else []
        bounds = list(zip(previous, starts, strict=True))
    else:
        raise ValueError(f"unknown hypothesis kind {kind!r}")
    confidences = confidences or [None] * len(ids)
    spans = [
        Span(tokenizer.token_text(i), s, e, tokenizer.piece(i), c, n, n)
        for n, (i, (s, e), c) in enumerate(zip(ids, bounds, confidences, strict=True))
    ]
    punctuation = tokenizer.punctuation
    if punctuation and kind in ("tdt", "ctc"):
        for index, span in enumerate(spans):
            if index > 0 and span.text and span.text[0] in punctuation:
                if kind == "tdt":
                    span.start = spans[index - 1].end
                span.end = span.start
    return spans


def word_spans(tokens: Sequence[Span], tokenizer: Tokenizer) -> list[Span]:
    """Group tokens into words (NeMo's `get_words_offsets` for BPE tokenizers)."""
    punctuation = tokenizer.punctuation
    words: list[Span] = []
    built: list[str] = []
    first = 0

    def emit(last: int) -> None:
        words.append(_word(tokens, built, first, last, tokenizer))

    for index, token in enumerate(tokens):
        is_punctuation = (
            bool(punctuation) and token.text in punctuation and token.text != _WORD_DELIMITER
        )
        next_text = None
        lookahead = index
        while not next_text and lookahead < len(tokens) - 1:
            lookahead += 1
            next_text = tokens[lookahead].text
            next_text = next_text if next_text != _WORD_DELIMITER else None
        starts_word = token.piece != token.text or (
            token.text == _WORD_DELIMITER and next_text not in punctuation
        )
        if starts_word and not is_punctuation:
            if built:
                emit(index - 1)
            built = []
            if token.text != _WORD_DELIMITER:
                built.append(token.piece)
                first = index
        elif is_punctuation and not built and words:
            last_word = words[-1]
            last_word.end = token.end
            last_word.last_token = index
            if last_word.text.endswith(" "):
                last_word.text = last_word.text[:-1]
            last_word.text += token.text
        elif is_punctuation and built:
            if built[-1] in (" ", "_", "▁"):
                built = built[:-1]
            built.append(token.piece)
        else:
            if not built:
                first = index
            built.append(token.piece)
    if not words:
        if built:
            first = 0
            emit(len(tokens) - 1)
            words[0].start = tokens[0].start
    else:
        words[0].start = tokens[0].start
        if built:
            emit(len(tokens) - 1)
    for word in words:
        values = [
            t.confidence
            for t in tokens[word.first_token : word.last_token + 1]
            if t.confidence is not None
        ]
        word.confidence = min(values) if values else None  # NeMo's default aggregation: min
    return words


def _word(
    tokens: Sequence[Span], built: list[str], first: int, last: int, tokenizer: Tokenizer
) -> Span:
    return Span(
        tokenizer.decode_pieces(built),
        tokens[first].start,
        tokens[last].end,
        first_token=first,
        last_token=last,
    )


def segment_spans(
    words: Sequence[Span],
    separators: Sequence[str] = (".", "?", "!"),
    gap_threshold: int | None = None,
) -> list[Span]:
    """Group words into segments (NeMo's `get_segment_offsets`)."""
    segments: list[Span] = []
    current: list[str] = []
    first = 0
    for index, word in enumerate(words):
        if gap_threshold and current:
            if word.start - words[index - 1].end >= gap_threshold:
                segments.append(_segment(words, current, first, index - 1))
                current = [word.text]
                first = index
                continue
        elif word.text and (word.text[-1] in separators or word.text in separators):
            current.append(word.text)
            segments.append(_segment(words, current, first, index))
            current = []
            first = index + 1
            continue
        current.append(word.text)
    if current:
        segments.append(_segment(words, current, first, len(words) - 1))
    return segments


def _segment(words: Sequence[Span], texts: list[str], first: int, last: int) -> Span:
    return Span(
        " ".join(texts), words[first].start, words[last].end, first_token=first, last_token=last
    )
