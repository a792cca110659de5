"""`--word-spotter` / `Biasing(word_spotter=True)`: NeMo's CTC-based word spotter (mlx-ctc-
decoder's `spot_words`) run on the CTC head's log-probs of each piece, the spotted words
merged into the greedy result of the chosen head (CTC, or a hybrid's transducer) as NeMo's
recipe merges them (`merge_spotted`), and the merged words turned back into a hypothesis.

A phrase is its own spelling; a phrase in NeMo's context-file form `word_spelling1_spelling2`
(`_` between them) is the word with those spellings (`gpu_gpu_g p u`). Unlike NeMo's recipe
the phrases are not lowercased: write them as the model writes words. Words of the greedy
result keep their tokens and times; a spotted word gets its text's tokens, spread over
the frames it was spotted in (NeMo gives only text for it). The text is NeMo's merged text,
quirks included: its CTC merge drops the first letter of a piece that follows a lone "▁"
piece ("the key" -> "the ey"); such a word is re-tokenized from NeMo's text."""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
import numpy as np

from mlx_ctc_decoder import (
    CTCHead,
    MergedWord,
    SpotterConfig,
    SpottingGraph,
    merge_spotted,
    spot_words,
)
from speech_transcript.biasing import Biasing

from .decoding import Hypothesis
from .errors import ParakeetError
from .tokenizer import Tokenizer

SPELLING_SEPARATOR = "_"  # NeMo's recipe's `spelling_separator`


def spelled_words(phrases: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(word, spellings) of each phrase: itself, or NeMo's `word_spelling1_spelling2`."""
    items = []
    for phrase in phrases:
        if SPELLING_SEPARATOR in phrase:
            word, *spellings = phrase.strip().split(SPELLING_SEPARATOR)
            spellings = [s for s in spellings if s.strip()]
            if not word.strip() or not spellings:
                raise ParakeetError(f"word spotter phrase {phrase!r}: give it as word_spelling")
            items.append((word, spellings))
        else:
            items.append((phrase, [phrase]))
    return items


class WordSpotter:
    """The spotter of one `Biasing`'s phrases for a model's CTC head and tokenizer."""

    def __init__(self, biasing: Biasing, ctc: CTCHead | None, tokenizer: Tokenizer) -> None:
        if ctc is None:
            raise ParakeetError("the word spotter reads the CTC head's output: it needs a CTC "
                                "or hybrid model")  # fmt: skip
        self.ctc, self.tokenizer = ctc, tokenizer
        self.blank_id = ctc.config.blank_id
        self.config = SpotterConfig(context_score=biasing.boost_score)
        self.pieces = [tokenizer.piece(i) for i in range(len(tokenizer))]
        items = [(word, [tokenizer.encode(s) for s in spellings])
                 for word, spellings in spelled_words(biasing.phrases)]  # fmt: skip
        try:
            self.graph = SpottingGraph.from_words(items, self.blank_id)
        except ValueError as err:
            raise ParakeetError(f"word spotter: {err}") from None

    def __call__(
        self,
        log_probs: mx.array | None,
        encoded: mx.array,
        lengths: mx.array,
        hypotheses: list[Hypothesis],
        frames: list[list[int]],
        transducer: bool,
    ) -> list[Hypothesis]:
        """The hypotheses with the spotted words merged in; `frames` place each token as
        NeMo's merge does (a CTC token at the last frame of its run, a transducer token at
        its frame); `log_probs` the CTC head's, or None to compute them from `encoded`."""
        if log_probs is None:
            log_probs = self.ctc(encoded)
        probs = np.array(log_probs.astype(mx.float32))
        sizes = np.array(lengths).tolist()
        merged = []
        for b, hypothesis in enumerate(hypotheses):
            spotted = spot_words(probs[b, : sizes[b]], self.graph, self.pieces, self.config)
            if not spotted:  # NeMo's recipe keeps the greedy result as it is
                merged.append(hypothesis)
                continue
            pieces = [self.pieces[i] for i in hypothesis.ids]
            words = merge_spotted(pieces, frames[b], spotted, transducer=transducer)
            merged.append(self._hypothesis(words, hypothesis))
        return merged

    def _hypothesis(self, words: list[MergedWord], old: Hypothesis) -> Hypothesis:
        """The merged words as tokens: a word of the result keeps its own; a spotted word,
        or one whose text NeMo's merge changed, gets its text's tokens over its frames."""
        ids: list[int] = []
        starts: list[int] = []
        durations: list[int] | None = None if old.durations is None else []
        confidences: list[float | None] = []
        for word in words:
            own = [old.ids[k] for k in word.tokens]
            if own and self.tokenizer.decode(own).strip() == word.text:
                ids += own
                starts += [old.frames[k] for k in word.tokens]
                confidences += [old.confidences[k] for k in word.tokens]
                if durations is not None:
                    durations += [old.durations[k] for k in word.tokens]
                continue
            if own:  # NeMo's merge drops a piece's first letter after a lone "▁"
                first, last = old.frames[word.tokens[0]], old.frames[word.tokens[-1]]
            else:
                first, last = word.start_frame, word.end_frame
            spelled = self.tokenizer.encode(word.text)
            at = [first + k * (last - first + 1) // len(spelled) for k in range(len(spelled))]
            ids += spelled
            starts += at
            confidences += [None] * len(spelled)
            if durations is not None:
                durations += [b - a for a, b in zip(at, [*at[1:], last + 1], strict=True)]
        return Hypothesis(ids, starts, durations, confidences)
